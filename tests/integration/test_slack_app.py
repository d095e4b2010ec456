"""The slack_app channel through the real alerting path: sweeps (the sweep service with its Alerter, the Dynamo
ledger and the state table, in moto) and the stream function's ``resolved`` (the recorder, announcing through the
same channel factory), the bot token in Secrets Manager (moto), and Slack's Web API as a loopback stand-in
(``tests/slack_api.py``) that keeps the messages it is sent.

One message per lock acquisition: posted once, updated in place (``chat.update`` on its ``ts``) as the lock goes
stale, still stale, blocked, and reaped or released, with a reply in its thread for each change, and nothing after
the final one. The sweeps run on an injected clock: the lock's ``Created`` is fixed and the sweep's "now" moves.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from alert_stack import sweep_with_alerts
from factories import lock_item
from slack_api import CHANNEL, TOKEN, SlackApi, error, ratelimited, slow
from streams import stream_record
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.channels.factory import make_channel_factory
from tflock_reaper.adapters.channels.slack_app import SlackAppNotifier
from tflock_reaper.adapters.log_redaction import LogRedaction, install_log_redaction
from tflock_reaper.adapters.slack_messages import DynamoSlackMessages
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.policy import Policy, parse_policy
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor, info_digest
from tflock_reaper.entrypoints.settings import Settings
from tflock_reaper.entrypoints.wiring import send_resolved
from tflock_reaper.services.dispatch import DispatchResult
from tflock_reaper.services.recorder import audit_stream_record

REGION = "us-east-1"
TOKEN_SECRET = "tflock-reaper/slack-bot-token"
BLOCKED = "tf-state/blocked/network/terraform.tfstate"
CI = "tf-state/ci/app/terraform.tfstate"
OTHER = "tf-state/blocked/dns/terraform.tfstate"
LOCK_ID = "6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b"
T0 = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

POLICY = """\
mode: enforce
channels:
  chatops:
    type: slack_app
    bot_token: {{secret: {secret}}}
    channel_id: {channel}
    api_url: "{api_url}"
defaults:
  warn_after: 30m
  reap_after: 12h
  min_observed: 0s
  trust_holder_clock: true
  notify: {{channels: [chatops], renotify_every: 1h}}
rules:
  - match: "tf-state/ci/*"
    reap_after: 2h
    holder: {{assume: gone}}
  - match: "tf-state/blocked/*"
    reap_after: 2h
"""


class AuditLog:
    """The stream function's log and metrics, kept for the test."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def publish(self, event: Any) -> None:
        pass

    def unreadable(self, reason: str) -> None:
        pass

    def count(self, metric: str, value: int) -> None:
        self.counts[metric] = self.counts.get(metric, 0) + value


class Reaper:
    """The sweeper and the stream function with their real collaborators, wired as the Lambda wiring wires them,
    with the channel factory told of the state table (where the Slack app keeps its messages)."""

    def __init__(self, dynamodb: Any, slack: SlackApi) -> None:
        self.dynamodb = dynamodb
        self.slack = slack
        self.policy: Policy = parse_policy(POLICY.format(secret=TOKEN_SECRET, channel=CHANNEL, api_url=slack.base_url))
        self.clients = AwsClients(region=REGION)
        self.state = StateTable(dynamodb, STATE_TABLE)
        self.redaction = LogRedaction()
        install_log_redaction(self.redaction)
        self.log = AuditLog()

    def factory(self) -> Any:
        return make_channel_factory(
            self.clients, default_topic_arn=None, redaction=self.redaction, state_table=STATE_TABLE
        )

    def sweep(self, at: datetime) -> SweepReport:
        """One sweep, its alerter built by the deployed wiring (each sweep a new one, as each invocation is)."""
        return sweep_with_alerts(self.dynamodb, self.policy, at)

    def acquire(self, path: str, *, at: datetime = T0, **kwargs: Any) -> dict[str, Any]:
        """Terraform takes the lock at ``at``: its item, and the INSERT on the stream."""
        item = lock_item(path, created=at, **kwargs)
        put(self.dynamodb, item)
        self.deliver(stream_record("INSERT", new=item, at=at))
        return item

    def release(self, path: str, at: datetime) -> dict[str, Any]:
        """Terraform releases the lock: the item goes; the stream record of its removal is returned."""
        (item,) = [i for i in table_items(self.dynamodb) if i["LockID"]["S"] == path]
        self.dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": item["LockID"]})
        return stream_record("REMOVE", old=item, at=at)

    def deliver(self, record: dict[str, Any]) -> None:
        audit_stream_record(record, self.state, self.announce, self.log)

    def announce(self, notification: Notification, channels_json: str) -> DispatchResult:
        """The stream function's ``resolved``: the channels the sweeper recorded, as the deployed wiring sends it."""
        settings = Settings.model_validate({"STATE_TABLE_NAME": STATE_TABLE, "LOCK_TABLE_NAME": LOCK_TABLE})
        return send_resolved(notification, channels_json, settings=settings, clients=self.clients)


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackApi]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    api = SlackApi().start()
    yield api
    api.stop()


