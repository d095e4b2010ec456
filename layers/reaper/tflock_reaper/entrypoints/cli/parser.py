"""The command line: every command, its options, examples and exit codes (``--help``), and its shell completion."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable, Sequence
from datetime import timedelta

from tflock_reaper import __version__
from tflock_reaper.domain.durations import parse_duration
from tflock_reaper.entrypoints.cli.codes import exit_codes_help
from tflock_reaper.entrypoints.cli.history_args import add_history_commands

PROG = "tflock-reaper"
#: ``--fail-on`` conditions: what each command can check.
LOCKS_FAIL_ON = ("stale", "blocked", "breaker")
SWEEP_FAIL_ON = ("stale", "blocked", "notify-failed", "breaker")
SHELLS = ("bash", "zsh")
#: shtab's file completion (``shtab.FILE``), set without importing shtab: only ``completion`` needs it.
_FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}

FAIL_ON_HELP = """\
--fail-on (exit 4 when it holds, after the whole output):
  stale          a lock past warn_after (any verdict but keep), or an unreadable lock
  blocked        a lock past reap_after that is not reaped and will not be by waiting: its holder still runs or
                 cannot be checked, clock skew, a key ending in -md5, the circuit breaker; or a failed reap
                 (a reap that only waits for reap_after or min_observed of observation is not blocked)
  notify-failed  an alert that a channel failed to deliver (sweep --notify)
  breaker        the circuit breaker tripped (more reap candidates than max_reaps_per_sweep)
"""

STATUS_HELP = """\
STATUS (what the lock is, in words; --output json: status, status_text):
  ok                        held for less than warn_after
  stale                     past warn_after, not yet reap_after
  stale, would reap         past reap_after, every gate open (a dry run: sweep --enforce reaps it)
  in use: holder running    past reap_after, but its holder check says the run still holds it
  stale, reap waits for ... past reap_after by its Created, but the reap gate measures from server-side
                            evidence: the reaper's first sighting, the stream, a lockfile's LastModified
  stale, not reaped: ...    a gate that waiting does not open (holder unknown, clock skew, breaker, -md5 key)
Without --state-table the run sees every lock for the first time and cannot tell how long it has been held by
server-side evidence: it says so (*) instead of calling the lock blocked.
"""


def _wrapped(text: str) -> str:
    """A description, wrapped (the formatter keeps the epilogs' layout, and so the descriptions' too)."""
    return textwrap.fill(text, width=110)


def _epilog(examples: str, *extra: str) -> str:
    return "\n".join(["examples:", examples.rstrip("\n"), "", *extra, exit_codes_help()])


def names(value: str) -> list[str]:
    """``a,b`` → ``[a, b]``: --table takes a comma-separated list, as the stack's LockTableNames does."""
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"{value!r}: empty name in the list")
    return parts


def _one_of(allowed: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(value: str) -> list[str]:
        parts = names(value)
        wrong = [part for part in parts if part not in allowed]
        if wrong:
            raise argparse.ArgumentTypeError(f"{', '.join(wrong)}: choose from {', '.join(allowed)}")
        return parts

    return parse


def duration(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=110)


def _shared() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """(AWS and output options, every command's) and (the lock sources, every command that reads locks)."""
    common = argparse.ArgumentParser(add_help=False)
    aws = common.add_argument_group("AWS (default: the standard AWS configuration)")
    aws.add_argument("--region", help="AWS region, e.g. eu-west-1 (or AWS_DEFAULT_REGION)")
    aws.add_argument("--profile", help="AWS named profile (or AWS_PROFILE)")
    aws.add_argument(
        "--endpoint-url", metavar="URL", help="AWS endpoint, e.g. http://127.0.0.1:5000 (or AWS_ENDPOINT_URL)"
    )
    output = common.add_argument_group("output")
    output.add_argument(
        "--output",
        choices=("table", "json"),
        default="table",
        help="table: for people (colour on a terminal, never with NO_COLOR); json: for programs (default: table)",
    )
    output.add_argument("--json", dest="output", action="store_const", const="json", help="same as --output json")
    output.add_argument("-v", "--verbose", action="store_true", help="log every verdict to stderr")

    sources = argparse.ArgumentParser(add_help=False)
    where = sources.add_argument_group("where the locks are (--table, --bucket, or both: at least one is required)")
    where.add_argument(
        "--table",
        dest="tables",
        action="extend",
        type=names,
        default=[],
        metavar="TABLE[,TABLE]",
        help="a Terraform lock table (DynamoDB); repeatable, or comma-separated",
    )
    where.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="BUCKET[/PREFIX]",
        help="a state bucket whose .tflock lockfiles (use_lockfile) to read too; repeatable",
    )
    where.add_argument(
        "--state-table",
        metavar="TABLE",
        help="the reaper's state table (first sightings, stream times, reap records): the deployed stack's",
    )
    return common, sources


def _policy(group: argparse._ArgumentGroup, *, required: bool, text: str) -> None:
    action = group.add_argument("--policy", required=required, metavar="FILE", help=text)
    setattr(action, "complete", _FILE_COMPLETION)  # noqa: B010 - shtab reads this attribute


