"""The interactions function (issue 18) through real HTTP: its handler behind a loopback function URL
(``tests/function_url.py``: AWS's event, payload format 2.0), requests signed exactly as Slack signs them, moto for
DynamoDB, S3, Secrets Manager and SNS, and a loopback ``response_url`` for the presser's private answers.

Reap now deletes the lock its message showed and nothing else (not a lock re-acquired since, not the same
acquisition with other Info, not a digest key, not an unreadable lock), only for the rule's approvers, through the
CLI's own reap (record, conditional delete, full-item log line, ``reaped`` alert). Snooze and It's mine keep
automatic reaps off. Every request that is not one of the app's presses gets its 4xx and changes nothing.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from factories import digest_item, go_time, lock_info, lock_item
from function_url import FunctionUrl, Reply, Slack, deployed_interactions, http
from http_stub import StubServer
from streams import stream_record
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.slack_messages import acquisition_sk
from tflock_reaper.adapters.state_table import StateTable, state_pk
from tflock_reaper.domain.holds import HoldKind
from tflock_reaper.domain.lock import LockRecord, classify_item, classify_lockfile
from tflock_reaper.domain.memory import lock_key
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor, info_digest
from tflock_reaper.services.interactions import snooze_until
from tflock_reaper.services.recorder import audit_stream_record
from tflock_reaper.services.sweep import sweep

REGION = "us-east-1"
BUCKET = "tf-state"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SECRET_NAME = "tflock-reaper/slack-signing-secret"
APPROVER, APPROVER_NAME = "U0APPROVER1", "alice"
SOMEONE = "U0SOMEONE22"
PATH = "tf-state/env:/prod/network/terraform.tfstate"
ANSWER_PATH = "/actions/T0TEAM001/1764158400123/AbCdEfGhIjKlMnOp"
TIME_ZONE = "Europe/Paris"

POLICY = """\
mode: enforce
channels:
  alerts: {{type: sns, topic_arn: "{topic_arn}"}}
defaults:
  warn_after: 30m
  reap_after: 2h
  min_observed: 0s
  trust_holder_clock: true
  holder: {{assume: gone}}
  notify: {{channels: [alerts]}}
  approvers: [{approver}]
  time_zone: {time_zone}
rules:
  - match: "tf-state/locked-down/*"
    approvers: []
  - match: "tf-state/strict/*"
    holds_by_approvers_only: true
