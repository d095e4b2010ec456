"""Given a lock, when it was first seen, now and its holder's status, decide gives keep, warn or reap."""

from datetime import timedelta

import pytest
from factories import NOW, lock_item
from tflock_reaper.decision import Action, Outcome, Verdict, decide, plan_sweep
from tflock_reaper.holder import AssumeGone, AssumeUnknown, HolderState, HolderStatus
from tflock_reaper.lock import LockRecord, classify_item
from tflock_reaper.policy import EffectiveRule, HolderSpec

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


def _decide(age, *, observed=timedelta(hours=1), holder=GONE, acquired_at=None):
    lock = _lock(age)
    return decide(lock, rule=RULE, first_seen=NOW - observed, now=NOW, holder=holder, acquired_at=acquired_at)


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
        ({"observed": timedelta(minutes=9)}, "under min_observed 10m"),
        ({"observed": timedelta(0)}, "under min_observed 10m"),
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
    assert AssumeGone().status(lock, NOW).state is HolderState.NOT_RUNNING
    assert AssumeUnknown().status(lock, NOW).state is HolderState.UNKNOWN
