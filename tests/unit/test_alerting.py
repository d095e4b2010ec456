"""Alerts over a lock's life: the notifications each sweep's verdicts call for, sent once per event and channel.

Given a lock table in memory, a clock the test moves forward and channels that record what they are sent,
when the sweep runs every five minutes, then each event reaches each of its rule's channels exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import NOW, lock_item
from fakes import FakeLockTable
from tflock_reaper.adapters.channels.slack import render_slack
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.memory import MemoryLedger, MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.notification import DedupKey, Notification
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.domain.policy import Channel, Policy, parse_policy
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.services.alerting import Alerter, notifications_for
from tflock_reaper.services.sweep import sweep

POLICY = parse_policy(
    """
mode: enforce
channels:
  oncall: {type: pagerduty, routing_key: {secret: tflock-reaper/pagerduty}}
  slack: {type: slack, webhook: {secret: tflock-reaper/slack}}
defaults:
  warn_after: 30m
  reap_after: 4h
  min_observed: 0s
  trust_holder_clock: true
  notify: {channels: [slack], renotify_every: 1h}
rules:
  - match: "tf-state/prod/*"
    notify: {channels: [oncall, slack]}
  - match: "tf-state/ci/*"
    reap_after: 2h
    holder: {assume: gone}
  - match: "tf-state/quiet/*"
    notify: {renotify_every: 0s}
"""
)
PROD = "tf-state/prod/network/terraform.tfstate"
DEV = "tf-state/dev/network/terraform.tfstate"
CI = "tf-state/ci/app/terraform.tfstate"
QUIET = "tf-state/quiet/app/terraform.tfstate"
FIVE_MINUTES = timedelta(minutes=5)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass(frozen=True)
class Sent:
    at: str
    """When, as an offset from the lock's ``Created`` (``1h30m``)."""
    channel: str
    event: str
    """The ledger's event: ``stale``, ``still_stale#2``, ..."""
    notification: Notification


class RecordingNotifier:
    def __init__(self, name: str, channels: Channels) -> None:
        self._name = name
        self._channels = channels

    @property
    def name(self) -> str:
        return self._name

    def render(self, notification: Notification) -> dict[str, Any]:
        error = self._channels.poisoned.get(notification.who)
        if error is not None:
            raise error
        return self._channels.render(self._name, notification)

    def send(self, notification: Notification) -> None:
        self.render(notification)  # as every adapter does
        error = self._channels.broken.get(self._name) or self._channels.refused.get(notification.who)
        if error is not None:
            raise error
        at = format_duration(self._channels.clock() - NOW)
        self._channels.sent.append(Sent(at, self._name, notification.ledger_key.event, notification))


class Channels:
    """The channel factory given to the Alerter: recording notifiers. A channel named in ``broken`` raises on every
    send; a lock whose Who is in ``poisoned`` cannot be rendered, one in ``refused`` is refused (a 400, say)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sent: list[Sent] = []
        self.broken: dict[str, Exception] = {}
        self.poisoned: dict[str, Exception] = {}
        self.refused: dict[str, Exception] = {}
        self.render: Callable[[str, Notification], dict[str, Any]] = lambda name, n: {
            "to": name,
            "dedup_key": n.dedup_key,
        }

    def __call__(self, name: str, channel: Channel) -> RecordingNotifier:
        return RecordingNotifier(name, self)

    def log(self, path: str | None = None) -> list[tuple[str, str, str]]:
        return [(s.at, s.channel, s.event) for s in self.sent if path is None or s.notification.lock_path == path]


class World:
    """One lock table, the reaper's memory (state and ledger) and its channels, swept on a fake clock."""

    def __init__(self, *items: dict[str, Any], policy: Policy = POLICY, send: bool = True) -> None:
        self.policy = policy
        self.clock = Clock(NOW)
        self.table = FakeLockTable(list(items))
        self.state = MemoryStateStore()
        self.ledger = MemoryLedger()
        self.channels = Channels(self.clock)
        self.send = send

    def sweep(self) -> SweepReport:
        # One Alerter per sweep, as the Lambda and the CLI make it; the ledger and state outlive it.
        alerter = Alerter(
            self.policy,
            table=self.table.name,
            factory=self.channels,
            ledger=self.ledger,
            state=self.state,
            send=self.send,
        )
        return sweep(
            lock_table=self.table,
            state=self.state,
            policy=self.policy,
            mode="enforce",
            clock=self.clock,
            alerts=alerter,
        )

    def sweep_at(self, offset: timedelta) -> SweepReport:
        self.clock.now = NOW + offset
        return self.sweep()

    def sweep_every_five_minutes(self, *, until: timedelta) -> list[SweepReport]:
        """Sweeps from five minutes after ``NOW`` (when the locks are taken) up to ``NOW + until``."""
        reports = []
        offset = FIVE_MINUTES
        while offset <= until:
            reports.append(self.sweep_at(offset))
            offset += FIVE_MINUTES
        return reports