"""


@dataclass
class App:
    """The deployed function, its AWS, and the Slack that talks to it."""

    url: FunctionUrl
    slack: Slack
    answers: StubServer
    dynamodb: Any
    s3: Any
    queue_url: str
    policy_path: Path
    logs: io.StringIO

    @property
    def table(self) -> LockTable:
        return LockTable(self.dynamodb, LOCK_TABLE)

    @property
    def store(self) -> StateTable:
        return StateTable(self.dynamodb, STATE_TABLE)

    @property
    def lockfiles(self) -> LockfileBuckets:
        return LockfileBuckets(self.s3, [BucketLocation(BUCKET)])

    def hold(self, item: dict[str, Any], *, path: str = PATH) -> LockRecord:
        """A lock held in the table, recorded in the state table as the stream function records its acquisition
        and as a sweep records what it finds (the sweep whose alert posted the message with the buttons)."""
        put(self.dynamodb, item)
        lock = classify_item(item, datetime.now(UTC), table=LOCK_TABLE, table_arn=self.table.arn)
        assert isinstance(lock, LockRecord), lock
        assert lock.lock_path == path
        self.store.record_acquired(lock, lock.info.created, f"{time.monotonic_ns()}")
        self.sweep(mode="dry-run")
        return lock

    def sweep(self, *, mode: str = "enforce", at: datetime | None = None, lockfiles: bool = False) -> Any:
        policy = parse_policy(self.policy_path.read_text())
        return sweep(
            lock_table=self.table,
            lockfiles=self.lockfiles if lockfiles else None,
            state=self.store,
            policy=policy,
            mode=mode,  # type: ignore[arg-type]
            clock=(lambda: at) if at is not None else (lambda: datetime.now(UTC)),
        )

    def press(
        self,
        action: SlackAction,
        lock: LockRecord,
        *,
        user: str = APPROVER,
        name: str = APPROVER_NAME,
        snooze: SnoozeFor | None = None,
        shown: str | None = None,
        response_url: str | None = None,
    ) -> Reply:
        """A press on the message of ``lock`` (as its raw Info was shown, or as ``shown``)."""
        value = button(lock, shown)
        return self.slack.post(
            payload(
                action,
                value,
                user=user,
                name=name,
                snooze=snooze,
                response_url=response_url or self.answers.url(ANSWER_PATH),
            )
        )

    def answered(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.answers.requests_to(ANSWER_PATH)]

    def snapshot(self) -> tuple[Any, ...]:
        """Everything the function could change: both tables, every object of the state bucket."""
        state = sorted(
            self.dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"],
            key=lambda i: (i["pk"]["S"], i["sk"]["S"]),
        )
        objects = [(o["Key"], o["ETag"]) for o in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        return json.dumps(table_items(self.dynamodb), sort_keys=True), json.dumps(state, sort_keys=True), objects

    def log_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.logs.getvalue().splitlines() if line.startswith("{")]

    def sns_alerts(self) -> list[tuple[str, str]]:
        """The alerts published to the topic: (event, message)."""
        sqs = boto3.client("sqs", region_name=REGION)
        messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        envelopes = [json.loads(m["Body"]) for m in messages]
        return [(e["MessageAttributes"]["event"]["Value"], e["Message"]) for e in envelopes]


class AuditEvents:
    """The stream function's audit log, kept for the test."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def publish(self, event: Any) -> None:
        self.events.append(event)

    def unreadable(self, reason: str) -> None:
        raise AssertionError(reason)

    def count(self, metric: str, value: int) -> None:
        pass


def button(lock: LockRecord, shown: str | None = None) -> ButtonValue:
    """What the Slack app channel puts in the lock's buttons (its state-table keys, the digest of the Info shown)."""
    return ButtonValue(
        state_pk(lock.scope, lock.lock_path), acquisition_sk(lock.lock_id), info_digest(shown or lock.raw_info)
    )


def payload(
    action: SlackAction,
    value: ButtonValue,
    *,
    user: str = APPROVER,
    name: str = APPROVER_NAME,
    snooze: SnoozeFor | None = None,
    response_url: str,
) -> dict[str, Any]:
    """A ``block_actions`` payload as Slack sends it for a press on the app's message."""
    if action is SlackAction.SNOOZE:
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": action.value,
            "block_id": value.encode(),
            "selected_option": {
                "text": {"type": "plain_text", "text": "Snooze", "emoji": True},
                "value": (snooze or SnoozeFor.ONE_HOUR).value,
            },
            "placeholder": {"type": "plain_text", "text": "Snooze", "emoji": False},
            "action_ts": f"{time.time():.6f}",
        }
    else:
        element = {
            "type": "button",
            "action_id": action.value,
            "block_id": value.encode(),
            "text": {"type": "plain_text", "text": "Reap now", "emoji": False},
            "value": value.encode(),
            "style": "danger",
            "action_ts": f"{time.time():.6f}",
        }
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM001"},
        "api_app_id": "A0APP000001",
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": "1764158400.000100",
            "channel_id": "C0CHANNEL01",
            "is_ephemeral": False,
        },
        "trigger_id": "1764158400123.1234567890.abcdef0123456789",
        "team": {"id": "T0TEAM001", "domain": "acme"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": "C0CHANNEL01", "name": "terraform"},
        "message": {"type": "message", "ts": "1764158400.000100", "text": "Stale lock", "blocks": []},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [element],
    }


