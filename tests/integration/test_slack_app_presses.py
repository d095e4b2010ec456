"""The Slack app end to end: a sweep posts a lock's message through the ``slack_app`` channel (Slack's Web API as a
loopback stand-in, ``tests/slack_api.py``), and the buttons on that very message are pressed: Slack's payload is
built from the message the stand-in keeps (its channel, ``ts``, blocks and the button's value), signed as Slack
signs it, and posted over real HTTP to the interactions function behind a loopback function URL. moto holds the
tables, the bot token and the signing secret.

After *Snooze* or *It's mine* the message is updated in place to say who holds the lock (and until when), with a
reply in its thread; later sweeps' updates keep saying so while the hold lasts; automatic reaps wait for its end.
After *Reap now* the ``reaped`` alert makes the message final. A press on a message this stack did not post is
answered and the message left alone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from alert_stack import sweep_with_alerts
from factories import lock_item
from function_url import FunctionUrl, Reply, Slack, deployed_interactions, press_on
from http_stub import StubServer
from slack_api import CHANNEL, TOKEN, SlackApi
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.holds import Hold, HoldKind
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.memory import lock_key
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.domain.slack_actions import SlackAction, SnoozeFor

REGION = "us-east-1"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SIGNING_SECRET_NAME = "tflock-reaper/slack-signing-secret"
TOKEN_SECRET = "tflock-reaper/slack-bot-token"
APPROVER, APPROVER_NAME = "U0APPROVER1", "alice"
OTHER_USER, OTHER_NAME = "U0BOB000002", "bob"
PATH = "tf-state/env:/prod/network/terraform.tfstate"
ANSWER_PATH = "/actions/T0TEAM001/1764158400123/AbCdEfGhIjKlMnOp"

POLICY = """\
mode: enforce
channels:
  chatops:
    type: slack_app
    bot_token: {{secret: {token_secret}}}
    channel_id: {channel}
    api_url: "{api_url}"
defaults:
  warn_after: 30m
  reap_after: 2h
  min_observed: 0s
  trust_holder_clock: true
  holder: {{assume: gone}}
  notify: {{channels: [chatops], renotify_every: 1h}}
  approvers: [{approver}]
  time_zone: Europe/Paris
"""


@dataclass
class Stack:
    """The deployed sweeper and interactions function, their AWS, and the Slack both talk to."""

    url: FunctionUrl
    slack: Slack
    api: SlackApi
    answers: StubServer
    dynamodb: Any
    policy_text: str
    logs: io.StringIO

    def acquire(self, created: datetime) -> LockRecord:
        """Terraform holds the lock (created at ``created``); the stream function records the acquisition."""
        item = lock_item(PATH, created=created, who="carol@ci-runner-7")
        put(self.dynamodb, item)
        lock = classify_item(
            item, datetime.now(UTC), table=LOCK_TABLE, table_arn=LockTable(self.dynamodb, LOCK_TABLE).arn
        )
        assert isinstance(lock, LockRecord), lock
        StateTable(self.dynamodb, STATE_TABLE).record_acquired(lock, created, "100")
        return lock

    def holds(self, lock: LockRecord) -> tuple[Hold, ...]:
        """The holds on the acquisition, as a sweep reads them."""
        return StateTable(self.dynamodb, STATE_TABLE).observe([lock], datetime.now(UTC))[lock_key(lock)].holds

    def sweep(self, at: datetime) -> SweepReport:
        """One enforce sweep at ``at``, its alerts through the deployed wiring."""
        return sweep_with_alerts(self.dynamodb, parse_policy(self.policy_text), at)

    def the_message(self) -> tuple[str, dict[str, Any]]:
        """The one top-level message posted, as Slack keeps it now: its ``ts`` and the message."""
        (post,) = self.api.top_level()
        ts = post.answer["ts"]
        return ts, self.api.messages[(CHANNEL, ts)]

    def press(
        self,
        action: SlackAction,
        *,
        snooze: SnoozeFor = SnoozeFor.ONE_HOUR,
        user: str = APPROVER,
        name: str = APPROVER_NAME,
        ts: str | None = None,
        shown: dict[str, Any] | None = None,
    ) -> Reply:
        """A press on the message as Slack shows it (or as ``shown``), with Slack's ``block_actions`` payload."""
        shown_ts, message = self.the_message()
        payload = press_on(
            shown or message,
            action.value,
            channel=CHANNEL,
            ts=ts or shown_ts,
            user=user,
            name=name,
            response_url=self.answers.url(ANSWER_PATH),
            option=snooze.value if action is SlackAction.SNOOZE else None,
        )
        return self.slack.post(payload)

    def answered(self) -> list[str]:
        return [r.json()["text"] for r in self.answers.requests_to(ANSWER_PATH)]

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture
def stack(dynamodb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name=SIGNING_SECRET_NAME, SecretString=SIGNING_SECRET)
    secrets.create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
    api = SlackApi().start()
    answers = StubServer().start()
    text = POLICY.format(token_secret=TOKEN_SECRET, channel=CHANNEL, api_url=api.base_url, approver=APPROVER)
    policy = tmp_path / "policy.yaml"
    policy.write_text(text)
    environment = {
        "LOCK_TABLE_NAMES": LOCK_TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "SLACK_SIGNING_SECRET_NAME": SIGNING_SECRET_NAME,
        "SLACK_RESPONSE_URL_PREFIX": answers.url("/"),
    }
    try:
        with deployed_interactions(monkeypatch, environment) as (url, logs):
            yield Stack(url, Slack(SIGNING_SECRET, url.url), api, answers, dynamodb, text, logs)
    finally:
        answers.stop()
        api.stop()