@pytest.fixture
def reaper(dynamodb: Any, slack: SlackApi) -> Reaper:
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
    return Reaper(dynamodb, slack)


def _header(message: dict[str, Any]) -> str:
    return str(message["blocks"][0]["text"]["text"])


def _types(message: dict[str, Any]) -> list[str]:
    return [block["type"] for block in message["blocks"]]


def _statuses(report: SweepReport) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in n.channels.items()} for e in report.locks for n in e.notifications]


def test_one_message_per_acquisition_updated_in_place_with_its_history_in_the_thread(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID, who="alice@laptop")
    reaper.sweep(T0 + timedelta(minutes=10))
    assert slack.calls == []

    # Past warn_after: one message, however many sweeps see it.
    reaper.sweep(T0 + timedelta(minutes=40))
    reaper.sweep(T0 + timedelta(minutes=41))
    (post,) = slack.calls
    assert (post.method, post.ok, post.args["channel"]) == ("chat.postMessage", True, CHANNEL)
    ts = post.answer["ts"]
    message = slack.messages[(CHANNEL, ts)]
    assert _header(message) == ":large_yellow_circle: Stale Terraform lock: blocked/network/terraform.tfstate"
    assert _types(message) == ["header", "section", "section", "section", "actions", "context"]

    # Each renotify_every, and the block past reap_after: the same message, updated; a reply for each change.
    reaper.sweep(T0 + timedelta(hours=1, minutes=40))
    reaper.sweep(T0 + timedelta(hours=2, minutes=40))  # reap_blocked and still_stale #2
    assert [c.method for c in slack.calls[1:]] == ["chat.update", "chat.postMessage"] * 3
    assert {c.args["ts"] for c in slack.calls_to("chat.update")} == {ts}
    assert [c.args.get("thread_ts") for c in slack.calls_to("chat.postMessage")] == [None, ts, ts, ts]
    replies = [r["text"] for r in slack.thread(ts)]
    assert (
        replies[0]
        == ":large_orange_circle: *stale* → *still stale*: Still held after 1h40m by server time (reminder 1)."
    )
    assert replies[1].startswith(":red_circle: *still stale* → *reap blocked*: Past reap_after")
    assert replies[2].startswith(":large_orange_circle: Still held after 2h40m")  # the message stays "reap blocked"
    message = slack.messages[(CHANNEL, ts)]
    assert _header(message) == ":red_circle: Stale Terraform lock, reap blocked: blocked/network/terraform.tfstate"
    assert "actions" in _types(message)

    # Released by Terraform: the message's last update (no buttons), a reply, and nothing after it.
    removal = reaper.release(BLOCKED, T0 + timedelta(hours=3))
    reaper.deliver(removal)
    message = slack.messages[(CHANNEL, ts)]
    assert _header(message) == ":white_check_mark: Terraform lock released: blocked/network/terraform.tfstate"
    assert "actions" not in _types(message)
    assert slack.thread(ts)[-1]["text"].startswith(":white_check_mark: *reap blocked* → *released*: Released by ")
    calls = len(slack.calls)
    reaper.deliver(removal)  # a redelivered batch
    reaper.sweep(T0 + timedelta(hours=4))
    assert len(slack.calls) == calls
    assert len(slack.top_level()) == 1
    assert all(c.ok for c in slack.calls)
    (record,) = [i for i in table_items(reaper.dynamodb, STATE_TABLE) if i["sk"]["S"].startswith("SLACK#")]
    assert (record["ts"]["S"], record["state"]["S"], record["final"]["BOOL"]) == (ts, "resolved", True)
    assert (record["lock_path"]["S"], record["lock_id"]["S"], record["channel"]["S"]) == (BLOCKED, LOCK_ID, CHANNEL)
    assert "lease_id" not in record