@pytest.fixture
def app(dynamodb, monkeypatch, tmp_path) -> Iterator[App]:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET_NAME, SecretString=SIGNING_SECRET)
    sns, sqs = boto3.client("sns", region_name=REGION), boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="tflock-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "false"})
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(topic_arn=topic_arn, approver=APPROVER, time_zone=TIME_ZONE))
    answers = StubServer().start()
    environment = {
        "LOCK_TABLE_NAMES": LOCK_TABLE,
        "STATE_BUCKETS": BUCKET,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "ALERT_TOPIC_ARN": topic_arn,
        "SLACK_SIGNING_SECRET_NAME": SECRET_NAME,
        "SLACK_RESPONSE_URL_PREFIX": answers.url("/"),
    }
    try:
        with deployed_interactions(monkeypatch, environment) as (url, logs):
            yield App(url, Slack(SIGNING_SECRET, url.url), answers, dynamodb, s3, queue_url, policy, logs)
    finally:
        answers.stop()


def stale_item(path: str = PATH, **info: Any) -> dict[str, Any]:
    return lock_item(path, created=datetime.now(UTC) - timedelta(hours=3), **info)


# -- Reap now ---------------------------------------------------------------------------------------------------
def test_reap_now_reaps_the_lock_shown_as_the_cli_would_and_history_says_by_hand(app: App):
    item = stale_item()
    lock = app.hold(item)
    put(app.dynamodb, digest_item(PATH))

    reply = app.press(SlackAction.REAP_NOW, lock)

    assert (reply.status, reply.body) == (200, "")
    assert table_items(app.dynamodb) == [digest_item(PATH)]  # the lock is gone, its digest never touched
    [record] = [i for i in table_items(app.dynamodb, STATE_TABLE) if i.get("reap_status")]
    assert record["reap_status"] == {"S": "reaped"}
    assert record["reaped_by"] == {"S": f"slack by {APPROVER_NAME} ({APPROVER})"}
    assert record["reaped_item"] == {"M": item}
    assert [r["S"] for r in record["reap_reasons"]["L"]] == [f"reaped from Slack: approved by alice ({APPROVER})"]
    lines = app.log_lines()
    reaped = next(line for line in lines if line.get("message") == "lock reaped")
    assert (reaped["lock_path"], reaped["lock_id"], reaped["deleted_item"]) == (PATH, lock.lock_id, item)
    action = next(line for line in lines if line.get("message") == "slack_action")
    assert (action["action"], action["outcome"], action["user_id"], action["user_name"]) == (
        "tflock_reap_now",
        "reaped",
        APPROVER,
        APPROVER_NAME,
    )
    assert (action["lock_path"], action["lock_id"]) == (PATH, lock.lock_id)
    [(event, message)] = app.sns_alerts()
    assert event == "reaped"
    assert f"reaped from Slack: approved by alice ({APPROVER})" in message
    [answer] = app.answered()
    assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
    assert answer["text"].startswith(":white_check_mark: Reaped the lock on ")

    # The stream function then records the release (a DeleteItem's REMOVE): its lock_released line says the reaper
    # released it, approved by whom, by hand; the history takes the reap record over it.
    audit = AuditEvents()
    audit_stream_record(stream_record("REMOVE", old=item, at=datetime.now(UTC)), app.store, None, audit)
    (released,) = [e.log_fields() for e in audit.events if e.event.value == "lock_released"]
    assert (released["released_by"], released["reaped_by"], released["by_hand"]) == (
        "tflock-reaper",
        f"slack by {APPROVER_NAME} ({APPROVER})",
        True,
    )
    [history] = app.store.state_history(lock.scope, PATH)
    assert (history.released_by, history.reaped_by, history.by_hand) == (
        "tflock-reaper",
        f"slack by {APPROVER_NAME} ({APPROVER})",
        True,
    )


def test_reap_now_counts_every_press_as_a_metric(app: App, capsys):
    lock = app.hold(stale_item())
    app.press(SlackAction.REAP_NOW, lock, user=SOMEONE)
    app.press(SlackAction.REAP_NOW, lock)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"SlackActions"' in line]
    assert [(e["action"], e["outcome"], e["SlackActions"]) for e in emf] == [
        ("tflock_reap_now", "not_approved", [1.0]),
        ("tflock_reap_now", "reaped", [1.0]),
    ]
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TflockReaper"