def _hold_line(message: dict[str, Any]) -> str:
    """The text of the message's hold line (above its buttons), or ``""``."""
    blocks = message["blocks"]
    lines = [b for b in blocks if b.get("block_id") == "tflock_hold"]
    if not lines:
        return ""
    (line,) = lines
    assert blocks[blocks.index(line) + 1]["type"] == "actions"  # just above the buttons
    return " ".join(element["text"] for element in line["elements"])


def _slack_date(at: datetime) -> str:
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at.strftime('%Y-%m-%d %H:%M')} UTC>"


def _lock_held(stack: Stack) -> bool:
    return any(item["LockID"]["S"] == PATH for item in table_items(stack.dynamodb))


def test_snooze_shows_who_and_until_when_on_the_message_and_keeps_reaps_off_until_it_ends(stack: Stack):
    now = datetime.now(UTC)
    lock = stack.acquire(now - timedelta(hours=1))
    stack.sweep(now)  # past warn_after: the message, with its buttons
    ts, before = stack.the_message()
    assert _hold_line(before) == ""

    reply = stack.press(SlackAction.SNOOZE, snooze=SnoozeFor.FOUR_HOURS)

    assert (reply.status, reply.body) == (200, "")
    (update,) = stack.api.calls_to("chat.update")
    assert (update.ok, update.args["channel"], update.args["ts"]) == (True, CHANNEL, ts)
    ts_now, message = stack.the_message()
    assert ts_now == ts  # the same message, in place
    (hold,) = stack.holds(lock)
    assert (hold.kind, hold.by) == (HoldKind.SNOOZE, f"{APPROVER_NAME} ({APPROVER})")
    assert hold.until is not None
    line = _hold_line(message)
    assert line == (
        f":zzz: *Snoozed* by {APPROVER_NAME} ({APPROVER}) until {_slack_date(hold.until)}: no reminders and no "
        "automatic reap until then."
    )
    assert timedelta(hours=4) - (hold.until - now) < timedelta(minutes=1)
    # Everything else on the message is as it was: only the hold line was added, just above the buttons.
    assert [b for b in message["blocks"] if b.get("block_id") != "tflock_hold"] == before["blocks"]
    assert [r["text"] for r in stack.api.thread(ts)] == [line]
    (answer,) = stack.answered()
    assert answer.startswith(":zzz: Snoozed ")

    # Past reap_after while snoozed: no reap, and nothing posted (a snooze quiets the reminders).
    calls = len(stack.api.calls)
    report = stack.sweep(now + timedelta(hours=2))
    assert _lock_held(stack)
    assert [entry.outcome.value for entry in report.locks] == ["blocked"]
    assert len(stack.api.calls) == calls

    # The snooze over: the next sweep reaps it, and the message is final (no buttons, no hold line).
    stack.sweep(hold.until + timedelta(minutes=1))
    assert not _lock_held(stack)
    _, message = stack.the_message()
    assert message["blocks"][0]["text"]["text"].startswith(":wastebasket: ")
    assert [b["type"] for b in message["blocks"]].count("actions") == 0
    assert _hold_line(message) == ""
    assert len(stack.api.top_level()) == 1


