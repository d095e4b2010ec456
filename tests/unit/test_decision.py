"""Given a lock, when it was first seen, now and its holder's status, decide gives keep, warn or reap."""

from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NOW, lock_item
from tflock_reaper.domain.decision import (
    FIRST_SEEN,
    HOLDER_CLOCK,
    SERVER_TIME,
    TRUSTED_HOLDER_CLOCK,
    Action,
    Gate,
    Outcome,
    Verdict,
    decide,
    lock_ages,
    plan_sweep,
)
from tflock_reaper.domain.liveness import AssumeGone, AssumeUnknown, HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import EffectiveRule, HolderSpec

RULE = EffectiveRule(
    "defaults",
    warn_after=timedelta(minutes=30),
    reap_after=timedelta(hours=2),
    min_observed=timedelta(minutes=10),
    holder=HolderSpec(assume="gone"),
)
GONE = HolderStatus(HolderState.NOT_RUNNING, "no run in progress", "test")
RUNNING = HolderStatus(HolderState.RUNNING, "run 42 in progress", "test")
UNKNOWN = HolderStatus(HolderState.UNKNOWN, "the CI API timed out", "test")


def _lock(age: timedelta) -> LockRecord:
    lock = classify_item(lock_item(created=NOW - age), NOW)
    assert isinstance(lock, LockRecord)
    return lock


def _decide(age, *, observed=None, holder=GONE, acquired_at=None, rule=RULE):
    """``observed`` defaults to the lock's age: a reaper sweeping often first saw it when it was taken."""
    lock = _lock(age)
    first_seen = NOW - (age if observed is None else observed)
    return decide(lock, rule=rule, first_seen=first_seen, now=NOW, holder=holder, acquired_at=acquired_at)


def test_young_lock_is_kept():
    verdict = _decide(timedelta(minutes=29))
    assert verdict.action is Action.KEEP
    assert "under warn_after 30m" in verdict.reasons[0]


def test_lock_past_warn_after_is_warned_not_reaped():
    verdict = _decide(timedelta(minutes=31))
    assert verdict.action is Action.WARN
    assert not verdict.blocked


def test_lock_past_every_gate_is_reaped_with_reasons():
    verdict = _decide(timedelta(hours=3))
    assert verdict.action is Action.REAP
    assert any("past reap_after 2h" in r for r in verdict.reasons)
    assert any("holder not running: no run in progress" in r for r in verdict.reasons)


@pytest.mark.parametrize(
    ("kwargs", "gate"),
    [
        ({"holder": UNKNOWN}, "holder liveness unknown: the CI API timed out"),
        ({"holder": RUNNING}, "holder is running: run 42 in progress"),
        ({"holder": None}, "holder not checked"),
        ({"observed": timedelta(minutes=9), "rule": replace(RULE, trust_holder_clock=True)}, "under min_observed 10m"),
        ({"observed": timedelta(0), "rule": replace(RULE, trust_holder_clock=True)}, "under min_observed 10m"),
        ({"observed": timedelta(minutes=9)}, "only 9m by first seen by the reaper, under reap_after 2h"),
    ],
)
def test_each_closed_gate_blocks_the_reap_and_is_named(kwargs, gate):
    verdict = _decide(timedelta(hours=3), **kwargs)
    assert verdict.action is Action.WARN
    assert verdict.blocked
    assert any(gate in r for r in verdict.reasons), verdict.reasons


def test_server_time_is_the_age_basis_when_known():
    # Created says 3h old, but the server saw the acquisition 1h ago: the lock is only warned.
    lock = _lock(timedelta(hours=3))
    verdict = decide(
        lock, rule=RULE, first_seen=NOW - timedelta(hours=1), now=NOW, holder=GONE, acquired_at=NOW - timedelta(hours=1)
    )
    assert verdict.age == timedelta(hours=1)
    assert verdict.age_basis == "server time"
    assert verdict.action is Action.WARN


def test_skew_between_created_and_server_time_blocks():
    lock = _lock(timedelta(hours=9))
    verdict = decide(
        lock, rule=RULE, first_seen=NOW - timedelta(hours=4), now=NOW, holder=GONE, acquired_at=NOW - timedelta(hours=3)
    )
    assert verdict.action is Action.WARN
    assert any("clock skew" in r for r in verdict.reasons)


def test_created_later_than_first_seen_means_a_fast_holder_clock_and_blocks():
    lock = _lock(timedelta(hours=3))
    verdict = decide(lock, rule=RULE, first_seen=NOW - timedelta(hours=4), now=NOW, holder=GONE)
    assert verdict.action is Action.WARN
    assert any("holder's clock runs fast" in r for r in verdict.reasons)