@pytest.mark.parametrize("again", ["a new acquisition", "the same ID with other Info"])
def test_reap_now_on_a_lock_taken_again_deletes_nothing_and_shows_the_lock_held_now(app: App, again: str):
    shown = app.hold(stale_item())
    if again == "a new acquisition":
        now_held = lock_item(PATH, created=datetime.now(UTC), who="bob@laptop", operation="OperationTypePlan")
    else:
        info = json.loads(shown.raw_info) | {"Who": "bob@laptop", "Created": go_time(datetime.now(UTC))}
        now_held = {"LockID": {"S": PATH}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}
    put(app.dynamodb, now_held)
    app.sweep(mode="dry-run")
    before = app.snapshot()

    reply = app.press(SlackAction.REAP_NOW, shown)

    assert reply.status == 200
    assert app.snapshot() == before
    [answer] = app.answered()
    assert answer["response_type"] == "ephemeral"
    assert "changed since this message: nothing deleted" in answer["text"]
    assert json.loads(now_held["Info"]["S"])["ID"] in answer["text"]
    assert "bob@laptop" in answer["text"]
    assert app.sns_alerts() == []


def test_reap_now_pressed_on_the_button_of_a_message_showing_other_info_deletes_nothing(app: App):
    lock = app.hold(stale_item())
    before = app.snapshot()
    reply = app.press(SlackAction.REAP_NOW, lock, shown=lock.raw_info + " ")  # the digest of some other Info
    assert reply.status == 200
    assert app.snapshot() == before
    assert "changed since this message" in app.answered()[0]["text"]


@pytest.mark.parametrize(
    ("path", "user", "says"),
    [
        (PATH, SOMEONE, "Only the approvers of this lock's rule (defaults) may reap it from Slack"),
        ("tf-state/locked-down/app.tfstate", APPROVER, "Nobody may reap this lock from Slack"),
    ],
    ids=["not an approver", "the rule names none"],
)
def test_reap_now_by_someone_not_approved_changes_nothing_and_says_so_privately(app: App, path, user, says):
    lock = app.hold(stale_item(path), path=path)
    before = app.snapshot()

    reply = app.press(SlackAction.REAP_NOW, lock, user=user, name="mallory")

    assert reply.status == 200
    assert app.snapshot() == before
    [answer] = app.answered()
    assert (answer["response_type"], answer["replace_original"]) == ("ephemeral", False)
    assert says in answer["text"]
    action = next(line for line in app.log_lines() if line.get("message") == "slack_action")
    assert (action["outcome"], action["user_id"], action["level"]) == ("not_approved", user, "WARNING")


def test_reap_now_never_deletes_a_digest_key_nor_an_unreadable_lock(app: App):
    # A state whose key ends in -md5 (Terraform's digest items do): never deleted here, nor by the role.
    md5 = "tf-state/env:/prod/odd-md5"
    digest_like = app.hold(stale_item(md5), path=md5)
    # A lock recorded, then found unreadable (its Info no longer a LockInfo) where the message showed it.
    unreadable = app.hold(stale_item("tf-state/env:/prod/broken.tfstate"), path="tf-state/env:/prod/broken.tfstate")
    put(app.dynamodb, {"LockID": {"S": unreadable.lock_path}, "Info": {"S": unreadable.raw_info[:-9]}})
    before = app.snapshot()

    assert app.press(SlackAction.REAP_NOW, digest_like).status == 200
    assert app.press(SlackAction.REAP_NOW, unreadable).status == 200

    assert app.snapshot() == before
    digest_answer, unreadable_answer = (a["text"] for a in app.answered())
    assert "was not deleted" in digest_answer
    assert "-md5" in digest_answer
    assert "cannot be read" in unreadable_answer
    assert "delete it by hand" in unreadable_answer


def test_reap_now_on_a_lockfile_deletes_that_lockfile(app: App):
    key = "env:/prod/dns/terraform.tfstate"
    body = json.dumps(lock_info(f"{BUCKET}/{key}", created=datetime.now(UTC) - timedelta(hours=3))).encode()
    app.s3.put_object(Bucket=BUCKET, Key=key + ".tflock", Body=body)
    obj = app.lockfiles.get(f"{BUCKET}/{key}")
    assert obj is not None
    lock = classify_lockfile(obj, datetime.now(UTC))
    assert isinstance(lock, LockRecord)
    app.sweep(mode="dry-run", lockfiles=True)

    reply = app.press(SlackAction.REAP_NOW, lock)

    assert reply.status == 200
    assert app.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    assert app.answered()[0]["text"].startswith(":white_check_mark: Reaped")