def test_its_mine_shows_who_claimed_it_and_every_later_update_keeps_saying_so(stack: Stack):
    now = datetime.now(UTC)
    lock = stack.acquire(now - timedelta(hours=1))
    stack.sweep(now)
    ts, _ = stack.the_message()

    reply = stack.press(SlackAction.MINE, user=OTHER_USER, name=OTHER_NAME)

    assert reply.status == 200
    _, message = stack.the_message()
    (hold,) = stack.holds(lock)
    assert hold.kind is HoldKind.CLAIM
    claimed = (
        f":raised_hand: *Claimed* by {OTHER_NAME} ({OTHER_USER}) {_slack_date(hold.at)} (It's mine): no automatic "
        "reap of this acquisition, reminders at most daily."
    )
    assert _hold_line(message) == claimed
    assert [r["text"] for r in stack.api.thread(ts)] == [claimed]

    # Past reap_after: kept (claimed); the message goes to "reap blocked", rendered by the sweep, and still says
    # who claimed it.
    stack.sweep(now + timedelta(hours=2))
    assert _lock_held(stack)
    _, message = stack.the_message()
    assert message["blocks"][0]["text"]["text"].startswith(":red_circle: Stale Terraform lock, reap blocked")
    assert _hold_line(message) == claimed
    updates = len(stack.api.calls_to("chat.update"))

    # Reminders at most daily: none within the day, one after it (the hold line still there).
    stack.sweep(now + timedelta(hours=12))
    assert len(stack.api.calls_to("chat.update")) == updates
    stack.sweep(now + timedelta(days=1, minutes=5))
    assert len(stack.api.calls_to("chat.update")) == updates + 1
    _, message = stack.the_message()
    assert _hold_line(message) == claimed
    assert _lock_held(stack)
    assert len(stack.api.top_level()) == 1


def test_reap_now_from_the_message_makes_it_final_through_the_reaped_alert(stack: Stack):
    now = datetime.now(UTC)
    stack.acquire(now - timedelta(hours=1))
    stack.sweep(now)
    ts, _ = stack.the_message()

    reply = stack.press(SlackAction.REAP_NOW)

    assert reply.status == 200
    assert not _lock_held(stack)
    _, message = stack.the_message()
    blocks = json.dumps(message["blocks"])
    assert message["blocks"][0]["text"]["text"].startswith(":wastebasket: ")
    assert f"approved by {APPROVER_NAME} ({APPROVER})" in blocks
    assert '"actions"' not in blocks
    assert stack.api.thread(ts)[-1]["text"].startswith(":wastebasket: *stale* → *reaped*: Reaped by tflock-reaper")
    assert len(stack.api.top_level()) == 1


def test_a_press_on_a_message_this_stack_did_not_post_is_answered_and_the_message_left_alone(stack: Stack):
    now = datetime.now(UTC)
    lock = stack.acquire(now - timedelta(hours=1))
    stack.sweep(now)
    calls = len(stack.api.calls)

    reply = stack.press(SlackAction.MINE, ts="1764158499.999999")  # the same buttons, on another message

    assert reply.status == 200
    assert len(stack.api.calls) == calls  # no update, no reply
    assert [h.kind for h in stack.holds(lock)] == [HoldKind.CLAIM]  # the claim itself is recorded
    assert stack.answered()[0].startswith(":raised_hand: ")
    assert any(line.get("message", "").startswith("slack message not updated") for line in stack.log_lines())


def test_a_press_on_an_outdated_display_of_the_message_never_puts_the_old_state_back(stack: Stack):
    """A sweep updated the message after the presser's Slack showed it: the blocks in the press are not the
    message's any more. The hold is recorded and said in the thread; the message keeps its newer state."""
    now = datetime.now(UTC)
    lock = stack.acquire(now - timedelta(minutes=35))
    stack.sweep(now)
    ts, displayed = stack.the_message()
    stack.sweep(now + timedelta(hours=1, minutes=5))  # still_stale: the message is updated
    _, current = stack.the_message()
    assert current["blocks"][0]["text"]["text"].startswith(":large_orange_circle: ")
    updates = len(stack.api.calls_to("chat.update"))

    reply = stack.press(SlackAction.SNOOZE, shown=displayed)

    assert reply.status == 200
    assert len(stack.api.calls_to("chat.update")) == updates  # not put back to "stale"
    _, message = stack.the_message()
    assert message == current
    (hold,) = stack.holds(lock)
    assert stack.api.thread(ts)[-1]["text"].startswith(":zzz: *Snoozed* by ")
    assert hold.kind is HoldKind.SNOOZE
