"""One hostile lock item must not silence the alerts or stop the reaps of a whole table (issue 13.3).

Any Terraform user can write a lock whose ID is 1,100 bytes, or whose LockID is at DynamoDB's 2,048-byte limit.
Keys the reaper builds from them used to overflow DynamoDB's key limits: the ledger's claim failed (and was taken
for a channel outage, so no later lock got an alert), and on a DynamoDB that enforces the limits the state table's
batch read failed the whole sweep. Run on moto and on dynalite, which enforces the limits as DynamoDB does.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from factories import lock_item
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.notification_ledger import DynamoLedger
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.alerting import Alerter
from tflock_reaper.services.sweep import sweep

POLICY = parse_policy(
    """
mode: enforce
channels:
  slack: {type: slack, webhook: {secret: tflock-reaper/slack}}
defaults:
  warn_after: 30m
  reap_after: 2h
  min_observed: 0s
  notify: {channels: [slack]}
rules:
  - match: "tf-state/ci/*"
    trust_holder_clock: true
    holder: {assume: gone}
"""
)


class Recording:
    name = "slack"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    def render(self, notification: Notification) -> dict[str, Any]:
        return notification.to_dict()

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


def test_a_hostile_lock_neither_silences_alerts_nor_stops_reaps(any_dynamodb):
    now = datetime.now(UTC)
    hostile_id = lock_item("tf-state/ci/hostile.tfstate", lock_id="i" * 1100, created=now - timedelta(hours=1))
    long_path = "tf-state/ci/" + "p" * (2048 - len("tf-state/ci/"))
    hostile_path = lock_item(long_path, created=now - timedelta(hours=1))
    stale = lock_item("tf-state/ci/app.tfstate", created=now - timedelta(hours=1))
    dead = lock_item("tf-state/ci/dead.tfstate", created=now - timedelta(hours=3))
    put(any_dynamodb, hostile_id, hostile_path, stale, dead)
    state = StateTable(any_dynamodb, STATE_TABLE)
    slack = Recording()
    alerts = Alerter(
        POLICY,
        table=LOCK_TABLE,
        factory=lambda name, channel: slack,
        ledger=DynamoLedger(any_dynamodb, STATE_TABLE),
        state=state,
    )

    report = sweep(
        lock_table=LockTable(any_dynamodb, LOCK_TABLE), state=state, policy=POLICY, mode="enforce", alerts=alerts
    )

    outcomes = {r.lock.lock_path: r.outcome.value for r in report.locks}
    assert outcomes == {
        "tf-state/ci/hostile.tfstate": "warned",
        long_path: "warned",
        "tf-state/ci/app.tfstate": "warned",
        "tf-state/ci/dead.tfstate": "reaped",
    }
    assert sorted((n.lock_path, n.kind.value) for n in slack.sent) == sorted(
        [
            ("tf-state/ci/hostile.tfstate", "stale"),
            (long_path, "stale"),
            ("tf-state/ci/app.tfstate", "stale"),
            ("tf-state/ci/dead.tfstate", "reaped"),
        ]
    )
    assert "tf-state/ci/dead.tfstate" not in {i["LockID"]["S"] for i in table_items(any_dynamodb)}

    # The next sweep reads every observation back (the hostile ones too) and sends nothing twice.
    again = sweep(
        lock_table=LockTable(any_dynamodb, LOCK_TABLE), state=state, policy=POLICY, mode="enforce", alerts=alerts
    )
    assert {r.state.first_seen for r in again.locks} == {
        r.state.first_seen for r in report.locks if r.outcome.value == "warned"
    }
    assert len(slack.sent) == 4
