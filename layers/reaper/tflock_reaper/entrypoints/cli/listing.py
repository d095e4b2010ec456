"""What a listing shows of a sweep's report: each lock's status in words, the filters and order of ``locks``, and
the ``--fail-on`` conditions.

A status says what the lock is and what the reaper would do about it, in words a newcomer reads right. The engine's
``blocked`` outcome means "past reap_after, and a gate keeps the reap"; a run without the reaper's memory (no
``--state-table``) sees every lock for the first time, so every lock past reap_after would read as blocked. The
status tells apart a reap that waits for observation time (it says how long, and why) from one that a gate stops,
and a lock whose holder still runs from both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from fnmatch import fnmatchcase

from tflock_reaper.domain.decision import Action, Gate, Outcome
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.lock import DIGEST_SUFFIX, SkippedItem
from tflock_reaper.domain.report import LockReport, SweepReport


class Kind(StrEnum):
    OK = "ok"
    STALE = "stale"
    WAITING = "waiting"
    """Past reap_after by the age shown; the reap waits for observation time (reap_after or min_observed)."""
    IN_USE = "in-use"
    BLOCKED = "not-reaped"
    """Past reap_after and kept by a gate a human must look at (holder unknown, skew, breaker, a -md5 key): the
    reap is blocked (``--fail-on blocked``), but the listing says so in words, never "blocked"."""
    WOULD_REAP = "would-reap"
    REAPED = "reaped"
    CHANGED = "changed"
    FAILED = "failed"


#: Kinds that ``--fail-on blocked`` counts: a reap that waiting will not bring.
BLOCKED_KINDS = frozenset({Kind.BLOCKED, Kind.IN_USE, Kind.FAILED})

ONE_OFF_NOTE = (
    "* This run has no memory of earlier sweeps (no --state-table): it sees every lock for the first time, and a "
    "lock's Created (its holder's clock) does not count toward reap_after. The deployed sweeper (or this CLI with "
    "--state-table) reaps such a lock once it has watched it for reap_after, if the holder check says the holder "
    "is gone; a rule with trust_holder_clock: true lets Created count."
)


@dataclass(frozen=True)
class Status:
    kind: Kind
    text: str
    one_off: bool = False
    """The status is owed to a run without memory: :data:`ONE_OFF_NOTE` explains it."""


def status_of(entry: LockReport, *, remembers: bool) -> Status:
    """The lock's status. ``remembers``: the run has the reaper's memory (a state table)."""
    simple = {
        Outcome.KEPT: Status(Kind.OK, "ok"),
        Outcome.WARNED: Status(Kind.STALE, "stale"),
        Outcome.WOULD_REAP: Status(Kind.WOULD_REAP, "stale, would reap"),
        Outcome.REAPED: Status(Kind.REAPED, "reaped"),
        Outcome.CHANGED: Status(Kind.CHANGED, "released or taken again meanwhile: left alone"),
        Outcome.FAILED: Status(Kind.FAILED, "stale, the reap failed"),
    }
    return simple.get(entry.outcome) or _held_back(entry, remembers=remembers)


def _held_back(entry: LockReport, *, remembers: bool) -> Status:
    """A ``blocked`` outcome, by what holds the reap back (the verdict's gates): a gate a human must look at first,
    then the observation time the reap waits for."""
    verdict, rule = entry.verdict, entry.verdict.rule
    gates = set(verdict.gates)
    if verdict.action is Action.REAP:
        return Status(Kind.BLOCKED, "stale, not reaped: circuit breaker")
    if Gate.DIGEST_KEY in gates:
        return Status(Kind.BLOCKED, f"stale, not reaped: key ends in {DIGEST_SUFFIX}, release by hand")
    if Gate.CLOCK_SKEW in gates:
        return Status(Kind.BLOCKED, "stale, not reaped: clock skew")
    if Gate.HOLDER_RUNNING in gates:
        return Status(Kind.IN_USE, "in use: holder running")
    if Gate.HOLDER_UNKNOWN in gates:
        return Status(Kind.BLOCKED, "stale, not reaped: holder unknown")
    waits = (
        (Gate.REAP_AGE, verdict.reap_age, rule.reap_after),
        (Gate.MIN_OBSERVED, verdict.observed, rule.min_observed),
    )
    for gate, waited, needed in waits:
        if gate in gates:
            if remembers:
                return Status(Kind.WAITING, f"stale, reap waits for {format_duration(needed - waited)} more")
            return Status(Kind.WAITING, f"stale, reap waits for {format_duration(needed)} of observation*", True)
    return Status(Kind.BLOCKED, "stale, not reaped: see explain")


@dataclass(frozen=True)
class Filters:
    stale: bool = False
    older_than: timedelta | None = None
    path: str | None = None
    sort: str = "report"
    """``age`` (oldest first), ``path``, or ``report`` (the sweep's order)."""

    @property
    def active(self) -> bool:
        return self.stale or self.older_than is not None or self.path is not None

    def locks(self, entries: Iterable[LockReport]) -> list[LockReport]:
        shown = [entry for entry in entries if self._keeps(entry)]
        if self.sort == "age":
            return sorted(shown, key=lambda entry: (-entry.verdict.age, entry.lock.lock_path))
        if self.sort == "path":
            return sorted(shown, key=lambda entry: (entry.lock.lock_path, entry.lock.table or ""))
        return shown

    def skipped(self, items: Iterable[SkippedItem]) -> list[SkippedItem]:
        return [item for item in items if self.path is None or fnmatchcase(item.lock_path, self.path)]

    def _keeps(self, entry: LockReport) -> bool:
        if self.stale and entry.verdict.action is Action.KEEP:
            return False
        if self.older_than is not None and entry.verdict.age < self.older_than:
            return False
        return self.path is None or fnmatchcase(entry.lock.lock_path, self.path)


def failed_conditions(
    conditions: Sequence[str],
    report: SweepReport,
    shown: Sequence[tuple[LockReport, Status]],
    skipped: Sequence[SkippedItem],
) -> list[str]:
    """Each ``--fail-on`` condition that holds, as ``<condition>: <what>``, for the locks shown."""
    counts = {
        "stale": (
            sum(1 for entry, _ in shown if entry.verdict.action is not Action.KEEP)
            + sum(1 for item in skipped if item.unreadable),
            "stale or unreadable lock(s)",
        ),
        "blocked": (sum(1 for _, status in shown if status.kind in BLOCKED_KINDS), "lock(s) whose reap is blocked"),
        "notify-failed": (_notify_failures(report), "alert(s) not delivered"),
        "breaker": (1 if report.breaker else 0, "circuit breaker tripped"),
    }
    held = []
    for condition in dict.fromkeys(conditions):
        count, what = counts[condition]
        if count:
            held.append(f"{condition}: {count} {what}" if condition != "breaker" else f"breaker: {report.breaker}")
    return held


def _notify_failures(report: SweepReport) -> int:
    records = [record for entry in report.locks for record in entry.notifications]
    records += [record for sent in report.unreadable_notifications.values() for record in sent]
    return sum(record.failure_count for record in records)
