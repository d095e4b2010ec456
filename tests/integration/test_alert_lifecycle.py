"""A lock's alerts from acquisition to release, through the deployed code paths: the sweeper's Lambda handler and
the stream function's batch handler, DynamoDB (lock and state tables), SNS delivering to SQS and Secrets Manager
in moto, and Slack and PagerDuty as real HTTP servers on loopback.

The sweeper reads the real clock (``service.sweep``); time passes for it by moving everything Terraform and the
reaper recorded (the lock's ``Created``, the state table's times) into the past, which is what it would see later.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from alert_stack import ROUTING_KEY, SLACK_PATH, AlertStack
from factories import go_time, lock_item
from fakes import FakeLambdaContext
from http_stub import Reply
from streams import stream_record
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.channels.slack import ZWSP
from tflock_reaper.adapters.channels.sns import JSON_INTRO

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sweeper_schedule.json").read_text())
PROD = "tf-state/prod/network/terraform.tfstate"
CI = "tf-state/ci/app/terraform.tfstate"
LOCK_ID = "6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b"
HOSTILE_WHO = "<!channel> @here <https://evil.example|x>"
#: The hostile Who as Slack must receive it: entities for <, > and &, a zero-width space after the @.
ESCAPED_WHO = f"&lt;!channel&gt; @{ZWSP}here &lt;https://evil.example|x&gt;"
STATE_TIMES = ("first_seen", "warned_at", "acquired_at")


class Deployment:
    """The two functions as Lambda runs them, plus what a test needs to drive time and the lock table."""

    def __init__(self, dynamodb: Any, alerts: AlertStack, logs: io.StringIO) -> None:
        import stream_handler  # noqa: PLC0415 - imported once the environment is set, as Lambda does
        import sweeper_handler  # noqa: PLC0415

        self.dynamodb = dynamodb
        self.alerts = alerts
        self.logs = logs
        self._sweeper = sweeper_handler.lambda_handler
        self._stream = stream_handler.handle_batch

    def sweep(self) -> dict[str, Any]:
        return self._sweeper(EVENT, FakeLambdaContext())

    def deliver(self, *records: dict[str, Any]) -> Any:
        """One stream batch to the stream function, with the store and channels it wires itself."""
        return self._stream({"Records": list(records)}, FakeLambdaContext())

    def acquire(self, path: str, *, age: timedelta, **kwargs: Any) -> dict[str, Any]:
        """Terraform takes a lock ``age`` ago: the item in the lock table, and its INSERT on the stream."""
        created = datetime.now(UTC).replace(microsecond=0) - age
        item = lock_item(path, created=created, **kwargs)
        put(self.dynamodb, item)
        assert self.deliver(stream_record("INSERT", new=item, at=created)) == {"batchItemFailures": []}
        return item

    def release(self, path: str) -> dict[str, Any]:
        """Terraform releases the lock: the item goes, and the stream record of its removal is returned."""
        (item,) = [i for i in table_items(self.dynamodb) if i["LockID"]["S"] == path]
        self.dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": item["LockID"]})
        return stream_record("REMOVE", old=item, at=datetime.now(UTC))

    def time_passes(self, delta: timedelta) -> None:
        """Move every recorded time ``delta`` into the past: the locks' ``Created`` (Terraform's clock) and the
        state table's first-seen, warned and acquired times (the reaper's and the stream's)."""
        for item in table_items(self.dynamodb):
            if "Info" in item:
                info = json.loads(item["Info"]["S"])
                info["Created"] = go_time(datetime.fromisoformat(info["Created"]) - delta)
                put(self.dynamodb, {**item, "Info": {"S": json.dumps(info, separators=(",", ":"))}})
        for item in table_items(self.dynamodb, STATE_TABLE):
            for name in STATE_TIMES:
                if name in item:
                    item[name] = {"S": (datetime.fromisoformat(item[name]["S"]) - delta).isoformat()}
            self.dynamodb.put_item(TableName=STATE_TABLE, Item=item)

    def sent(self) -> dict[str, list[str]]:
        """What each channel has received so far, by event (SNS: the messages since the last call)."""
        return {
            "slack": [_slack_event(post) for post in self.alerts.slack_posts()],
            "sns": [m["MessageAttributes"]["event"]["Value"] for m in self.alerts.sns_messages()],
            "pagerduty": [
                e["event_action"] + ":" + e.get("payload", {}).get("custom_details", {}).get("event", "")
                for e in self.alerts.pagerduty_events()
            ],
        }


def _slack_event(post: dict[str, Any]) -> str:
    """The event a Slack post announces, from its context line (``... event `stale` ...``)."""
    context = post["blocks"][-1]["elements"][0]["text"]
    return context.split("`")[1]


