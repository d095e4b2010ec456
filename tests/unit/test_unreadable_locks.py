"""Unreadable locks (issue 13.5): an item that is a lock by its key and shape but cannot be judged blocks every plan
on its state, so it is alerted about (its own event, routed like a stale lock of its path, once per distinct item),
counted, and never reaped. Foreign items (no Info) are only reported."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from factories import NOW, lock_info, lock_item
from fakes import FakeLockTable
from tflock_reaper.adapters.channels.pagerduty import render_event
from tflock_reaper.adapters.channels.slack import render_slack
from tflock_reaper.adapters.channels.sns import render_publish
from tflock_reaper.adapters.memory import MemoryLedger, MemoryStateStore
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.alerting import Alerter
from tflock_reaper.services.sweep import sweep

POLICY = parse_policy(
    """
mode: enforce
channels:
  slack: {type: slack, webhook: {secret: tflock-reaper/slack}}
  oncall: {type: pagerduty, routing_key: {secret: tflock-reaper/pagerduty}}
defaults:
  min_observed: 0s
  trust_holder_clock: true
  holder: {assume: gone}
  notify: {channels: [slack]}
rules:
  - match: "tf-state/prod/*"
    operations: [OperationTypeApply]
    notify: {channels: [oncall]}
"""
)
FUTURE = lock_item("tf-state/prod/app.tfstate", created=NOW + timedelta(minutes=10))
BAD_JSON = {"LockID": {"S": "tf-state/dev/app.tfstate"}, "Info": {"S": '{"ID": "x", '}}
FOREIGN = {"LockID": {"S": "tf-state/dev/other"}, "Owner": {"S": "someone"}}
STALE = lock_item("tf-state/dev/stale.tfstate", created=NOW - timedelta(hours=5))


class Recording:
    def __init__(self, name: str, sent: list[tuple[str, Notification]]) -> None:
        self.name = name
        self._sent = sent

    def render(self, notification: Notification) -> dict[str, Any]:
        return {"text": notification.title}

    def send(self, notification: Notification) -> None:
        self._sent.append((self.name, notification))


def _sweep(table: FakeLockTable, ledger: MemoryLedger, sent: list[tuple[str, Notification]]) -> Any:
    state = MemoryStateStore()
    alerts = Alerter(
        POLICY,
        table=table.name,
        factory=lambda name, channel: Recording(name, sent),
        ledger=ledger,
        state=state,
    )
    return sweep(lock_table=table, state=state, policy=POLICY, mode="enforce", clock=lambda: NOW, alerts=alerts)


def test_unreadable_locks_are_alerted_once_counted_and_never_reaped():
    table = FakeLockTable([FUTURE, BAD_JSON, FOREIGN, STALE])
    ledger, sent = MemoryLedger(), []

    report = _sweep(table, ledger, sent)

    assert [s.lock_id for s in report.unreadable] == ["tf-state/prod/app.tfstate", "tf-state/dev/app.tfstate"]
    assert report.summary()["unreadable"] == 2
    assert report.summary()["skipped"] == 3  # the foreign item too, but it is not a lock: not alerted
    assert table.deletes == ["tf-state/dev/stale.tfstate"]
    unreadable = [(channel, n) for channel, n in sent if n.kind.value == "unreadable_lock"]
    # Routed by path like a stale lock: prod's rule (its operations cannot be read) pages on-call, dev goes to slack.
    assert sorted((channel, n.lock_path) for channel, n in unreadable) == [
        ("oncall", "tf-state/prod/app.tfstate"),
        ("slack", "tf-state/dev/app.tfstate"),
    ]
    prod = next(n for channel, n in unreadable if channel == "oncall")
    assert "in the future" in prod.reasons[0]
    assert prod.severity.value == "error"
    assert not prod.needs_unlock  # there is no lock ID to force-unlock: the follow-up says what to do
    assert "delete it by hand" in prod.follow_up
    json_report = report.to_dict()
    assert [s["unreadable"] for s in json_report["skipped"]] == [True, True, False]
    assert json_report["skipped"][0]["notifications"][0]["channels"] == {"oncall": "sent"}

    # The next sweep sends nothing again for the same items (the ledger), and still reaps none of them.
    _sweep(table, ledger, sent)
    assert len([n for _, n in sent if n.kind.value == "unreadable_lock"]) == 2
    assert set(table.items) == {"tf-state/prod/app.tfstate", "tf-state/dev/app.tfstate", "tf-state/dev/other"}


def test_a_changed_unreadable_item_is_announced_again():
    table = FakeLockTable([BAD_JSON])
    ledger, sent = MemoryLedger(), []
    _sweep(table, ledger, sent)
    table.items["tf-state/dev/app.tfstate"] = {"LockID": {"S": "tf-state/dev/app.tfstate"}, "Info": {"S": "[]"}}
    _sweep(table, ledger, sent)
    assert [n.reasons[0] for _, n in sent] == [
        sent[0][1].reasons[0],
        "Info JSON is a list, not an object",
    ]


@pytest.mark.parametrize(
    "render", [render_slack, lambda n: render_publish(n, "arn:aws:sns:us-east-1:123456789012:t"), render_event]
)
def test_every_channel_renders_an_unreadable_lock(render):
    info = {**lock_info("tf-state/dev/app.tfstate"), "Created": "9999-12-31T23:59:59Z"}
    item = {"LockID": {"S": "tf-state/dev/app.tfstate"}, "Info": {"S": json.dumps(info)}}
    notification = Notification.for_unreadable(
        "tf-state/dev/app.tfstate",
        reason="Created 9999-12-31T23:59:59+00:00 is in the future",
        item=item,
        scope="arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks",
        table="tf-locks",
        rule="defaults",
        seen=NOW,
        workspace="default",
    )
    rendered = json.dumps(render(notification))
    assert "Unreadable Terraform lock" in rendered
    assert "force-unlock" not in rendered