def test_a_lock_over_its_life_is_announced_once_per_event_and_channel():
    world = World(lock_item(PROD, created=NOW, who="runner@ci-runner-7"))
    world.sweep_every_five_minutes(until=timedelta(hours=4, minutes=55))

    assert world.channels.log() == [
        ("30m", "oncall", "stale"),
        ("30m", "slack", "stale"),
        ("1h30m", "oncall", "still_stale#1"),
        ("1h30m", "slack", "still_stale#1"),
        ("2h30m", "oncall", "still_stale#2"),
        ("2h30m", "slack", "still_stale#2"),
        ("3h30m", "oncall", "still_stale#3"),
        ("3h30m", "slack", "still_stale#3"),
        ("4h", "oncall", "reap_blocked"),
        ("4h", "slack", "reap_blocked"),
        ("4h30m", "oncall", "still_stale#4"),
        ("4h30m", "slack", "still_stale#4"),
    ]
    stale, still, blocked = (world.channels.sent[i].notification for i in (0, 2, 8))
    assert (stale.verdict, stale.outcome, stale.age) == ("warn", "warned", "30m")
    assert (still.sequence, still.age) == (1, "1h30m")
    assert blocked.outcome == "blocked"
    assert any(r.startswith("holder liveness unknown") for r in blocked.reasons)
    # Where its alerts went is remembered, so that the stream function can announce the release there.
    (channels,) = world.state.alerted.values()
    assert sorted(json.loads(channels)) == ["oncall", "slack"]


def test_sweeps_within_one_interval_repeat_nothing():
    world = World(lock_item(PROD, created=NOW))
    world.sweep_every_five_minutes(until=timedelta(hours=1, minutes=25))
    assert world.channels.log() == [("30m", "oncall", "stale"), ("30m", "slack", "stale")]


def test_a_reapable_lock_is_announced_reaped_once_with_the_deleted_item():
    item = lock_item(CI, created=NOW)
    world = World(item)
    reports = world.sweep_every_five_minutes(until=timedelta(hours=3))

    assert world.channels.log() == [
        ("30m", "slack", "stale"),
        ("1h30m", "slack", "still_stale#1"),
        ("2h", "slack", "reaped"),
    ]
    assert world.table.items == {}
    reaped = world.channels.sent[-1].notification
    assert reaped.deleted_item == item
    assert reaped.outcome == Outcome.REAPED.value
    assert reaped.follow_up is not None
    assert "partly written" in reaped.follow_up
    assert [r.locks[0].outcome for r in reports if r.locks][-1] is Outcome.REAPED
    assert not reports[-1].locks


def test_a_lock_first_seen_past_reap_after_is_announced_reap_blocked_not_stale():
    world = World(lock_item(PROD, created=NOW))
    world.sweep_at(timedelta(hours=5))
    world.sweep_at(timedelta(hours=5, minutes=5))
    assert world.channels.log(PROD) == [("5h", "oncall", "reap_blocked"), ("5h", "slack", "reap_blocked")]


def test_renotify_every_0s_never_repeats():
    world = World(lock_item(QUIET, created=NOW))
    world.sweep_every_five_minutes(until=timedelta(hours=3, minutes=55))
    assert world.channels.log() == [("30m", "slack", "stale")]


def test_notifications_for_a_stale_entry_is_pure_and_keyed_per_repetition():
    world = World(lock_item(PROD, created=NOW))
    world.sweep_at(timedelta(minutes=30))
    entry = world.sweep_at(timedelta(hours=2, minutes=40)).locks[0]
    (n,) = notifications_for(entry, table="tf-locks", now=NOW + timedelta(hours=2, minutes=40))
    assert (n.kind, n.sequence, n.dedup_key.rsplit("#", 2)[-2:]) == ("still_stale", 2, ["still_stale", "2"])
    assert n.deleted_item is None


SCOPE = FakeLockTable([]).arn


def test_rules_route_prod_to_oncall_and_slack_and_dev_to_slack_only():
    world = World(lock_item(PROD, created=NOW), lock_item(DEV, created=NOW))
    world.sweep_at(timedelta(minutes=45))
    assert sorted((s.notification.lock_path, s.channel) for s in world.channels.sent) == [
        (DEV, "slack"),
        (PROD, "oncall"),
        (PROD, "slack"),
    ]
    assert json.loads(world.state.alerted[(SCOPE, DEV, world.channels.sent[-1].notification.lock_id)]) == {
        "slack": {"type": "slack", "webhook": {"parameter": None, "secret": "tflock-reaper/slack"}}
    }