@pytest.fixture
def deployment(dynamodb, alerts, monkeypatch) -> Iterator[Deployment]:
    monkeypatch.setenv("LOCK_TABLE_NAME", LOCK_TABLE)
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    monkeypatch.setenv("POLICY_PATH", str(alerts.policy_path))
    monkeypatch.setenv("REAPER_MODE", "enforce")
    monkeypatch.setenv("ALERT_TOPIC_ARN", alerts.topic_arn)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tflock-reaper")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TflockReaper")
    import stream_handler  # noqa: PLC0415
    import sweeper_handler  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415
    from tflock_reaper.entrypoints.stream import default_store  # noqa: PLC0415
    from tflock_reaper.entrypoints.wiring import default_clients  # noqa: PLC0415

    # Metrics read their namespace at first import, which another test module may have done before us.
    monkeypatch.setattr(sweeper_handler.metrics, "namespace", "TflockReaper")
    monkeypatch.setattr(stream_handler.metrics, "namespace", "TflockReaper")
    caches: list[Any] = [get_settings, default_store, default_clients]
    for cache in caches:
        cache.cache_clear()
    logs = io.StringIO()
    handlers = {sweeper_handler.logger.registered_handler, stream_handler.logger.registered_handler}
    previous = [(handler, handler.setStream(logs)) for handler in handlers]
    yield Deployment(dynamodb, alerts, logs)
    for handler, stream in previous:
        handler.setStream(stream)
    for cache in caches:
        cache.cache_clear()


@pytest.fixture
def atomic_moto(monkeypatch) -> None:
    """DynamoDB applies each request atomically; moto, called from two threads, may interleave a conditional
    write's check with another's write. Serialise moto's requests (never their order) as the real service would
    serialise conflicting writes."""
    from moto.core.botocore_stubber import BotocoreStubber  # noqa: PLC0415

    lock = threading.RLock()
    call = BotocoreStubber.__call__

    def atomic(self: BotocoreStubber, event_name: str, request: Any, **kwargs: Any) -> Any:
        with lock:
            return call(self, event_name, request, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", atomic)


def test_a_lock_is_announced_stale_still_stale_per_interval_and_resolved_once(deployment):
    lock = deployment.acquire(PROD, age=timedelta(minutes=10), who=HOSTILE_WHO, lock_id=LOCK_ID)
    deployment.sweep()
    assert deployment.sent() == {"slack": [], "sns": [], "pagerduty": []}

    # Past warn_after: one stale on each channel, however many sweeps see it.
    deployment.time_passes(timedelta(minutes=25))
    deployment.sweep()
    deployment.sweep()
    assert deployment.sent() == {"slack": ["stale"], "sns": ["stale"], "pagerduty": ["trigger:stale"]}
    (slack_stale,) = deployment.alerts.slack_posts()
    _assert_block_kit(slack_stale, deployment.alerts.slack.requests[0].body)
    (trigger,) = deployment.alerts.pagerduty_events()
    dedup_key = f"tflock-reaper/{PROD}/{LOCK_ID}"
    assert (trigger["routing_key"], trigger["dedup_key"]) == (ROUTING_KEY, dedup_key)
    assert trigger["payload"]["custom_details"]["command"] == f"terraform force-unlock -force {LOCK_ID}"

    # Every renotify_every (1h) that it stays: one still_stale, numbered.
    for hour in (1, 2):
        deployment.time_passes(timedelta(hours=1))
        deployment.sweep()
        deployment.sweep()
        assert len(deployment.alerts.slack_posts()) == 1 + hour
        assert [p["blocks"][0]["text"]["text"] for p in deployment.alerts.slack_posts()[-1:]] == [
            "Terraform lock still stale: prod/network/terraform.tfstate"
        ]
    sent = deployment.sent()
    assert sent["slack"] == ["stale", "still_stale", "still_stale"]
    assert sent["sns"] == ["still_stale", "still_stale"]  # SNS: since the last look
    assert sent["pagerduty"] == ["trigger:stale", "trigger:still_stale", "trigger:still_stale"]
    assert {e["dedup_key"] for e in deployment.alerts.pagerduty_events()} == {dedup_key}

    # Released by Terraform: one resolved per channel, PagerDuty resolving the incident it opened.
    removal = deployment.release(PROD)
    assert removal["dynamodb"]["OldImage"]["Info"] != lock["Info"]  # Created moved with time
    assert deployment.deliver(removal) == {"batchItemFailures": []}
    sent = deployment.sent()
    assert sent["slack"][3:] == ["resolved"]
    assert sent["sns"] == ["resolved"]
    assert sent["pagerduty"][3:] == ["resolve:"]
    assert deployment.alerts.pagerduty_events()[-1] == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": dedup_key,
    }
    resolved_post = deployment.alerts.slack_posts()[-1]
    assert resolved_post["blocks"][0]["text"]["text"] == "Terraform lock released: prod/network/terraform.tfstate"
    # Held from the stream's acquisition time (the seconds are the test's own run time).
    assert re.search(r"released by terraform after 2h35m(\d+s)?\b", json.dumps(resolved_post))

    # The same batch again (a Lambda retry), and later sweeps: nothing more anywhere.
    assert deployment.deliver(removal) == {"batchItemFailures": []}
    deployment.sweep()
    assert deployment.sent() == {
        "slack": ["stale", "still_stale", "still_stale", "resolved"],
        "sns": [],
        "pagerduty": ["trigger:stale", "trigger:still_stale", "trigger:still_stale", "resolve:"],
    }
    logs = deployment.logs.getvalue()
    assert '"notification sent"' in logs
    assert "XXXXSECRET" not in logs
    assert ROUTING_KEY not in logs