def _fail_on(group: argparse._ArgumentGroup, conditions: Sequence[str], text: str) -> None:
    group.add_argument(
        "--fail-on",
        action="extend",
        type=_one_of(conditions),
        default=[],
        metavar="{" + ",".join(conditions) + "}",
        help=text,
    )


def build_parser() -> argparse.ArgumentParser:
    common, sources = _shared()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_wrapped(
            "Find, explain and safely reap stale Terraform/OpenTofu state locks (S3 backend: DynamoDB lock "
            "tables and .tflock lockfiles)."
        ),
        epilog=_epilog(
            f"  {PROG} locks --table terraform-locks\n"
            f"  {PROG} explain --table terraform-locks --policy policy.yaml tf-state/env:/dev/app.tfstate\n"
            f"  {PROG} COMMAND --help"
        ),
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _locks(commands, common, sources)
    _sweep(commands, common, sources)
    _explain(commands, common, sources)
    _unlock(commands, common, sources)
    _enable_stream(commands, common)
    add_history_commands(
        commands, common, formatter=_formatter, epilog=_epilog, duration=duration, prog=PROG, wrap=_wrapped
    )
    _completion(commands)
    return parser


def _locks(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    sources: argparse.ArgumentParser,
) -> None:
    locks = commands.add_parser(
        "locks",
        parents=[sources, common],
        formatter_class=_formatter,
        help="list the locks held, oldest first, with their status",
        description=_wrapped(
            "List every lock held (lock-table items and lockfiles): path, lock ID, workspace, table or "
            "bucket, operation, holder, age and status. A dry run: nothing is deleted."
        ),
        epilog=_epilog(
            f"  {PROG} locks --table terraform-locks\n"
            f"  {PROG} locks --table tf-locks-prod,tf-locks-dev --stale --older-than 2h\n"
            f"  {PROG} locks --bucket my-state --path 'my-state/env:/prod/*' --output json\n"
            f"  {PROG} locks --table terraform-locks --fail-on stale      # exit 4 when a lock is stale",
            STATUS_HELP,
            FAIL_ON_HELP,
        ),
    )
    options = locks.add_argument_group("listing")
    _policy(options, required=False, text="policy file (default: the built-in defaults)")
    options.add_argument(
        "--sort", choices=("age", "path"), default="age", help="oldest first, or by path (default: age)"
    )
    options.add_argument("--stale", action="store_true", help="only locks past warn_after")
    options.add_argument(
        "--older-than", type=duration, metavar="DURATION", help="only locks older than this: 90s, 2h, 1d"
    )
    options.add_argument("--path", metavar="GLOB", help="only lock paths matching this glob (* matches / too)")
    _fail_on(options, LOCKS_FAIL_ON, "exit 4 when this holds for the locks shown; repeatable, or comma-separated")


def _sweep(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    sources: argparse.ArgumentParser,
) -> None:
    run = commands.add_parser(
        "sweep",
        parents=[sources, common],
        formatter_class=_formatter,
        help="judge every lock; reap only with --enforce",
        description=_wrapped(
            "Judge every lock by the policy, as the deployed sweeper does, with every reason. A dry run unless "
            "--enforce (and the policy says mode: enforce). On a terminal, --enforce shows the locks it is about to "
            "reap and asks first, like terraform apply; --yes, or stdin or stderr not a terminal, skips the question."
        ),
        epilog=_epilog(
            f"  {PROG} sweep --table terraform-locks --policy policy.yaml                    # dry run\n"
            f"  {PROG} sweep --table terraform-locks --policy policy.yaml --show-notifications\n"
            f"  {PROG} sweep --table terraform-locks --policy policy.yaml --enforce --state-table tflock-reaper-state\n"
            f"  {PROG} sweep --table terraform-locks --policy policy.yaml --enforce --yes --fail-on blocked",
            FAIL_ON_HELP,
        ),
    )
    required = run.add_argument_group("required")
    _policy(required, required=True, text="policy file (YAML)")
    act = run.add_argument_group("reaping and alerts")
    act.add_argument("--enforce", action="store_true", help="really delete (the policy must also say mode: enforce)")
    act.add_argument("-y", "--yes", action="store_true", help="reap without asking (--enforce on a terminal asks)")
    alerts = act.add_mutually_exclusive_group()
    alerts.add_argument(
        "--show-notifications",
        action="store_true",
        help="show the alerts the policy's channels would get (rendered; nothing is sent)",
    )
    alerts.add_argument("--notify", action="store_true", help="send the alerts through the policy's channels")
    act.add_argument(
        "--alert-topic-arn", metavar="ARN", help="SNS topic for sns channels without topic_arn (the stack's topic)"
    )
    _fail_on(act, SWEEP_FAIL_ON, "exit 4 when this holds; repeatable, or comma-separated")


