"""A person's hold from the Slack app (snooze, It's mine): no automatic reap of that acquisition while it holds, and
the alerts it quiets (domain.holds, the decision's gate, services.alerting's repeats)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from factories import NOW, lock_item
from tflock_reaper.domain.decision import Action, Gate, Outcome, Verdict, decide
from tflock_reaper.domain.holds import CLAIM_RENOTIFY, Hold, HoldKind
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.memory import LockState
from tflock_reaper.domain.policy import EffectiveRule, HolderSpec
from tflock_reaper.domain.report import LockReport
from tflock_reaper.services.alerting import notifications_for

RULE = EffectiveRule(
    "defaults",
    warn_after=timedelta(minutes=30),
    reap_after=timedelta(hours=2),
    min_observed=timedelta(0),
    holder=HolderSpec(assume="gone"),
    renotify_every=timedelta(hours=1),
)
GONE = HolderStatus(HolderState.NOT_RUNNING, "no run in progress", "test")
SNOOZE = Hold(HoldKind.SNOOZE, "alice (U1)", NOW - timedelta(minutes=10), NOW + timedelta(hours=1))
CLAIM = Hold(HoldKind.CLAIM, "bob (U2)", NOW - timedelta(hours=1))


def _lock() -> LockRecord:
    lock = classify_item(lock_item(created=NOW - timedelta(hours=3)), NOW)
    assert isinstance(lock, LockRecord)
    return lock


def _decide(*holds: Hold, now=NOW) -> Verdict:
    lock = _lock()
    return decide(
        lock, rule=RULE, first_seen=NOW - timedelta(hours=3), now=now, holder=GONE, acquired_at=None, holds=holds
    )


@pytest.mark.parametrize(
    ("hold", "reason"),
    [
        (SNOOZE, "snoozed by alice (U1) until"),
        (CLAIM, "claimed by bob (U2) (It's mine)"),
    ],
)
def test_a_hold_keeps_a_reapable_lock_and_says_who(hold: Hold, reason: str):
    assert _decide().action is Action.REAP  # every gate open without the hold
    verdict = _decide(hold)
    assert verdict.action is Action.WARN
    assert verdict.blocked
    assert Gate.HUMAN_HOLD in verdict.gates
    assert any(reason in r for r in verdict.reasons), verdict.reasons


def test_a_snooze_ends_when_it_says():
    assert _decide(SNOOZE, now=NOW + timedelta(minutes=59)).action is Action.WARN
    assert _decide(SNOOZE, now=NOW + timedelta(hours=1)).action is Action.REAP


def _entry(*holds: Hold, warned_at=NOW - timedelta(hours=3), outcome=Outcome.BLOCKED) -> LockReport:
    verdict = _decide(*holds)
    state = LockState(first_seen=NOW - timedelta(hours=3), warned_at=warned_at, holds=holds)
    return LockReport(_lock(), verdict, outcome, state)


def _kinds(entry: LockReport, now=NOW) -> list[tuple[str, int]]:
    return [(str(n.kind), n.sequence) for n in notifications_for(entry, table="tf-locks", now=now)]


def test_a_snoozed_acquisition_is_not_notified_until_the_snooze_ends():
    assert _kinds(_entry()) == [("reap_blocked", 0), ("still_stale", 3)]
    assert _kinds(_entry(SNOOZE)) == []
    later = NOW + timedelta(hours=1)
    assert _kinds(_entry(SNOOZE), now=later) == [("reap_blocked", 0), ("still_stale", 4)]


def test_a_claimed_acquisition_is_renotified_at_most_daily_with_new_repetitions():
    claim = replace(CLAIM, at=NOW)  # claimed three hours after the first warning: still_stale 1 to 3 were sent
    assert _kinds(_entry(claim)) == [("reap_blocked", 0), ("still_stale", 3)]
    assert _kinds(_entry(claim), now=NOW + timedelta(hours=23)) == [("reap_blocked", 0), ("still_stale", 3)]
    assert _kinds(_entry(claim), now=NOW + CLAIM_RENOTIFY) == [("reap_blocked", 0), ("still_stale", 4)]
    assert _kinds(_entry(claim), now=NOW + 2 * CLAIM_RENOTIFY) == [("reap_blocked", 0), ("still_stale", 5)]


def test_a_reap_is_always_announced():
    entry = _entry(SNOOZE, outcome=Outcome.REAPED)
    assert _kinds(entry) == [("reaped", 0)]
