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
from tflock_reaper.domain.holds import Hold, active_holds
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


class Gate(StrEnum):
    """What keeps a lock past ``reap_after`` from being reaped (each also named, in words, in the reasons)."""

    REAP_AGE = "reap-age"
    """Not yet ``reap_after`` old by server-side evidence: the reap waits."""
    DIGEST_KEY = "digest-key"
    CLOCK_SKEW = "clock-skew"
    MIN_OBSERVED = "min-observed"
    HOLDER_NOT_CHECKED = "holder-not-checked"
    HOLDER_RUNNING = "holder-running"
    HOLDER_UNKNOWN = "holder-unknown"
    HUMAN_HOLD = "human-hold"
    """Snoozed, or claimed (It's mine), from the Slack app: no automatic reap of this acquisition."""


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
    gates: tuple[Gate, ...] = ()
    """What keeps the reap (a ``blocked`` verdict), in the order the reasons name them."""


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
    holds: tuple[Hold, ...] = (),
) -> Verdict:
    ages = lock_ages(lock, rule, first_seen=first_seen, now=now, acquired_at=acquired_at)
    age = ages.age
    observed = max(now - first_seen, timedelta(0))
    held = f"held {format_duration(age)} (by {ages.basis})"

    def verdict(action: Action, reasons: list[str], gates: tuple[Gate, ...] = ()) -> Verdict:
        return Verdict(
            action,
            tuple(reasons),
            age,
            ages.basis,
            observed,
            rule,
            holder,
            bool(gates),
            ages.reap_age,
            ages.reap_basis,
            gates,
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
    if ages.reap_basis != ages.basis and ages.reap_age >= rule.reap_after:
        reasons.append(f"{format_duration(ages.reap_age)} by {ages.reap_basis}: past reap_after too")
    gates = _closed_gates(
        lock, rule=rule, ages=ages, first_seen=first_seen, observed=observed, holder=holder, acquired_at=acquired_at
    )
    gates += [(Gate.HUMAN_HOLD, hold.reason(now)) for hold in active_holds(holds, now)]
    if gates:
        return verdict(Action.WARN, reasons + [text for _, text in gates], tuple(gate for gate, _ in gates))
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
    ages: Ages,
    first_seen: datetime,
    observed: timedelta,
    holder: HolderStatus | None,
    acquired_at: datetime | None,
) -> list[tuple[Gate, str]]:
    """The gates shut for a lock past ``reap_after`` by its shown age, with their reasons, in that order."""
    gates: list[tuple[Gate, str]] = []

    def shut(gate: Gate, reason: str) -> None:
        gates.append((gate, reason))

    old_enough = ages.reap_age >= rule.reap_after
    if not old_enough:
        shut(
            Gate.REAP_AGE,
            f"only {format_duration(ages.reap_age)} by {ages.reap_basis}, under reap_after "
            f"{format_duration(rule.reap_after)}: the reap waits for server-side evidence of the lock's age "
            "(the holder's Created is not trusted for reaping: see trust_holder_clock)",
        )
    created = lock.info.created
    if lock.digest_like_key:
        # Decided before anything is deleted: a dual backend's lockfile must not go when its item cannot.
        shut(
            Gate.DIGEST_KEY,
            f"the lock item's key ends in {DIGEST_SUFFIX}, like Terraform's digest items: the reaper never "
            "deletes such a key (the stack's IAM role cannot), so no side of this lock is deleted: release it "
            "by hand",
        )
    if acquired_at is not None and abs(created - acquired_at) > SKEW_TOLERANCE:
        shut(
            Gate.CLOCK_SKEW,
            f"clock skew: Created {created.isoformat()} differs from the server's acquisition time "
            f"{acquired_at.isoformat()} by more than {format_duration(SKEW_TOLERANCE)}: not reaping",
        )
    if created - first_seen > SKEW_TOLERANCE:
        shut(
            Gate.CLOCK_SKEW,
            f"clock skew: Created {created.isoformat()} is later than the reaper first saw the lock "
            f"({first_seen.isoformat()}): the holder's clock runs fast, not reaping",
        )
    if observed < rule.min_observed:
        shut(
            Gate.MIN_OBSERVED,
            f"first observed {format_duration(observed)} ago, under min_observed "
            f"{format_duration(rule.min_observed)}: not reaping yet",
        )
    if old_enough:  # a younger lock's holder is not asked (see needs_holder_check): no gate of its own
        gates += _holder_gate(holder)
    return gates


def _holder_gate(holder: HolderStatus | None) -> list[tuple[Gate, str]]:
    """The holder's gate: shut unless its check answered ``not_running``."""
    if holder is None:
        return [(Gate.HOLDER_NOT_CHECKED, "holder not checked: not reaping")]
    if holder.state is HolderState.RUNNING:
        return [(Gate.HOLDER_RUNNING, f"holder is running: {holder.evidence} [{holder.check}]")]
    if holder.state is HolderState.UNKNOWN:
        return [(Gate.HOLDER_UNKNOWN, f"holder liveness unknown: {holder.evidence} [{holder.check}]")]
    return []


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