def _explain(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    sources: argparse.ArgumentParser,
) -> None:
    why = commands.add_parser(
        "explain",
        parents=[sources, common],
        formatter_class=_formatter,
        help="one lock's verdict, every reason, and the command to release it",
        description=_wrapped(
            "The verdict one sweep would give the lock at LOCK_PATH, with every reason and holder check, "
            "and the commands that release it by hand. Only reads."
        ),
        epilog=_epilog(
            f"  {PROG} explain --table terraform-locks --policy policy.yaml tf-state/env:/dev/network/terraform.tfstate"
        ),
    )
    why.add_argument(
        "lock_path", metavar="LOCK_PATH", help="the LockID: <bucket>/<state key>, e.g. tf-state/app.tfstate"
    )
    required = why.add_argument_group("required")
    _policy(required, required=True, text="policy file (YAML)")


def _unlock(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    sources: argparse.ArgumentParser,
) -> None:
    unlock = commands.add_parser(
        "unlock",
        parents=[sources, common],
        formatter_class=_formatter,
        help="release one lock by hand: exactly the acquisition --id names",
        description=_wrapped(
            "Delete the lock at LOCK_PATH if it is still the acquisition LOCK_ID names: what terraform "
            "force-unlock does, without a checkout of the root module and without its race (the delete is conditional "
            "on the lock exactly as read and shown). Recorded, logged and alerted like a sweep's reap (--state-table, "
            "--notify). Refuses a digest, an item that is not a lock, an unreadable lock, and another ID (exit 1). "
            "For a dual backend (use_lockfile and dynamodb_table), give --table and --bucket: both sides go. Asks "
            "first on a terminal; --yes for scripts (without it, a run off a terminal is refused, exit 2)."
        ),
        epilog=_epilog(
            f"  {PROG} unlock tf-state/env:/dev/app.tfstate --id 8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d "
            "--table terraform-locks\n"
            f"  {PROG} unlock tf-state/app.tfstate --id 8a3cd4e3-... --table terraform-locks --bucket tf-state --yes\n"
            f"  {PROG} unlock tf-state/app.tfstate --id 8a3cd4e3-... --table terraform-locks "
            "--state-table tflock-reaper-state --notify --policy policy.yaml"
        ),
    )
    unlock.add_argument("lock_path", metavar="LOCK_PATH", help="the LockID: <bucket>/<state key>")
    required = unlock.add_argument_group("required")
    required.add_argument(
        "--id", dest="lock_id", required=True, metavar="LOCK_ID", help="the lock's ID, as `locks` or the alert shows it"
    )
    act = unlock.add_argument_group("confirmation and alerts")
    act.add_argument("-y", "--yes", action="store_true", help="do not ask (required off a terminal)")
    act.add_argument("--notify", action="store_true", help="send the `reaped` alert through the policy's channels")
    _policy(act, required=False, text="policy file: the lock's rule and channels (required with --notify)")
    act.add_argument("--alert-topic-arn", metavar="ARN", help="SNS topic for sns channels without topic_arn")


def _enable_stream(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    stream = commands.add_parser(
        "enable-stream",
        parents=[common],
        formatter_class=_formatter,
        help="turn on the lock tables' streams (NEW_AND_OLD_IMAGES) for the audit; prints their ARNs",
        description=_wrapped(
            "Turn on each lock table's stream (NEW_AND_OLD_IMAGES) and print the LockTableStreamArns to deploy with. "
            "Idempotent; a stream of another view type is left alone (exit 2). In another account than the stack's, "
            "--grant-read-to lets the stack's stream function read the streams (their resource-based policy)."
        ),
        epilog=_epilog(
            f"  {PROG} enable-stream --table terraform-locks\n"
            f"  {PROG} enable-stream --table terraform-locks --table platform-locks\n"
            f"  {PROG} enable-stream --table terraform-locks --profile prod "
            "--grant-read-to arn:aws:iam::111111111111:role/tflock-reaper-StreamRole-ABC"
        ),
    )
    required = stream.add_argument_group("required")
    required.add_argument(
        "--table",
        dest="tables",
        action="extend",
        type=names,
        required=True,
        metavar="TABLE[,TABLE]",
        help="a Terraform lock table (DynamoDB); repeatable, or comma-separated (at most 5 for one stack)",
    )
    grant = stream.add_argument_group("another account's stack")
    grant.add_argument(
        "--grant-read-to",
        dest="readers",
        action="append",
        default=[],
        metavar="ROLE_ARN|ACCOUNT",
        help="let this role (the stack's StreamRoleArn output) or account read the streams: sets the "
        "TflockReaperAuditRead statement of each stream's resource-based policy; repeatable",
    )


def _completion(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    completion = commands.add_parser(
        "completion",
        formatter_class=_formatter,
        help="print the shell completion script (bash or zsh)",
        description=_wrapped("Print the completion script of a shell."),
        epilog=_epilog(
            f'  eval "$({PROG} completion bash)"                          # bash: this shell\n'
            f"  {PROG} completion bash > ~/.local/share/bash-completion/completions/{PROG}\n"
            f'  {PROG} completion zsh > "${{fpath[1]}}/_{PROG}"             # zsh: then restart it'
        ),
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell")