def test_a_reaped_lock_gets_its_final_update_and_nothing_after(reaper, slack):
    lock = reaper.acquire(CI, lock_id=LOCK_ID)
    reaper.sweep(T0 + timedelta(minutes=40))
    (post,) = slack.top_level()
    ts = post.answer["ts"]

    report = reaper.sweep(T0 + timedelta(hours=2, minutes=10))
    assert report.summary()["reaped"] == 1
    message = slack.messages[(CHANNEL, ts)]
    assert _header(message) == ":wastebasket: Stale Terraform lock reaped: ci/app/terraform.tfstate"
    assert "actions" not in _types(message)
    assert any("*Deleted item*" in b.get("text", {}).get("text", "") for b in message["blocks"])
    (reply,) = slack.thread(ts)
    assert reply["text"].startswith(":wastebasket: *stale* → *reaped*: Reaped by tflock-reaper after 2h10m.")
    assert "terraform plan" in reply["text"]

    # The stream then delivers the reap's own delete; later sweeps see nothing: no more calls.
    calls = len(slack.calls)
    reaper.deliver(stream_record("REMOVE", old=lock, at=T0 + timedelta(hours=2, minutes=11)))
    reaper.sweep(T0 + timedelta(hours=3))
    assert len(slack.calls) == calls


def test_a_lock_reaped_at_first_sight_is_one_final_message(reaper, slack):
    reaper.acquire(CI, lock_id=LOCK_ID)
    reaper.sweep(T0 + timedelta(hours=3))
    (post,) = slack.calls
    assert post.ok
    assert "actions" not in _types(slack.messages[(CHANNEL, post.answer["ts"])])