def test_reap_now_of_a_lock_released_meanwhile_says_so(app: App):
    lock = app.hold(stale_item())
    app.dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": {"S": PATH}})
    before = app.snapshot()
    assert app.press(SlackAction.REAP_NOW, lock).status == 200
    assert app.snapshot() == before
    assert "does not hold" in app.answered()[0]["text"]


# -- Snooze and It's mine ---------------------------------------------------------------------------------------
def test_snooze_keeps_automatic_reaps_off_until_it_ends(app: App):
    lock = app.hold(stale_item())
    pressed = datetime.now(UTC)

    reply = app.press(SlackAction.SNOOZE, lock, user=SOMEONE, name="bob", snooze=SnoozeFor.ONE_HOUR)

    assert reply.status == 200
    [answer] = app.answered()
    assert answer["text"].startswith(":zzz: Snoozed ")
    [entry] = app.sweep().locks
    assert entry.outcome.value == "blocked"
    assert any(f"snoozed by bob ({SOMEONE}) until" in reason for reason in entry.reasons)
    assert [i["LockID"]["S"] for i in table_items(app.dynamodb)] == [PATH]
    [entry] = app.sweep(at=pressed + timedelta(hours=1, seconds=30)).locks
    assert entry.outcome.value == "reaped"
    assert table_items(app.dynamodb) == []


def test_its_mine_keeps_automatic_reaps_off(app: App):
    lock = app.hold(stale_item())
    assert app.press(SlackAction.MINE, lock, user=SOMEONE, name="bob").status == 200
    assert "is yours" in app.answered()[0]["text"]
    for later in (timedelta(0), timedelta(days=2)):
        [entry] = app.sweep(at=datetime.now(UTC) + later).locks
        assert entry.outcome.value == "blocked"
        assert any(f"claimed by bob ({SOMEONE}) (It's mine)" in reason for reason in entry.reasons)
    assert [i["LockID"]["S"] for i in table_items(app.dynamodb)] == [PATH]


def test_snooze_until_tomorrow_0900_is_in_the_policys_time_zone(app: App):
    lock = app.hold(stale_item())
    before = datetime.now(UTC)
    assert app.press(SlackAction.SNOOZE, lock, snooze=SnoozeFor.TOMORROW_0900).status == 200
    after = datetime.now(UTC)

    [hold] = app.store.observe([lock], after)[lock_key(lock)].holds
    assert hold.kind is HoldKind.SNOOZE
    paris = zoneinfo.ZoneInfo(TIME_ZONE)
    local = hold.until.astimezone(paris) if hold.until else None
    assert local is not None
    assert (local.hour, local.minute) == (9, 0)
    assert local.date() in {(moment.astimezone(paris) + timedelta(days=1)).date() for moment in (before, after)}
    assert "09:00 (Europe/Paris)" in app.answered()[0]["text"]


def test_holds_for_approvers_only_are_refused_to_others(app: App):
    path = "tf-state/strict/app.tfstate"
    lock = app.hold(stale_item(path), path=path)
    before = app.snapshot()
    assert app.press(SlackAction.MINE, lock, user=SOMEONE).status == 200
    assert app.snapshot() == before
    assert "Only the approvers" in app.answered()[0]["text"]
    assert app.press(SlackAction.MINE, lock).status == 200
    assert app.snapshot() != before


def test_an_answer_url_that_is_not_slacks_is_never_posted_to(app: App):
    lock = app.hold(stale_item())
    elsewhere = StubServer().start()
    try:
        reply = app.press(SlackAction.MINE, lock, response_url=elsewhere.url("/steal"))
    finally:
        elsewhere.stop()
    assert reply.status == 200  # the press is Slack's (signed); only its answer is not sent there
    assert elsewhere.requests == []
    assert any(line.get("message") == "response_url refused: not Slack's" for line in app.log_lines())