def test_slow_holder_clock_cannot_make_a_fresh_lock_reapable():
    # Issue 13.1: taken 12 minutes ago by a host whose clock runs 3 h slow; no stream time. Created says 3h12m.
    verdict = _decide(timedelta(hours=3, minutes=12), observed=timedelta(minutes=12))
    assert verdict.action is Action.WARN
    assert verdict.blocked
    assert (verdict.age, verdict.age_basis) == (timedelta(hours=3, minutes=12), HOLDER_CLOCK)
    assert (verdict.reap_age, verdict.reap_age_basis) == (timedelta(minutes=12), FIRST_SEEN)
    assert any("only 12m by first seen by the reaper, under reap_after 2h" in r for r in verdict.reasons)
    assert not any(r.startswith("holder") for r in verdict.reasons), "the holder is not asked about a lock this young"
    assert verdict.gates == (Gate.REAP_AGE,)


def test_without_server_time_the_reap_waits_for_the_reapers_own_sighting():
    verdict = _decide(timedelta(hours=3), observed=timedelta(hours=2, minutes=5))
    assert verdict.action is Action.REAP
    assert (verdict.reap_age, verdict.reap_age_basis) == (timedelta(hours=2, minutes=5), FIRST_SEEN)
    assert any("2h5m by first seen by the reaper: past reap_after too" in r for r in verdict.reasons)


def test_trust_holder_clock_lets_created_gate_the_reap():
    verdict = _decide(
        timedelta(hours=3, minutes=12), observed=timedelta(minutes=12), rule=replace(RULE, trust_holder_clock=True)
    )
    assert verdict.action is Action.REAP
    assert (verdict.reap_age, verdict.reap_age_basis) == (timedelta(hours=3, minutes=12), TRUSTED_HOLDER_CLOCK)


def test_server_time_gates_the_reap_whatever_created_says():
    verdict = _decide(timedelta(minutes=5), observed=timedelta(minutes=5), acquired_at=NOW - timedelta(hours=3))
    assert (verdict.age_basis, verdict.reap_age_basis) == (SERVER_TIME, SERVER_TIME)
    assert verdict.action is Action.WARN  # Created and the server disagree by hours: the skew gate keeps it
    assert any("clock skew" in r for r in verdict.reasons)


def test_a_fast_holder_clock_cannot_hide_how_long_the_reaper_has_seen_a_lock():
    # Created says 20 minutes, but the reaper has seen this lock for an hour: it is at least an hour old.
    verdict = _decide(timedelta(minutes=20), observed=timedelta(hours=1))
    assert verdict.action is Action.WARN
    assert (verdict.age, verdict.age_basis) == (timedelta(hours=1), FIRST_SEEN)


@pytest.mark.parametrize(
    ("trust", "acquired_at", "expected"),
    [
        (False, None, NOW - timedelta(minutes=12)),  # first seen: the lock existed at least since then
        (True, None, NOW - timedelta(hours=3)),  # trusted Created, earlier than the first sighting
        (False, NOW - timedelta(minutes=14), NOW - timedelta(minutes=14)),  # the stream's acquisition time
        (True, NOW - timedelta(minutes=14), NOW - timedelta(minutes=14)),
    ],
)
def test_holder_checks_are_bounded_by_server_side_evidence(trust, acquired_at, expected):
    """A CI run that started after ``acquired_by`` cannot hold the lock: the bound never comes from an
    untrusted Created (a slow clock would exclude the very run that holds the lock)."""
    lock = _lock(timedelta(hours=3))
    ages = lock_ages(
        lock,
        replace(RULE, trust_holder_clock=trust),
        first_seen=NOW - timedelta(minutes=12),
        now=NOW,
        acquired_at=acquired_at,
    )
    assert ages.acquired_by == expected


def _verdict(action: Action, *, blocked=False) -> Verdict:
    return Verdict(action, (), timedelta(0), "Created", timedelta(0), RULE, None, blocked)


def test_plan_dry_run_never_reaps():
    plan = plan_sweep([_verdict(Action.REAP), _verdict(Action.KEEP)], enforce=False, max_reaps=3)
    assert plan.outcomes == (Outcome.WOULD_REAP, Outcome.KEPT)
    assert plan.breaker is None


def test_plan_enforce_reaps_and_marks_blocked_warnings():
    verdicts = [_verdict(Action.REAP), _verdict(Action.WARN), _verdict(Action.WARN, blocked=True)]
    plan = plan_sweep(verdicts, enforce=True, max_reaps=3)
    assert plan.outcomes == (Outcome.REAPED, Outcome.WARNED, Outcome.BLOCKED)


def test_circuit_breaker_reaps_none_when_too_many_qualify():
    plan = plan_sweep([_verdict(Action.REAP)] * 4, enforce=True, max_reaps=3)
    assert plan.outcomes == (Outcome.BLOCKED,) * 4
    assert plan.breaker is not None
    assert "4 locks qualify" in plan.breaker


def test_circuit_breaker_allows_exactly_the_maximum():
    plan = plan_sweep([_verdict(Action.REAP)] * 3, enforce=True, max_reaps=3)
    assert plan.outcomes == (Outcome.REAPED,) * 3


def test_assume_checks_answer_as_declared():
    lock = _lock(timedelta(hours=3))
    assert AssumeGone().status(lock, NOW, NOW).state is HolderState.NOT_RUNNING
    assert AssumeUnknown().status(lock, NOW, NOW).state is HolderState.UNKNOWN
