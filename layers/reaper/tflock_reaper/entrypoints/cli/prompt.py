"""Asking before a deletion, as ``terraform apply`` does: the question and what it is about go to stderr (stdout stays
the command's output, e.g. JSON), the answer comes from stdin, and only ``yes`` approves.

A run asks only when someone can see the question and answer it: stdin and stderr both terminals. ``sweep
--enforce`` then skips the question (``--yes`` also skips it); ``unlock`` refuses instead (exit 2), unless ``--yes``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from tflock_reaper.domain.report import LockReport
from tflock_reaper.domain.text import one_line
from tflock_reaper.entrypoints.cli.render import lock_preview

APPROVAL = "yes"


def interactive(stdin: TextIO, err: TextIO) -> bool:
    """Whether a person can see a question (stderr) and answer it (stdin)."""
    try:
        return stdin.isatty() and err.isatty()
    except (AttributeError, ValueError):
        return False


def ask(stdin: TextIO, err: TextIO, question: str) -> bool:
    """``question`` on stderr; True only for the answer ``yes``. End of input declines."""
    err.write(f"{question} Only '{APPROVAL}' will be accepted.\n  Enter a value: ")
    err.flush()
    answer = stdin.readline()
    if not answer.endswith("\n"):
        err.write("\n")
    return answer.strip() == APPROVAL


@dataclass
class ReapPrompt:
    """``sweep --enforce`` on a terminal: shows the locks about to be reaped and asks (see
    :func:`tflock_reaper.services.sweep.sweep`'s ``confirm``)."""

    stdin: TextIO
    err: TextIO
    declined: bool = False

    def __call__(self, reaps: Sequence[LockReport]) -> bool:
        self.err.write(f"tflock-reaper will reap (delete) {len(reaps)} lock(s):\n")
        for entry in reaps:
            self.err.write(lock_preview(entry.lock, datetime.now(UTC)) + "\n")
            why = entry.reasons[0] if entry.reasons else entry.verdict.action.value
            self.err.write(f"  Why       {one_line(why)}\n\n")
        approved = ask(self.stdin, self.err, f"Reap {len(reaps)} lock(s)?")
        self.declined = not approved
        if self.declined:
            self.err.write("Not confirmed: nothing reaped (the sweep goes on as a dry run).\n")
        return approved