# -- requests that are not the app's presses --------------------------------------------------------------------
@dataclass(frozen=True)
class Forged:
    status: int
    method: str = "POST"
    secret: str = SIGNING_SECRET
    age: int = 0
    tamper: bool = False
    drop: str | None = None
    action_id: str | None = None
    value: str | None = None
    kind: str = "block_actions"


REFUSED = {
    "bad signature": Forged(401, secret="not-the-signing-secret-at-all-00"),
    "replayed 6 minutes later": Forged(401, age=360),
    "body changed after signing": Forged(401, tamper=True),
    "no signature header": Forged(401, drop="X-Slack-Signature"),
    "no timestamp header": Forged(401, drop="X-Slack-Request-Timestamp"),
    "not a POST": Forged(405, method="GET"),
    "an action this app does not have": Forged(400, action_id="tflock_delete_everything"),
    "a value this app did not make": Forged(400, value="v1|LOCK#x|ID#y|z"),
    "not a block_actions payload": Forged(400, kind="view_submission"),
    "a value naming no acquisition": Forged(
        404, value=ButtonValue("LOCK#" + "0" * 32, "ID#" + "1" * 32, "2" * 64).encode()
    ),
}


@pytest.mark.parametrize("forged", REFUSED.values(), ids=REFUSED.keys())
def test_requests_that_are_not_the_apps_presses_get_their_4xx_and_change_nothing(app: App, forged: Forged):
    lock = app.hold(stale_item())
    before = app.snapshot()
    body_payload = payload(SlackAction.REAP_NOW, button(lock), response_url=app.answers.url(ANSWER_PATH))
    body_payload["type"] = forged.kind
    element = body_payload["actions"][0]
    if forged.action_id is not None:
        element["action_id"] = forged.action_id
    if forged.value is not None:
        element["value"] = element["block_id"] = forged.value
    body = Slack.form(body_payload)
    headers = app.slack.headers(body, timestamp=int(time.time()) - forged.age, secret=forged.secret)
    if forged.tamper:
        body = Slack.form(body_payload | {"user": {"id": SOMEONE, "username": "mallory"}})
    if forged.drop:
        headers.pop(forged.drop)

    reply = http(app.url.url, method=forged.method, body=body, headers=headers)

    assert reply.status == forged.status, reply.body
    assert reply.headers.get("Allow") == ("POST" if forged.status == 405 else None)
    assert app.snapshot() == before
    assert app.answers.requests == []
    refused = [line for line in app.log_lines() if line.get("message") == "slack request refused"]
    assert [line["status"] for line in refused] == [forged.status]
    assert SIGNING_SECRET not in app.logs.getvalue()


def test_the_function_url_event_is_awss_and_the_form_arrives_base64_encoded(app: App):
    lock = app.hold(stale_item())
    app.press(SlackAction.MINE, lock)
    [exchange] = app.url.exchanges
    event = exchange.event
    assert (event["version"], event["rawPath"], event["requestContext"]["http"]["method"]) == ("2.0", "/", "POST")
    assert event["isBase64Encoded"] is True
    assert event["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert exchange.answer["statusCode"] == 200


def test_a_press_without_a_signing_secret_to_check_it_is_a_500_that_changes_nothing(app: App, monkeypatch, capsys):
    from tflock_reaper.entrypoints import interactions  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    monkeypatch.setenv("SLACK_SIGNING_SECRET_NAME", "tflock-reaper/no-such-secret")
    get_settings.cache_clear()
    interactions.default_interactions.cache_clear()
    lock = app.hold(stale_item())
    before = app.snapshot()
    capsys.readouterr()
    reply = app.press(SlackAction.REAP_NOW, lock)
    assert reply.status == 500
    assert app.snapshot() == before
    assert app.answers.requests == []
    # Counted for the stack's interactions alarm (with the function's own errors).
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"InteractionFailures"' in line]
    assert [e["InteractionFailures"] for e in emf] == [[1.0]]


# -- pure: when a snooze ends ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pressed", "zone", "until"),
    [
        # 23:30 in Paris (UTC+1 in winter) is 22:30 UTC: tomorrow 09:00 Paris is 08:00 UTC the next day.
        ("2026-11-26T22:30:00+00:00", "Europe/Paris", "2026-11-27T08:00:00+00:00"),
        # 00:30 in Paris on the 27th is still 23:30 UTC on the 26th: "tomorrow" is Paris's, the 28th.
        ("2026-11-26T23:30:00+00:00", "Europe/Paris", "2026-11-28T08:00:00+00:00"),
        # The night the clocks go forward (29 March 2026, Paris): 09:00 is UTC+2 the next morning.
        ("2026-03-28T12:00:00+00:00", "Europe/Paris", "2026-03-29T07:00:00+00:00"),
        ("2026-11-26T22:30:00+00:00", "UTC", "2026-11-27T09:00:00+00:00"),
        ("2026-11-26T22:30:00+00:00", "America/Los_Angeles", "2026-11-27T17:00:00+00:00"),
    ],
)
def test_tomorrow_0900_in_the_time_zone(pressed: str, zone: str, until: str):
    ends = snooze_until(SnoozeFor.TOMORROW_0900, datetime.fromisoformat(pressed), zone)
    assert ends == datetime.fromisoformat(until)
    assert ends.tzinfo is UTC