def test_sns_carries_each_event_once_with_subject_attributes_and_json(deployment):
    deployment.acquire(PROD, age=timedelta(minutes=40), lock_id=LOCK_ID)
    deployment.sweep()
    deployment.sweep()
    deployment.time_passes(timedelta(hours=1))
    deployment.sweep()
    deployment.deliver(deployment.release(PROD))
    stale, still, resolved = deployment.alerts.sns_messages()

    assert stale["Subject"] == f"[tflock-reaper] stale lock: {PROD}"
    assert stale["MessageAttributes"] == {
        "event": {"Type": "String", "Value": "stale"},
        "severity": {"Type": "String", "Value": "warning"},
        "state_path": {"Type": "String", "Value": PROD},
        "operation": {"Type": "String", "Value": "OperationTypeApply"},
    }
    body, event_json = stale["Message"].split(f"\n{JSON_INTRO}\n")
    assert f"terraform force-unlock -force {LOCK_ID}" in body
    assert json.loads(event_json)["dedup_key"] == f"{PROD}#{LOCK_ID}#stale"
    assert still["Subject"] == f"[tflock-reaper] lock still stale: {PROD}"
    assert json.loads(still["Message"].split(f"\n{JSON_INTRO}\n")[1])["dedup_key"] == f"{PROD}#{LOCK_ID}#still_stale#1"
    assert resolved["Subject"] == f"[tflock-reaper] lock released: {PROD}"
    assert resolved["MessageAttributes"]["severity"]["Value"] == "info"


