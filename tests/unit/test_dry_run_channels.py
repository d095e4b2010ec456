"""A dry run (``sweep --show-notifications``) says one thing per channel: ``would-send`` with what it would get, or
``unusable`` with why (the channel cannot be built or used, or cannot render this lock), never both (issue 15.7).

Given channels that can tell they are unusable without sending (as an SNS channel with no topic and a webhook whose
secret cannot be read do), when a sweep only shows its notifications, then each channel has one status.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from factories import NOW, lock_item
from fakes import FakeLockTable
from tflock_reaper.adapters.memory import MemoryLedger, MemoryStateStore
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.policy import Channel, parse_policy
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.services.alerting import Alerter
from tflock_reaper.services.sweep import sweep

POLICY = parse_policy(
    """
channels:
  fine: {type: sns}
  gone: {type: sns}
  flaky: {type: sns}
defaults:
  warn_after: 30m
  reap_after: 4h
  min_observed: 0s
  trust_holder_clock: true
  notify: {channels: [fine, gone, flaky]}
"""
)
GONE = "cannot read the Slack webhook URL (secret team/slack: ResourceNotFoundException: Secrets Manager can't find"
POISONED = "runner@\u202eci"


class Fine:
    """A channel that cannot tell it is unusable (no ``unusable``): it renders, except for a poisoned ``Who``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def render(self, notification: Notification) -> dict[str, Any]:
        if notification.who == POISONED:
            raise ValueError("cannot render this Who")
        return {"to": self.name}

    def send(self, notification: Notification) -> None:
        raise AssertionError("a dry run sends nothing")


class Gone(Fine):
    """A channel whose secret cannot be read; counts how often it is asked."""

    asked = 0

    def unusable(self) -> str | None:
        Gone.asked += 1
        return GONE


class Flaky(Fine):
    """A channel whose own check fails."""

    def unusable(self) -> str | None:
        raise RuntimeError("the check broke")


def factory(name: str, channel: Channel) -> Fine:
    return {"fine": Fine, "gone": Gone, "flaky": Flaky}[name](name)


def _show(*items: dict[str, Any]) -> SweepReport:
    state = MemoryStateStore()
    alerter = Alerter(POLICY, table="tf-locks", factory=factory, ledger=MemoryLedger(), state=state, send=False)
    return sweep(
        lock_table=FakeLockTable(list(items)),
        state=state,
        policy=POLICY,
        mode="dry-run",
        clock=lambda: NOW + timedelta(minutes=45),
        alerts=alerter,
    )


def test_each_channel_is_either_would_send_or_unusable_with_its_reason():
    Gone.asked = 0
    report = _show(
        lock_item("tf-state/a.tfstate", created=NOW), lock_item("tf-state/b.tfstate", created=NOW, who="b@ci")
    )

    for entry in report.locks:
        (shown,) = entry.notifications
        assert shown.to_dict() == {
            "event": "stale",
            "sequence": 0,
            "channels": {"fine": "would-send", "gone": "unusable", "flaky": "unusable"},
            "errors": {"gone": GONE, "flaky": "cannot check the channel: RuntimeError: the check broke"},
            "rendered": {"fine": {"to": "fine"}},
        }
    assert Gone.asked == 1  # once a sweep (it may read a secret), not once a lock


def test_a_lock_a_channel_cannot_render_is_unusable_there_alone():
    report = _show(
        lock_item("tf-state/a.tfstate", created=NOW, who=POISONED), lock_item("tf-state/b.tfstate", created=NOW)
    )

    poisoned, fine = (entry.notifications[0] for entry in report.locks)
    assert poisoned.channels["fine"] == "unusable"
    assert poisoned.errors["fine"] == "cannot render the notification: ValueError: cannot render this Who"
    assert poisoned.rendered == {}
    assert (fine.channels["fine"], fine.rendered) == ("would-send", {"fine": {"to": "fine"}})
