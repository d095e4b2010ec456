"""Verdicts: a pure function of the lock, when the reaper first saw it, now, the holder's status and the rule.

A lock is *reaped* only when every gate opens: past ``reap_after`` by server-side evidence, observed for
``min_observed``, holder ``not_running``, clocks agree, the mode is enforce, and the sweep is under
``max_reaps_per_sweep``. Any gate that stays shut turns the reap into a warning marked *blocked*, with the gate
named in the reasons.

Two clocks, two uses. ``Created`` is the holder's own clock: it may run hours slow, which would make a fresh
lock look old. So an age that can make a reap happen comes only from the server: the stream's acquisition time
(AWS's clock), a lockfile's ``LastModified`` (S3's), or, without either, the reaper's own first sighting (the lock
has existed at least since then). ``Created`` still drives warnings and what humans read, marked as the holder's
clock; a rule may opt in to reaping by it with ``trust_holder_clock: true``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import DIGEST_SUFFIX, LockRecord
from tflock_reaper.domain.policy import EffectiveRule

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


#: ``age_basis`` / ``reap_age_basis`` values.
SERVER_TIME = "server time"
"""The stream's acquisition time (AWS's clock) or a lockfile's ``LastModified`` (S3's)."""
HOLDER_CLOCK = "Created, the holder's clock"
FIRST_SEEN = "first seen by the reaper"
TRUSTED_HOLDER_CLOCK = "Created, the holder's clock (trust_holder_clock)"


@dataclass(frozen=True)
class Verdict:
    action: Action
    reasons: tuple[str, ...]
    age: timedelta
    """How long the lock has been held, as best known: what warnings and humans go by."""
    age_basis: str
    observed: timedelta
    rule: EffectiveRule
    holder: HolderStatus | None
    blocked: bool = False
    reap_age: timedelta = timedelta(0)
    """The age that gates the reap: from server-side evidence only (unless the rule trusts the holder's clock)."""
    reap_age_basis: str = FIRST_SEEN


@dataclass(frozen=True)
class Ages:
    """What one lock's times say, for one rule (see the module docstring)."""

    age: timedelta
    basis: str
    reap_age: timedelta
    reap_basis: str
    acquired_by: datetime
    """The latest moment the lock can have been taken: a CI run that started after it cannot hold the lock."""


def lock_ages(
    lock: LockRecord, rule: EffectiveRule, *, first_seen: datetime, now: datetime, acquired_at: datetime | None
) -> Ages:
    """The lock's age for humans and warnings, the age that gates its reap, and the bound on its acquisition.

    ``acquired_at`` is the server's acquisition time when known (stream, lockfile). Without it, the reap gate
    measures from ``first_seen``: the lock has existed at least since the reaper first saw it, whatever its
    ``Created`` says. The age shown is the longer of ``Created``'s and the first sighting's (a lock seen an hour
    ago is at least an hour old, even if its holder's clock runs fast).
    """
    if acquired_at is not None:
        age = now - acquired_at
        return Ages(age, SERVER_TIME, age, SERVER_TIME, acquired_at)
    by_created = now - lock.info.created
    by_sighting = max(now - first_seen, timedelta(0))
    age, basis = (by_created, HOLDER_CLOCK) if by_created >= by_sighting else (by_sighting, FIRST_SEEN)
    if rule.trust_holder_clock:
        return Ages(age, basis, by_created, TRUSTED_HOLDER_CLOCK, min(first_seen, lock.info.created))
    return Ages(age, basis, by_sighting, FIRST_SEEN, first_seen)


#: The holder of a lock not yet old enough to reap is not asked (checks can be slow or rate-limited).
_NOT_ASKED = HolderStatus(HolderState.UNKNOWN, "not asked", "none")


def needs_holder_check(ages: Ages, rule: EffectiveRule) -> bool:
    """Holder checks can be slow or rate-limited: only ask for locks old enough to reap (by the reap gate's age)."""
    return ages.reap_age >= rule.reap_after


def decide(
    lock: LockRecord,
    *,
    rule: EffectiveRule,
    first_seen: datetime,
    now: datetime,
    holder: HolderStatus | None,
    acquired_at: datetime | None = None,
) -> Verdict:
    ages = lock_ages(lock, rule, first_seen=first_seen, now=now, acquired_at=acquired_at)
    age = ages.age
    observed = max(now - first_seen, timedelta(0))
    held = f"held {format_duration(age)} (by {ages.basis})"

    def verdict(action: Action, reasons: list[str], *, blocked: bool = False) -> Verdict:
        return Verdict(
            action, tuple(reasons), age, ages.basis, observed, rule, holder, blocked, ages.reap_age, ages.reap_basis
        )

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
    old_enough = ages.reap_age >= rule.reap_after
    if ages.reap_basis != ages.basis and old_enough:
        reasons.append(f"{format_duration(ages.reap_age)} by {ages.reap_basis}: past reap_after too")
    elif not old_enough:
        reasons.append(
            f"only {format_duration(ages.reap_age)} by {ages.reap_basis}, under reap_after "
            f"{format_duration(rule.reap_after)}: the reap waits for server-side evidence of the lock's age "
            "(the holder's Created is not trusted for reaping: see trust_holder_clock)"
        )
    gates = _closed_gates(
        lock,
        rule=rule,
        first_seen=first_seen,
        observed=observed,
        holder=holder if old_enough else _NOT_ASKED,
        acquired_at=acquired_at,
    )
    if gates or not old_enough:
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
    if lock.in_table and lock.lock_path.endswith(DIGEST_SUFFIX):
        # Decided before anything is deleted: a dual backend's lockfile must not go when its item cannot.
        gates.append(
            f"the lock item's key ends in {DIGEST_SUFFIX}, like Terraform's digest items: the reaper never deletes "
            "such a key (the stack's IAM role cannot), so no side of this lock is deleted: release it by hand"
        )
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
    elif holder is _NOT_ASKED:
        pass  # not old enough to reap by server-side evidence: that reason is given, the holder was not asked
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