def test_a_channel_that_raises_stops_neither_the_sweep_nor_the_other_channel_and_is_retried():
    world = World(lock_item(PROD, created=NOW), lock_item(CI, created=NOW - timedelta(hours=3)))
    world.channels.broken = {"oncall": RuntimeError("PagerDuty is down"), "slack": ConnectionError("no route")}
    report = world.sweep_at(timedelta(minutes=45))

    # The sweep went on: both locks judged, the reapable one reaped although every channel failed.
    assert [(r.lock.lock_path, r.outcome) for r in report.locks] == [(PROD, Outcome.WARNED), (CI, Outcome.REAPED)]
    assert world.table.deletes == [CI]
    (prod_sent,) = report.locks[0].notifications
    assert prod_sent.channels == {"oncall": "failed", "slack": "failed"}
    assert "PagerDuty is down" in prod_sent.errors["oncall"]

    # Only PagerDuty is down now: Slack still gets the alert.
    world.channels.broken = {"oncall": RuntimeError("PagerDuty is down")}
    report = world.sweep_at(timedelta(minutes=50))
    assert world.channels.log(PROD) == [("50m", "slack", "stale")]
    assert report.locks[0].notifications[0].channels == {"oncall": "failed", "slack": "sent"}

    # PagerDuty is back: the failed stale is sent by the next sweep, once, and not again to Slack.
    world.channels.broken = {}
    world.sweep_at(timedelta(minutes=55))
    world.sweep_at(timedelta(hours=1))
    assert world.channels.log(PROD) == [("50m", "slack", "stale"), ("55m", "oncall", "stale")]


def test_show_notifications_mode_renders_and_sends_nothing():
    world = World(lock_item(PROD, created=NOW), send=False)
    report = world.sweep_at(timedelta(minutes=45))

    (shown,) = report.locks[0].notifications
    key = f"{PROD}#{report.locks[0].lock.lock_id}#stale"
    assert shown.to_dict() == {
        "event": "stale",
        "sequence": 0,
        "channels": {"oncall": "would-send", "slack": "would-send"},
        "rendered": {"oncall": {"to": "oncall", "dedup_key": key}, "slack": {"to": "slack", "dedup_key": key}},
    }
    assert world.channels.sent == []
    assert world.ledger.entries == {}
    assert world.state.alerted == {}


def test_a_sweep_that_only_showed_the_alerts_does_not_swallow_the_first_real_one():
    """``sweep --show-notifications --state-table`` records the lock as warned, as any sweep does; the deployed
    sweeper must still send ``stale`` after it."""
    world = World(lock_item(PROD, created=NOW), send=False)
    world.sweep_at(timedelta(minutes=40))
    (state,) = world.state.states.values()
    assert state.warned_at is not None
    world.send = True  # the deployed sweeper, sharing the state table and ledger
    world.sweep_at(timedelta(minutes=45))
    assert world.channels.log() == [("45m", "oncall", "stale"), ("45m", "slack", "stale")]


def test_a_channel_that_failed_retryably_is_skipped_for_the_rest_of_the_sweep():
    from tflock_reaper.domain.notifier import NotifyError  # noqa: PLC0415

    items = [lock_item(f"tf-state/prod/s{n}.tfstate", created=NOW) for n in range(3)]
    world = World(*items)
    world.channels.broken = {"slack": NotifyError("slack", "timed out", retryable=True)}
    report = world.sweep_at(timedelta(minutes=45))
    slack = [entry.notifications[0].channels["slack"] for entry in report.locks]
    assert slack == ["failed", "skipped", "skipped"]  # one timeout per sweep, not one per lock
    assert [entry.notifications[0].channels["oncall"] for entry in report.locks] == ["sent"] * 3

    world.channels.broken = {}
    world.sweep_at(timedelta(minutes=50))
    assert sorted(c for _, c, _ in world.channels.log() if c == "slack") == ["slack"] * 3  # retried next sweep


# -- one lock's bad data never takes a channel down (issue 13) ------------------------------------------------------
POISONED = "tf-state/prod/a-poisoned.tfstate"
NORMAL = "tf-state/prod/b-normal.tfstate"


def slack_of(report: SweepReport) -> dict[str, str]:
    return {entry.lock.lock_path: entry.notifications[0].channels["slack"] for entry in report.locks}