def test_two_locks_get_two_messages_each_updated_on_its_own(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.acquire(OTHER, lock_id="0b9f7c3e-1111-2222-3333-444455556666")
    reaper.sweep(T0 + timedelta(minutes=40))
    reaper.sweep(T0 + timedelta(hours=1, minutes=40))
    posts = slack.top_level()
    assert len(posts) == 2
    by_path = {p.args["text"].split(": ", 1)[1].split(" ", 1)[0]: p.answer["ts"] for p in posts}
    assert set(by_path) == {BLOCKED, OTHER}
    assert len(set(by_path.values())) == 2
    updated = sorted(c.args["ts"] for c in slack.calls_to("chat.update"))
    assert updated == sorted(by_path.values())
    for ts in by_path.values():
        assert len(slack.thread(ts)) == 1


def test_a_rate_limited_answer_is_retried_after_its_retry_after(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    slack.fail("chat.postMessage", ratelimited(1))
    report = reaper.sweep(T0 + timedelta(minutes=40))
    first, second = slack.calls
    assert (first.method, first.answer["error"]) == ("chat.postMessage", "ratelimited")
    assert second.ok
    assert second.at - first.at >= 1.0  # Retry-After honoured
    assert first.body == second.body
    assert _statuses(report) == [{"chatops": "sent"}]
    assert len(slack.messages) == 1


def test_rate_limiting_beyond_the_cap_or_the_attempts_fails_retryably_and_the_next_sweep_sends(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    slack.fail("chat.postMessage", ratelimited(3600))  # longer than max_retry_after: not waited for
    started = time.monotonic()
    report = reaper.sweep(T0 + timedelta(minutes=40))
    assert time.monotonic() - started < 10
    assert len(slack.calls) == 1
    (entry,) = report.locks
    (sent,) = entry.notifications
    assert str(sent.channels["chatops"]) == "failed"
    assert "ratelimited" in sent.errors["chatops"]

    slack.fail("chat.postMessage", ratelimited(0), ratelimited(0), ratelimited(0))  # more than the 3 attempts
    reaper.sweep(T0 + timedelta(minutes=41))
    assert len(slack.calls) == 4
    assert slack.messages == {}

    reaper.sweep(T0 + timedelta(minutes=42))  # the next sweep: posted, once
    assert len(slack.top_level()) == 5
    assert len(slack.messages) == 1


def test_invalid_auth_fails_that_channel_without_stopping_the_sweep(reaper, slack, caplog):
    boto3.client("secretsmanager", region_name=REGION).put_secret_value(
        SecretId=TOKEN_SECRET, SecretString="xoxb-0000000000-0000000000-WrOnGwRoNgWrOnG"
    )
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.acquire(CI, lock_id="0b9f7c3e-1111-2222-3333-444455556666", at=T0 - timedelta(hours=2))
    caplog.set_level(logging.DEBUG)
    report = reaper.sweep(T0 + timedelta(minutes=40))

    assert report.summary()["reaped"] == 1  # the sweep went on
    statuses = _statuses(report)
    assert statuses == [{"chatops": "failed"}, {"chatops": "failed"}]  # not retryable: each lock still tried
    errors = [n.errors["chatops"] for e in report.locks for n in e.notifications]
    assert all("invalid_auth" in e for e in errors)
    assert [c.answer["error"] for c in slack.calls] == ["invalid_auth", "invalid_auth"]
    assert "WrOnGwRoNg" not in json.dumps(errors)
    assert "WrOnGwRoNg" not in caplog.text


def test_other_answers_are_not_retried_within_the_send(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    slack.not_member.add(CHANNEL)
    report = reaper.sweep(T0 + timedelta(minutes=40))
    assert [c.answer["error"] for c in slack.calls] == ["not_in_channel"]
    (sent,) = report.locks[0].notifications
    assert sent.errors == {"chatops": "Slack API chat.postMessage failed: not_in_channel"}


def test_a_server_error_is_retried_once_then_fails_retryably(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.acquire(OTHER, lock_id="0b9f7c3e-1111-2222-3333-444455556666")
    slack.fail("chat.postMessage", error("internal_error", 500), error("internal_error", 500))
    report = reaper.sweep(T0 + timedelta(minutes=40))
    assert len(slack.calls) == 2  # one retry; the channel is then down for the rest of the sweep
    assert _statuses(report) == [{"chatops": "failed"}, {"chatops": "skipped"}]


HOSTILE_WHO = "<!channel> <@U123ABC> `rm -rf` <https://evil.example|click> @here"


def test_hostile_lock_text_is_escaped_and_within_slacks_limits(reaper, slack):
    path = "tf-state/blocked/" + "<!here>`x`&" * 180 + "p" * (2000 - len("tf-state/blocked/") - 11 * 180)
    assert len(path.encode()) == 2000
    hostile_id = "id`<@U999>`" + "i" * 200
    reaper.acquire(path, lock_id=hostile_id, who=HOSTILE_WHO, at=T0)
    reaper.sweep(T0 + timedelta(minutes=40))
    reaper.sweep(T0 + timedelta(hours=1, minutes=40))
    removal = reaper.release(path, T0 + timedelta(hours=2))
    reaper.deliver(removal)

    # Posted, updated, replied to and finalised: the stand-in refuses anything past Block Kit's limits.
    assert [c.method for c in slack.calls] == ["chat.postMessage", *["chat.update", "chat.postMessage"] * 2]
    assert all(c.ok for c in slack.calls), [c.answer for c in slack.calls]
    for call in slack.calls:
        raw = call.body.decode()
        assert "<" not in raw  # JSON escapes neither: what Slack parses is the raw body
        assert ">" not in raw
        assert "@here" not in raw.replace("@\u200bhere", "").replace("@\\u200bhere", "")
    first = slack.calls[0].args
    fields = json.dumps(first["blocks"])
    assert "&lt;!channel&gt; &lt;@U123ABC&gt;" in fields
    assert "\u02cbrm -rf\u02cb" in fields or "\\u02cbrm -rf\\u02cb" in fields  # a backtick cannot close the code span
    (actions,) = [b for b in first["blocks"] if b["type"] == "actions"]
    reap = actions["elements"][0]
    assert len(reap["confirm"]["text"]["text"]) <= 300
    assert "&lt;!here&gt;" in reap["confirm"]["text"]["text"]


def test_the_buttons_name_the_acquisitions_state_table_item_and_the_digest_of_its_raw_info(reaper, slack):
    item = reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.sweep(T0 + timedelta(minutes=40))
    (post,) = slack.top_level()
    (actions,) = [b for b in post.args["blocks"] if b["type"] == "actions"]
    reap, snooze, mine = actions["elements"]

    assert [e["action_id"] for e in (reap, snooze, mine)] == [a.value for a in SlackAction]
    assert reap["value"] == mine["value"] == actions["block_id"]
    value = ButtonValue.decode(reap["value"])
    assert value.info_digest == info_digest(item["Info"]["S"])
    (acquisition,) = [
        i for i in table_items(reaper.dynamodb, STATE_TABLE) if (i["pk"]["S"], i["sk"]["S"]) == (value.pk, value.sk)
    ]
    assert (acquisition["lock_path"]["S"], acquisition["lock_id"]["S"]) == (BLOCKED, LOCK_ID)

    assert (reap["style"], reap["confirm"]["style"]) == ("danger", "danger")
    assert BLOCKED in reap["confirm"]["text"]["text"]
    assert LOCK_ID in reap["confirm"]["text"]["text"]
    assert BLOCKED in mine["confirm"]["text"]["text"]
    assert LOCK_ID in mine["confirm"]["text"]["text"]
    assert [o["value"] for o in snooze["options"]] == [s.value for s in SnoozeFor]
    assert snooze["type"] == "static_select"


def test_the_token_is_read_from_secrets_manager_at_send_time_and_never_stored_or_logged(reaper, slack, caplog):
    caplog.set_level(logging.DEBUG)
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.sweep(T0 + timedelta(minutes=40))
    assert slack.calls[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in json.dumps(table_items(reaper.dynamodb, STATE_TABLE))
    assert TOKEN not in caplog.text
    assert "slack_sdk" in caplog.text  # the client did log its request, without the token


def test_a_message_deleted_by_hand_is_posted_anew(reaper, slack):
    reaper.acquire(BLOCKED, lock_id=LOCK_ID)
    reaper.sweep(T0 + timedelta(minutes=40))
    slack.messages.clear()
    reaper.sweep(T0 + timedelta(hours=1, minutes=40))
    assert [(c.method, c.answer.get("error")) for c in slack.calls[1:]] == [
        ("chat.update", "message_not_found"),
        ("chat.postMessage", None),
    ]
    (ts,) = [ts for _, ts in slack.messages]
    reaper.sweep(T0 + timedelta(hours=2, minutes=40))
    assert {c.args["ts"] for c in slack.calls_to("chat.update")[1:]} == {ts}


# -- races on the first post ---------------------------------------------------------------------------------------
@pytest.fixture
def atomic_moto(monkeypatch) -> None:
    """DynamoDB applies each request atomically; moto, called from two threads, may interleave a conditional
    write's check with another's write: serialised here, as the real service serialises conflicting writes."""
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    lock = threading.RLock()
    call = BotocoreStubber.__call__

    def atomic(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return call(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", atomic)


def _notification(kind: str, item: dict[str, Any]) -> Notification:
    lock = classify_item(item, None, table=LOCK_TABLE)
    assert isinstance(lock, LockRecord)
    return Notification.for_lock(
        kind, lock, table=LOCK_TABLE, age_seconds=9000, verdict="warn", outcome="blocked", reasons=("r",), rule="x"
    )


def test_two_senders_racing_on_the_first_notification_leave_one_message(dynamodb, slack, atomic_moto):
    item = lock_item(BLOCKED, lock_id=LOCK_ID, created=T0)
    notifiers = [
        SlackAppNotifier(
            lambda: TOKEN,
            channel=CHANNEL,
            messages=DynamoSlackMessages(dynamodb, STATE_TABLE),
            name="chatops",
            api_url=slack.base_url,
            lease_poll=0.05,
        )
        for _ in range(2)
    ]
    slack.fail("chat.postMessage", slow(0.5))  # the first post is slow: the other sender comes meanwhile
    barrier = threading.Barrier(2)
    errors: list[Exception] = []

    def send(notifier: SlackAppNotifier, kind: str) -> None:
        barrier.wait()
        try:
            notifier.send(_notification(kind, item))
        except Exception as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)

    threads = [
        threading.Thread(target=send, args=(notifiers[0], "stale")),
        threading.Thread(target=send, args=(notifiers[1], "reap_blocked")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []

    (post,) = slack.top_level()
    ts = post.answer["ts"]
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.update", "chat.postMessage"]
    assert slack.calls_to("chat.update")[0].args["ts"] == ts
    assert len(slack.thread(ts)) == 1
    # Whichever came first, the message shows the more serious state.
    assert _header(slack.messages[(CHANNEL, ts)]).startswith(":red_circle: Stale Terraform lock, reap blocked")


class FailingAdvance(DynamoSlackMessages):
    """The state table refuses to record the ts of the first post (throttled, say)."""

    def advance(self, message: Any, *, state: str, final: bool, ts: str | None = None) -> bool:
        from tflock_reaper.adapters.errors import AwsAccessError  # noqa: PLC0415

        raise AwsAccessError("cannot record a Slack message: ThrottlingException")


def test_a_post_whose_ts_cannot_be_recorded_is_deleted_again(dynamodb, slack):
    from tflock_reaper.domain.notifier import NotifyError  # noqa: PLC0415

    notifier = SlackAppNotifier(
        lambda: TOKEN,
        channel=CHANNEL,
        messages=FailingAdvance(dynamodb, STATE_TABLE),
        name="chatops",
        api_url=slack.base_url,
    )
    with pytest.raises(NotifyError) as raised:
        notifier.send(_notification("stale", lock_item(BLOCKED, lock_id=LOCK_ID, created=T0)))
    assert raised.value.retryable
    assert [c.method for c in slack.calls] == ["chat.postMessage", "chat.delete"]
    assert slack.messages == {}
    (record,) = [i for i in table_items(dynamodb, STATE_TABLE) if i["sk"]["S"].startswith("SLACK#")]
    assert "lease_id" not in record  # given back: the retry posts at once
    assert "ts" not in record