def test_one_and_four_hours():
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert snooze_until(SnoozeFor.ONE_HOUR, now, "Europe/Paris") == now + timedelta(hours=1)
    assert snooze_until(SnoozeFor.FOUR_HOURS, now, "UTC") == now + timedelta(hours=4)


# -- the race ---------------------------------------------------------------------------------------------------
RACE = {"lifetimes": 600, "seconds": 6.0, "workers": 4, "paths": 2, "abandon_rate": 0.1, "long_hold_rate": 0.3}


def test_reap_now_pressed_while_workers_take_the_lock_again_never_deletes_a_live_lock(monkeypatch, tmp_path, aws_env):
    """Terraform-like workers (tests/racelab.py) take, hold, release and abandon locks on a few states; a person
    presses Reap now on messages that showed an acquisition whose run has ended (released, or died holding it), as
    fast as the function answers, while other runs take the state again. Every DeleteItem the function sends must
    be conditional on the Info of a run that is not alive at that moment, and no worker may find its lock gone."""
    import racelab  # noqa: PLC0415
    from moto import mock_aws  # noqa: PLC0415

    config = racelab.RaceConfig(**RACE, long_hold_seconds=0.05)  # type: ignore[arg-type]
    registry = racelab.Registry()
    with mock_aws(), racelab.atomic_moto(), _race_function(monkeypatch, tmp_path) as (url, answers, audit):
        lab = racelab.Lab(config, parse_policy("{}"), registry)
        lab.setup()
        audit.registry = registry
        presser = _Presser(lab, Slack(SIGNING_SECRET, url.url), answers.url("/a"))
        workers = [racelab.Worker(lab, n) for n in range(config.workers)]
        for thread in [*workers, presser]:
            thread.start()
        deadline = time.monotonic() + config.seconds
        while time.monotonic() < deadline and lab.figures.lifetimes < config.lifetimes:
            time.sleep(0.05)
        lab.stop_workers.set()
        for worker in workers:
            worker.join(timeout=30)
        presser.stop.set()
        presser.join(timeout=30)
        outcomes = [json.loads(r.body)["text"].split(" ", 1)[0] for r in answers.requests]

    assert lab.figures.errors == []
    assert set(presser.statuses) == {200}, presser.statuses
    assert lab.figures.violations == []  # no worker found its live lock gone
    assert audit.violations == []  # no DeleteItem aimed at a live run's lock
    assert audit.sent > 0
    assert outcomes.count(":white_check_mark:") > 0  # ended runs' locks were reaped ...
    assert outcomes.count(":warning:") > 0  # ... and presses raced runs that had taken the state again