@pytest.mark.parametrize(
    "error",
    [OverflowError("date value out of range"), UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed")],
)
def test_a_lock_that_cannot_be_rendered_does_not_take_the_channel_down_for_the_next_lock(error):
    """Before: a renderer's exception was taken for a transport failure, the channel was marked down for the rest
    of the sweep, and every later lock got no alert on it."""
    world = World(lock_item(POISONED, created=NOW, who="poison"), lock_item(NORMAL, created=NOW))
    world.channels.poisoned = {"poison": error}
    report = world.sweep_at(timedelta(minutes=45))

    assert slack_of(report) == {POISONED: "failed", NORMAL: "sent"}
    poisoned = report.locks[0].notifications[0]
    assert poisoned.errors["slack"].startswith(f"cannot render the notification: {type(error).__name__}")
    assert world.channels.log(NORMAL) == [("45m", "oncall", "stale"), ("45m", "slack", "stale")]


def test_a_lock_created_in_year_1_gets_its_slack_alert_and_so_does_the_next_lock():
    """The repro of issue 13, through the real Slack renderer: a Created of 0001-01-01T00:00:00+01:00 made
    ``astimezone(UTC)`` raise OverflowError, which took Slack down for the rest of the sweep."""
    world = World(lock_item(POISONED, created="0001-01-01T00:00:00+01:00"), lock_item(NORMAL, created=NOW))
    world.channels.render = lambda name, n: render_slack(n)
    report = world.sweep_at(timedelta(minutes=45))

    assert slack_of(report) == {POISONED: "sent", NORMAL: "sent"}
    (year_one,) = [
        s.notification for s in world.channels.sent if s.channel == "slack" and s.notification.lock_path == POISONED
    ]
    held_for = render_slack(year_one)["blocks"][1]["fields"][4]["text"]
    assert held_for.endswith("(since 0001-01-01 00:00 UTC+01:00)")


def test_a_notification_a_channel_refuses_fails_alone():
    """A 4xx for one notification's payload (Slack's 400 invalid_payload): that lock's alert fails, the next is sent."""
    world = World(lock_item(POISONED, created=NOW, who="poison"), lock_item(NORMAL, created=NOW))
    world.channels.refused = {"poison": NotifyError("slack", "HTTP 400: invalid_payload", retryable=False)}
    report = world.sweep_at(timedelta(minutes=45))
    assert slack_of(report) == {POISONED: "failed", NORMAL: "sent"}


class RefusingLedger(MemoryLedger):
    """The state table's ledger refusing the claims of the locks in ``refused`` (a ValidationException on their
    key) and, with ``unavailable`` set, every claim (throttling)."""

    def __init__(self, *, refused: tuple[str, ...] = (), unavailable: bool = False) -> None:
        super().__init__()
        self.refused = refused
        self.unavailable = unavailable

    def claim(self, channel: str, key: DedupKey) -> bool:
        if self.unavailable:
            raise AwsAccessError("cannot claim a notification: ProvisionedThroughputExceededException")
        if key.lock_path in self.refused:
            raise AwsAccessError("cannot claim a notification: ValidationException: key too large", transient=False)
        return super().claim(channel, key)


def test_a_ledger_that_refuses_one_lock_s_key_does_not_take_the_channel_down():
    world = World(lock_item(POISONED, created=NOW), lock_item(NORMAL, created=NOW))
    world.ledger = RefusingLedger(refused=(POISONED,))
    report = world.sweep_at(timedelta(minutes=45))

    assert slack_of(report) == {POISONED: "failed", NORMAL: "sent"}
    assert "ValidationException" in report.locks[0].notifications[0].errors["slack"]
    assert world.channels.log() == [("45m", "oncall", "stale"), ("45m", "slack", "stale")]


@pytest.mark.parametrize(
    "failure",
    [
        "ledger throttled",
        NotifyError("slack", "Slack webhook unreachable: TimeoutError", retryable=True),
        NotifyError("slack", "Slack webhook answered HTTP 429", retryable=True),
        ConnectionError("connection refused"),
        TimeoutError("timed out"),
    ],
)
def test_a_transport_failure_still_takes_the_channel_down_for_the_rest_of_the_sweep(failure, caplog):
    world = World(lock_item(POISONED, created=NOW), lock_item(NORMAL, created=NOW))
    if failure == "ledger throttled":
        world.ledger = RefusingLedger(unavailable=True)
    else:
        world.channels.broken = {"slack": failure}
    report = world.sweep_at(timedelta(minutes=45))
    assert slack_of(report) == {POISONED: "failed", NORMAL: "skipped"}  # one timeout per sweep, not one per lock
    (down,) = [
        r for r in caplog.records if r.getMessage() == "channel down for the rest of the sweep" and r.channel == "slack"
    ]
    assert down.lock_path == POISONED
