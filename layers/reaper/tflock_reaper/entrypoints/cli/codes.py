"""The CLI's exit codes, in one table: ``--help`` shows it; the package docstring repeats it (a test compares)."""

from __future__ import annotations

import textwrap

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2
EXIT_AWS = 3
EXIT_FAIL_ON = 4
EXIT_DECLINED = 5
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141

EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "done, whatever a sweep or a listing found"),
    (
        EXIT_NOT_FOUND,
        (
            "no such lock: nothing at LOCK_PATH (explain, unlock); unlock: what is there is not the lock asked for "
            "(another ID, a digest or other item that is not a lock, an unreadable lock) or it changed before the "
            "delete. Nothing deleted; the message shows what is there"
        ),
    ),
    (
        EXIT_CONFIG,
        (
            "usage or configuration: an option, the policy file, the AWS region, profile or credentials, --enforce "
            "on a dry-run policy, unlock off a terminal without --yes"
        ),
    ),
    (EXIT_AWS, "AWS could not be used: table or bucket missing, access denied, endpoint unreachable, a delete failed"),
    (EXIT_FAIL_ON, "a --fail-on condition holds (the output is complete)"),
    (EXIT_DECLINED, "not confirmed at the prompt: nothing deleted"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_BROKEN_PIPE, "stdout closed early (e.g. piped into head): output stopped, nothing printed about it"),
)


def exit_codes_help() -> str:
    """The table as ``--help`` shows it."""
    rows = (
        textwrap.fill(meaning, width=100, initial_indent=f"  {code:<4} ", subsequent_indent=" " * 7)
        for code, meaning in EXIT_CODES
    )
    return "exit codes:\n" + "\n".join(rows)
