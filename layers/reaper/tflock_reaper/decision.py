"""Verdicts: a pure function of the lock, when the reaper first saw it, now, the holder's status and the rule.

A lock is *reaped* only when every gate opens: past ``reap_after``, observed for ``min_observed``, holder
``not_running``, clocks agree, the mode is enforce, and the sweep is under ``max_reaps_per_sweep``. Any gate
that stays shut turns the reap into a warning marked *blocked*, with the gate named in the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tflock_reaper.durations import format_duration
from tflock_reaper.holder import HolderState, HolderStatus
from tflock_reaper.lock import LockRecord
from tflock_reaper.policy import EffectiveRule

#: Holder and server clocks may disagree by this much before a lock counts as skewed (alert, never reap).
SKEW_TOLERANCE = timedelta(minutes=5)


class Action(StrEnum):
    KEEP = "keep"
    WARN = "warn"
    REAP = "reap"


class Outcome(StrEnum):
    KEPT = "kept"
    WARNED = "warned"
    BLOCKED = "blocked"
    WOULD_REAP = "would-reap"
    REAPED = "reaped"
    CHANGED = "changed"
    FAILED = "failed"


#: Outcomes that mean "this lock is stale and still held": alerted about, and remembered as ``warned_at``.
STALE_OUTCOMES = (Outcome.WARNED, Outcome.WOULD_REAP, Outcome.BLOCKED, Outcome.FAILED)


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: tuple[str, ...]
    age: timedelta
    age_basis: str
    observed: timedelta
    rule: EffectiveRule
    holder: HolderStatus | None
    blocked: bool = False


def lock_age(lock: LockRecord, now: datetime, acquired_at: datetime | None = None) -> tuple[timedelta, str]:
    """Age from the server's acquisition time when known (stream), else from the holder's ``Created``."""
    if acquired_at is not None:
        return now - acquired_at, "server time"
    return now - lock.info.created, "Created"


def needs_holder_check(
    lock: LockRecord, rule: EffectiveRule, now: datetime, acquired_at: datetime | None = None
) -> bool:
    """Holder checks can be slow or rate-limited: only ask for locks that are old enough to reap."""
    age, _ = lock_age(lock, now, acquired_at)
    return age >= rule.reap_after


def decide(
    lock: LockRecord,
    *,
    rule: EffectiveRule,
    first_seen: datetime,
    now: datetime,
    holder: HolderStatus | None,
    acquired_at: datetime | None = None,
) -> Verdict:
    age, basis = lock_age(lock, now, acquired_at)
    observed = max(now - first_seen, timedelta(0))
    held = f"held {format_duration(age)} (by {basis})"

    def verdict(action: Action, reasons: list[str], *, blocked: bool = False) -> Verdict:
        return Verdict(action, tuple(reasons), age, basis, observed, rule, holder, blocked)

    if age < rule.warn_after:
        return verdict(Action.KEEP, [f"{held}: under warn_after {format_duration(rule.warn_after)} ({rule.name})"])
    if age < rule.reap_after:
        return verdict(
            Action.WARN,
            [
                f"{held}: past warn_after {format_duration(rule.warn_after)} ({rule.name})",
                f"reap_after {format_duration(rule.reap_after)} not reached",
            ],
        )

    reasons = [f"{held}: past reap_after {format_duration(rule.reap_after)} ({rule.name})"]
    gates = _closed_gates(
        lock, rule=rule, first_seen=first_seen, observed=observed, holder=holder, acquired_at=acquired_at
    )
    if gates:
        return verdict(Action.WARN, reasons + gates, blocked=True)
    assert holder is not None  # an open holder gate means a not_running answer  # noqa: S101
    reasons += [
        f"observed for {format_duration(observed)} (min_observed {format_duration(rule.min_observed)})",
        f"holder not running: {holder.evidence} [{holder.check}]",
    ]
    return verdict(Action.REAP, reasons)


def _closed_gates(
    lock: LockRecord,
    *,
    rule: EffectiveRule,
    first_seen: datetime,
    observed: timedelta,
    holder: HolderStatus | None,
    acquired_at: datetime | None,
) -> list[str]:
    gates: list[str] = []
    created = lock.info.created
    if acquired_at is not None and abs(created - acquired_at) > SKEW_TOLERANCE:
        gates.append(
            f"clock skew: Created {created.isoformat()} differs from the server's acquisition time "
            f"{acquired_at.isoformat()} by more than {format_duration(SKEW_TOLERANCE)}: not reaping"
        )
    if created - first_seen > SKEW_TOLERANCE:
        gates.append(
            f"clock skew: Created {created.isoformat()} is later than the reaper first saw the lock "
            f"({first_seen.isoformat()}): the holder's clock runs fast, not reaping"
        )
    if observed < rule.min_observed:
        gates.append(
            f"first observed {format_duration(observed)} ago, under min_observed "
            f"{format_duration(rule.min_observed)}: not reaping yet"
        )
    if holder is None:
        gates.append("holder not checked: not reaping")
    elif holder.state is HolderState.RUNNING:
        gates.append(f"holder is running: {holder.evidence} [{holder.check}]")
    elif holder.state is HolderState.UNKNOWN:
        gates.append(f"holder liveness unknown: {holder.evidence} [{holder.check}]")
    return gates


@dataclass(frozen=True)
class SweepPlan:
    """What the sweep will do with each verdict, in order. ``REAPED`` means: attempt the conditional delete."""

    outcomes: tuple[Outcome, ...]
    breaker: str | None


def plan_sweep(verdicts: Sequence[Verdict], *, enforce: bool, max_reaps: int) -> SweepPlan:
    """Apply the mode and the circuit breaker: too many reap candidates in one sweep means reap none."""
    candidates = sum(1 for v in verdicts if v.action is Action.REAP)
    breaker = None
    if candidates > max_reaps:
        breaker = (
            f"circuit breaker: {candidates} locks qualify for reaping in this sweep, more than "
            f"max_reaps_per_sweep={max_reaps}: reaping none, a human should look"
        )
    outcomes = []
    for v in verdicts:
        if v.action is Action.KEEP:
            outcomes.append(Outcome.KEPT)
        elif v.action is Action.WARN:
            outcomes.append(Outcome.BLOCKED if v.blocked else Outcome.WARNED)
        elif breaker:
            outcomes.append(Outcome.BLOCKED)
        else:
            outcomes.append(Outcome.REAPED if enforce else Outcome.WOULD_REAP)
    return SweepPlan(tuple(outcomes), breaker)