@contextmanager
def _race_function(monkeypatch, tmp_path) -> Iterator[tuple[FunctionUrl, StubServer, _DeleteAudit]]:
    """The interactions function on loopback within the race's moto (tables made by the lab), its DeleteItem
    requests audited against the workers' registry."""
    import interactions_handler  # noqa: PLC0415
    import racelab  # noqa: PLC0415
    from tflock_reaper.entrypoints import interactions  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "policy.yaml").write_text(f"mode: enforce\ndefaults: {{approvers: [{APPROVER}]}}\n")
    boto3.client("secretsmanager", region_name=REGION).create_secret(Name=SECRET_NAME, SecretString=SIGNING_SECRET)
    answers = StubServer().start()
    for name, value in {
        "LOCK_TABLE_NAMES": LOCK_TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(tmp_path / "policy.yaml"),
        "SLACK_SIGNING_SECRET_NAME": SECRET_NAME,
        "SLACK_RESPONSE_URL_PREFIX": answers.url("/"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(interactions_handler.metrics, "namespace", "TflockReaper")
    get_settings.cache_clear()
    interactions.default_interactions.cache_clear()
    audit = _DeleteAudit(racelab.LIVE)
    try:
        interactions.default_interactions().clients.dynamodb().meta.events.register(
            "before-parameter-build.dynamodb.DeleteItem", audit
        )
        with FunctionUrl(interactions_handler.lambda_handler) as url:
            yield url, answers, audit
    finally:
        answers.stop()
        get_settings.cache_clear()
        interactions.default_interactions.cache_clear()


class _DeleteAudit:
    """Every DeleteItem the function's client sends: conditional on the Info read, of a run not alive now (in the
    lab's registry, given once the lab exists)."""

    def __init__(self, live: frozenset[str]) -> None:
        self.live = live
        self.registry: Any = None
        self.sent = 0
        self.violations: list[str] = []

    def __call__(self, params: dict[str, Any], **_: Any) -> None:
        self.sent += 1
        observed = params.get("ExpressionAttributeValues", {}).get(":observed", {}).get("S")
        if params.get("ConditionExpression") != "#info = :observed" or not observed:
            self.violations.append(f"DeleteItem without the Info condition: {params}")
            return
        state = self.registry.state(json.loads(observed)["ID"]) if self.registry is not None else None
        if state is None or state in self.live:
            self.violations.append(f"DeleteItem sent for {params['Key']} whose run is {state}")


class _Presser(threading.Thread):
    """A person watching the channel: each message shows a lock as a sweep read it (its acquisition recorded, as
    the stream records it); they wait until their CI says the run it shows has ended, and press Reap now at once, by
    which time another run may hold the state."""

    def __init__(self, lab: Any, slack: Slack, response_url: str) -> None:
        super().__init__(name="race-presser", daemon=True)
        self.lab = lab
        self.slack = slack
        self.response_url = response_url
        self.stop = threading.Event()
        self.statuses: list[int] = []

    def run(self) -> None:
        import racelab  # noqa: PLC0415

        client = self.lab.client()
        table, store = LockTable(client, LOCK_TABLE), StateTable(client, STATE_TABLE)
        try:
            while not self.stop.is_set():
                for n, path in enumerate(self.lab.paths):
                    item = client.get_item(TableName=LOCK_TABLE, Key={"LockID": {"S": path}}, ConsistentRead=True)
                    lock = classify_item(item.get("Item", {}), None, table=LOCK_TABLE, table_arn=table.arn)
                    if not isinstance(lock, LockRecord):
                        continue
                    store.record_acquired(lock, datetime.now(UTC), f"{time.monotonic_ns()}{n}")
                    waited = time.monotonic() + 0.2
                    while self.lab.registry.state(lock.lock_id) in racelab.LIVE and time.monotonic() < waited:
                        time.sleep(0.001)  # their CI says the run shown is still going: they wait for it to end
                    if self.lab.registry.state(lock.lock_id) in racelab.LIVE:
                        continue
                    value = button(lock)
                    reply = self.slack.post(payload(SlackAction.REAP_NOW, value, response_url=self.response_url))
                    self.statuses.append(reply.status)
        except Exception as err:  # noqa: BLE001 - reported and failed on
            self.lab.error(f"presser: {type(err).__name__}: {err}")