def test_a_reaped_lock_is_announced_once_with_the_follow_up_and_pagerduty_resolves(deployment):
    lock = deployment.acquire(CI, age=timedelta(hours=3), lock_id=LOCK_ID)
    assert deployment.sweep()["summary"]["reaped"] == 1
    assert [i["LockID"]["S"] for i in table_items(deployment.dynamodb)] == []

    sent = deployment.sent()
    assert sent == {"slack": ["reaped"], "sns": ["reaped"], "pagerduty": ["resolve:"]}
    (post,) = deployment.alerts.slack_posts()
    sections = [b["text"]["text"] for b in post["blocks"] if b["type"] == "section" and "text" in b]
    item_json = json.dumps(lock, separators=(",", ":"), sort_keys=True)
    assert f"*Deleted item*\n```{item_json}```" in sections
    (follow_up,) = [s for s in sections if s.startswith("*Follow-up*")]
    assert "partly written" in follow_up
    assert "terraform plan" in follow_up
    assert not any("force-unlock" in s for s in sections)  # nothing left to release by hand
    assert deployment.alerts.pagerduty_events() == [
        {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": f"tflock-reaper/{CI}/{LOCK_ID}"}
    ]

    # The stream then delivers the reap's own delete: the reaper already announced it, nothing is resolved.
    removal = stream_record("REMOVE", old=lock, at=datetime.now(UTC))
    assert deployment.deliver(removal) == {"batchItemFailures": []}
    deployment.sweep()
    assert deployment.sent() == {"slack": ["reaped"], "sns": [], "pagerduty": ["resolve:"]}


def test_a_channel_that_failed_is_retried_by_the_next_sweep_alone(deployment, capsys):
    deployment.acquire(PROD, age=timedelta(minutes=40), lock_id=LOCK_ID)
    deployment.alerts.slack.reply(Reply(404, "no_service"), Reply(200, "ok"))  # a broken webhook, then mended
    capsys.readouterr()
    deployment.sweep()
    # Slack refused it (one request: a 404 is not retried within the send); the other channels have it.
    assert deployment.sent() == {"slack": ["stale"], "sns": ["stale"], "pagerduty": ["trigger:stale"]}
    (emf,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "NotificationsSent" in line]
    assert (emf["NotificationsSent"], emf["NotificationFailures"]) == ([2.0], [1.0])
    assert "HTTP 404" in deployment.logs.getvalue()

    deployment.sweep()
    deployment.sweep()
    # The next sweep sent it to Slack again, accepted this time; nothing was repeated elsewhere.
    assert deployment.sent() == {"slack": ["stale", "stale"], "sns": [], "pagerduty": ["trigger:stale"]}


def test_overlapping_sweeps_send_each_event_once(deployment, atomic_moto):
    deployment.acquire(PROD, age=timedelta(minutes=45), lock_id=LOCK_ID)
    # Slack answers slowly, so that each sweep is still sending while the other one runs.
    deployment.alerts.slack.reply(Reply(200, "ok", delay=0.3))
    spans = _run_together(deployment.sweep, deployment.sweep)

    (first_end, second_start) = (min(end for _, end in spans), max(start for start, _ in spans))
    assert second_start < first_end  # the two sweeps did overlap
    assert deployment.sent() == {"slack": ["stale"], "sns": ["stale"], "pagerduty": ["trigger:stale"]}


def _run_together(*calls: Callable[[], Any]) -> list[tuple[float, float]]:
    """Run the calls in threads released together; their (start, end) times. Re-raises the first failure."""
    barrier = threading.Barrier(len(calls))
    spans: list[tuple[float, float]] = [(0.0, 0.0)] * len(calls)
    errors: list[Exception] = []

    def run(index: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        start = time.monotonic()
        try:
            call()
        except Exception as err:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(err)
        spans[index] = (start, time.monotonic())

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return spans


def _assert_block_kit(post: dict[str, Any], raw: bytes) -> None:
    """The stale message's structure, and the hostile Who made inert."""
    assert [b["type"] for b in post["blocks"]] == ["header", "section", "section", "section", "context"]
    header, facts, reasons, command, context = post["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "Stale Terraform lock: prod/network/terraform.tfstate"}
    fields = {f["text"].split("\n", 1)[0].strip("*"): f["text"].split("\n", 1)[1] for f in facts["fields"]}
    assert list(fields) == [
        "State path",
        "Workspace",
        "Operation",
        "Who",
        "Held for",
        "Terraform version",
        "Verdict",
        "Rule",
        "Lock ID",
        "Lock table",
    ]
    assert fields["State path"] == f"`{PROD}`"
    assert fields["Who"] == f"`{ESCAPED_WHO}`"
    assert fields["Operation"] == "`OperationTypeApply`"
    assert fields["Held for"].startswith("35m by server time (since ")  # the age says what it was measured from
    assert fields["Verdict"] == "warn → warned"
    assert fields["Lock ID"] == f"`{LOCK_ID}`"
    assert all(f["verbatim"] for f in facts["fields"])
    assert re.match(
        r"\*Reasons\*\n```• held 35m(\d+s)? \(by server time\): past warn_after 30m", reasons["text"]["text"]
    )
    assert command["text"]["text"].endswith(f"```terraform force-unlock -force {LOCK_ID}```")
    assert context["elements"][0]["text"] == "tflock-reaper · event `stale` · severity warning"
    assert post["text"] == (
        "Stale Terraform lock: tf-state/prod/network/terraform.tfstate "
        f"(OperationTypeApply by {ESCAPED_WHO.replace('://', ':' + ZWSP + '//')}, held 35m)"
    )
    assert (post["unfurl_links"], post["unfurl_media"]) == (False, False)
    # What Slack parses is the raw body: no control sequence (<!channel>, <https://...|x>) survives anywhere.
    assert b"<" not in raw
    assert b">" not in raw
    assert SLACK_PATH not in json.dumps(post)


def test_the_secrets_stay_in_secrets_manager(deployment):
    """The webhook URL and the routing key are read at send time, never written to the state table."""
    deployment.acquire(PROD, age=timedelta(minutes=40), lock_id=LOCK_ID)
    deployment.sweep()
    stored = json.dumps(table_items(deployment.dynamodb, STATE_TABLE))
    assert '"slack"' in stored  # the channels alerted are recorded, by reference
    assert "XXXXSECRET" not in stored
    assert ROUTING_KEY not in stored
    assert boto3.client("secretsmanager", region_name="us-east-1").list_secrets()["SecretList"]
