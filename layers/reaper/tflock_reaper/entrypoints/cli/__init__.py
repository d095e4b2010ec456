"""``tflock-reaper``: the operator CLI. Runs the same engine as the Lambda from a laptop.

Commands: ``locks`` (a listing), ``sweep`` (judge; reap with ``--enforce``), ``explain`` (one lock),
``unlock`` (release one acquisition by hand), ``enable-stream``, ``completion`` (bash, zsh).

Exit codes:
  0    done, whatever a sweep or a listing found
  1    no such lock: nothing at LOCK_PATH (explain, unlock); unlock: what is there is not the lock asked for
       (another ID, a digest or other item that is not a lock, an unreadable lock) or it changed before the
       delete. Nothing deleted; the message shows what is there
  2    usage or configuration: an option, the policy file, the AWS region, profile or credentials, --enforce on
       a dry-run policy, unlock off a terminal without --yes
  3    AWS could not be used: table or bucket missing, access denied, endpoint unreachable, a delete failed
  4    a --fail-on condition holds (the output is complete)
  5    not confirmed at the prompt: nothing deleted
  130  interrupted (Ctrl-C)
  141  stdout closed early (e.g. piped into head): output stopped, nothing printed about it

An operator's mistake or AWS's refusal is one line on stderr (``tflock-reaper: <cause>: <fix>``), never a
traceback. Rich (tables, colour) and shtab (completion) are the CLI's alone: imported only when used, never by the
Lambda functions (which do not import this package).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from tflock_reaper.entrypoints.cli.codes import (
    EXIT_AWS,
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_DECLINED,
    EXIT_FAIL_ON,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
)
from tflock_reaper.entrypoints.cli.commands import (
    Run,
    configure_logging,
    run_enable_stream,
    run_explain,
    run_locks,
    run_sweep,
)
from tflock_reaper.entrypoints.cli.errors import HANDLED, operator_error
from tflock_reaper.entrypoints.cli.history import run_backtest, run_history, run_suggest
from tflock_reaper.entrypoints.cli.parser import build_parser
from tflock_reaper.entrypoints.cli.unlock import run_unlock

__all__ = [
    "EXIT_AWS",
    "EXIT_BROKEN_PIPE",
    "EXIT_CONFIG",
    "EXIT_DECLINED",
    "EXIT_FAIL_ON",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "main",
]

_COMMANDS: dict[str, Callable[[Run], int]] = {
    "locks": run_locks,
    "sweep": run_sweep,
    "explain": run_explain,
    "unlock": run_unlock,
    "enable-stream": run_enable_stream,
    "history": run_history,
    "backtest": run_backtest,
    "suggest": run_suggest,
}


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    *,
    stdin: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run one command; the exit code. ``out``/``stdin``/``err`` default to the process's streams."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        return _main(argv, out, err, stdin or sys.stdin)
    except KeyboardInterrupt:
        err.write(
            "\ntflock-reaper: interrupted (Ctrl-C): stopped; locks reaped before it are logged above as "
            '"lock reaped"; `tflock-reaper locks` shows what is held now\n'
        )
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet(out)
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "completion":
        import shtab  # noqa: PLC0415 - the completion command's alone

        out.write(shtab.complete(parser, shell=args.shell))
        out.flush()
        return EXIT_OK
    configure_logging(verbose=args.verbose)
    try:
        code = _COMMANDS[args.command](Run(args, out, err, stdin))
    except HANDLED as error:
        code, message = operator_error(error)
        err.write(f"tflock-reaper: {message}\n")
    out.flush()  # inside the try of main: a reader gone (| head) shows here, not at exit
    return code


def _quiet(out: TextIO) -> None:
    """The reader of stdout is gone (``tflock-reaper locks | head``): say nothing more there. Python flushes stdout
    again at exit, so it is pointed at /dev/null (the Python docs' recipe, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
    except (OSError, ValueError, AttributeError):  # not a file (a test's StringIO): nothing to redirect
        return
