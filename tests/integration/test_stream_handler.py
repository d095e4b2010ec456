"""The stream function against a moto state table: partial batch failures, poison records, redelivery,
and the sweeper measuring age from the stream's server time."""

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from factories import digest_item, go_time, lock_item
from fakes import FakeLambdaContext, FakeLockTable
from streams import STREAM_ARN, function_logs, logged_events, stream_record
from tables import STATE_TABLE, table_items
from tflock_reaper.adapters.state_table import StateTable, state_pk
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import sweep

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def stream(monkeypatch):
    import stream_handler  # noqa: PLC0415

    monkeypatch.setattr(stream_handler.metrics, "namespace", "TflockReaper")
    with function_logs(stream_handler) as buffer:
        yield stream_handler, buffer


def _events(buffer: io.StringIO) -> list[dict]:
    return logged_events(buffer.getvalue())


def _batch(*records):
    return {"Records": list(records)}


#: The lock table the stream records come from: the scope of its records in the state table.
TABLE_ARN = STREAM_ARN.split("/stream/", 1)[0]


def throttle_writes_for(client, lock_paths: set[str]) -> None:
    """DynamoDB refuses UpdateItem for these state paths, as a throttled table does after the SDK's retries."""

    keys = {state_pk(TABLE_ARN, path) for path in lock_paths}

    def refuse(params, **kwargs):
        if params["Key"]["pk"]["S"] in keys:
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}
            raise ClientError({"Error": error}, "UpdateItem")

    client.meta.events.register("provide-client-params.dynamodb.UpdateItem", refuse)


def test_a_batch_is_logged_one_line_per_event(dynamodb, stream):
    module, logs = stream
    lock = lock_item("tf-state/a.tfstate", created=NOW)
    batch = _batch(
        stream_record("INSERT", new=lock, at=NOW),
        stream_record("MODIFY", new=digest_item("tf-state/a.tfstate"), at=NOW + timedelta(seconds=20)),
        stream_record("REMOVE", old=lock, at=NOW + timedelta(seconds=42)),
    )
    result = module.handle_batch(batch, FakeLambdaContext(), StateTable(dynamodb, STATE_TABLE))
    assert result == {"batchItemFailures": []}
    events = _events(logs)
    assert [e["event"] for e in events] == ["lock_acquired", "state_persisted", "lock_released"]
    assert events[2]["held_seconds"] == 42
    assert events[2]["released_by"] == "terraform"
    assert events[0]["server_time"] == NOW.isoformat()


def test_throttled_state_table_fails_exactly_the_affected_records(dynamodb, stream):
    module, logs = stream
    throttle_writes_for(dynamodb, {"tf-state/throttled.tfstate"})
    records = [
        stream_record("INSERT", new=lock_item("tf-state/ok.tfstate"), at=NOW),
        stream_record("INSERT", new=lock_item("tf-state/throttled.tfstate"), at=NOW),
        stream_record("MODIFY", new=digest_item("tf-state/throttled.tfstate"), at=NOW),
        stream_record("MODIFY", new=digest_item("tf-state/ok.tfstate"), at=NOW),
    ]
    result = module.handle_batch(_batch(*records), FakeLambdaContext(), StateTable(dynamodb, STATE_TABLE))
    failed = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert failed == [records[1]["dynamodb"]["SequenceNumber"], records[2]["dynamodb"]["SequenceNumber"]]
    assert [(e["event"], e["lock_path"]) for e in _events(logs)] == [
        ("lock_acquired", "tf-state/ok.tfstate"),
        ("state_persisted", "tf-state/ok.tfstate"),
    ]


def test_poison_records_are_logged_and_never_fail_the_batch(dynamodb, stream):
    module, logs = stream
    poison = {"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": {"SequenceNumber": "7"}}
    foreign = stream_record("INSERT", new={"LockID": {"S": "tf-state/x"}, "Info": {"S": "{"}}, at=NOW)
    good = stream_record("INSERT", new=lock_item("tf-state/good.tfstate"), at=NOW)
    result = module.handle_batch(_batch(poison, foreign, good), FakeLambdaContext(), StateTable(dynamodb, STATE_TABLE))
    assert result == {"batchItemFailures": []}
    events = _events(logs)
    assert [e["event"] for e in events] == ["item_ignored", "item_ignored", "lock_acquired"]
    assert "not a DynamoDB stream record" in events[0]["reason"]
    assert "not valid JSON" in events[1]["reason"]


def test_redelivered_batch_records_and_logs_nothing_twice(dynamodb, stream):
    module, logs = stream
    lock = lock_item("tf-state/a.tfstate")
    batch = _batch(
        stream_record("INSERT", new=lock, at=NOW),
        stream_record("MODIFY", new=digest_item("tf-state/a.tfstate"), at=NOW),
        stream_record("REMOVE", old=lock, at=NOW + timedelta(seconds=5)),
    )
    store = StateTable(dynamodb, STATE_TABLE)
    module.handle_batch(batch, FakeLambdaContext(), store)
    state_after_first = table_items(dynamodb, STATE_TABLE)
    logged_first = len(_events(logs))
    module.handle_batch(batch, FakeLambdaContext(), store)
    assert table_items(dynamodb, STATE_TABLE) == state_after_first
    assert len(_events(logs)) == logged_first == 3


def test_digest_writes_in_the_same_second_are_each_recorded_once(dynamodb, stream):
    module, logs = stream
    digest = digest_item("tf-state/a.tfstate")
    first = stream_record("MODIFY", new=digest, at=NOW, sequence="500000000000000000001")
    second = stream_record("MODIFY", new=digest, at=NOW, sequence="500000000000000000002")
    store = StateTable(dynamodb, STATE_TABLE)
    module.handle_batch(_batch(first, second), FakeLambdaContext(), store)
    module.handle_batch(_batch(first, second), FakeLambdaContext(), store)
    assert [e["event"] for e in _events(logs)] == ["state_persisted", "state_persisted"]
    (persisted,) = [i for i in table_items(dynamodb, STATE_TABLE) if i["sk"]["S"] == "PERSISTED"]
    assert persisted["persisted_seq"]["S"].lstrip("0") == "500000000000000000002"


def _sweep_after_stream(dynamodb, lock, acquired_at):
    store = StateTable(dynamodb, STATE_TABLE)
    import stream_handler  # noqa: PLC0415

    stream_handler.handle_batch(_batch(stream_record("INSERT", new=lock, at=acquired_at)), FakeLambdaContext(), store)
    policy = parse_policy(
        "mode: enforce\ndefaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, holder: {assume: gone}}"
    )
    table = FakeLockTable([lock])
    return sweep(lock_table=table, state=store, policy=policy, mode="enforce", clock=lambda: NOW).locks[0]


def test_sweeper_measures_age_from_the_stream_time(dynamodb, stream):
    # Created was stamped 3 minutes before the acquisition (Terraform stamps it before -lock-timeout retries);
    # the server saw the acquisition 1h ago: age is measured from the server's time.
    created = NOW - timedelta(hours=1, minutes=3)
    lock = lock_item("tf-state/a.tfstate", created=go_time(created))
    entry = _sweep_after_stream(dynamodb, lock, NOW - timedelta(hours=1))
    assert entry.verdict.age_basis == "server time"
    assert 3590 <= entry.verdict.age.total_seconds() <= 3700
    assert entry.outcome is Outcome.WARNED


def test_sweeper_flags_a_created_skewed_from_the_stream_time(dynamodb, stream):
    # Created says 9h old; the server saw the acquisition 3h ago: the holder's clock is off by 6h.
    lock = lock_item("tf-state/a.tfstate", created=NOW - timedelta(hours=9))
    entry = _sweep_after_stream(dynamodb, lock, NOW - timedelta(hours=3))
    assert entry.outcome is Outcome.BLOCKED
    assert any("clock skew" in r and "server's acquisition time" in r for r in entry.reasons)


class FlakyChannel:
    """A channel whose first send fails as a timeout would (retryable), then works."""

    name = "team-slack"

    def __init__(self) -> None:
        self.attempts = 0
        self.delivered: list[str] = []

    def render(self, notification):
        return {}

    def send(self, notification):
        from tflock_reaper.domain.notifier import NotifyError  # noqa: PLC0415

        self.attempts += 1
        if self.attempts == 1:
            raise NotifyError(self.name, "timed out", retryable=True)
        self.delivered.append(notification.dedup_key)


def test_a_resolved_that_failed_is_retried_with_its_record_and_sent_once(dynamodb, stream):
    from tflock_reaper.adapters.memory import MemoryLedger  # noqa: PLC0415
    from tflock_reaper.domain.lock import LockRecord, classify_item  # noqa: PLC0415
    from tflock_reaper.services.dispatch import dispatch  # noqa: PLC0415

    module, logs = stream
    lock = lock_item("tf-state/a.tfstate", created=NOW)
    store = StateTable(dynamodb, STATE_TABLE)
    parsed = classify_item(lock, None, table="tf-locks", table_arn=TABLE_ARN)
    assert isinstance(parsed, LockRecord)
    store.mark_alerted(parsed, json.dumps({"team-slack": {"type": "slack", "webhook": {"secret": "x"}}}))
    channel, ledger = FlakyChannel(), MemoryLedger()

    def announce(notification, channels_json):
        return dispatch(notification, [channel], ledger)

    # With another record in the batch: when every record fails, Powertools fails the whole invocation instead.
    other = stream_record("INSERT", new=lock_item("tf-state/b.tfstate"), at=NOW)
    batch = _batch(stream_record("REMOVE", old=lock, at=NOW + timedelta(minutes=5)), other)
    first = module.handle_batch(batch, FakeLambdaContext(), store, announce)
    second = module.handle_batch(batch, FakeLambdaContext(), store, announce)
    third = module.handle_batch(batch, FakeLambdaContext(), store, announce)
    sequence = batch["Records"][0]["dynamodb"]["SequenceNumber"]
    assert first == {"batchItemFailures": [{"itemIdentifier": sequence}]}
    assert second == third == {"batchItemFailures": []}
    assert channel.attempts == 2
    assert len(channel.delivered) == 1
    assert channel.delivered[0].endswith("#resolved")
    audit = [e["event"] for e in _events(logs) if e["message"] == e["event"]]
    assert audit == ["lock_released", "lock_acquired"]


def test_a_terraform_release_after_an_alert_is_logged_and_counted_as_by_hand(dynamodb, stream):
    """The stream cannot tell ``terraform force-unlock`` from the holder's own release; a release of a lock the
    reaper had reported stale is most likely the former: ``by_hand`` in the log line, and ForceUnlocks."""
    from aws_lambda_powertools import Metrics  # noqa: PLC0415
    from tflock_reaper.domain.lock import LockRecord, classify_item  # noqa: PLC0415
    from tflock_reaper.entrypoints.stream import PowertoolsAuditLog  # noqa: PLC0415
    from tflock_reaper.services.recorder import audit_stream_record  # noqa: PLC0415

    module, logs = stream
    store = StateTable(dynamodb, STATE_TABLE)
    stuck, quick = lock_item("tf-state/stuck.tfstate", created=NOW), lock_item("tf-state/quick.tfstate", created=NOW)
    batch = [stream_record("INSERT", new=stuck, at=NOW), stream_record("INSERT", new=quick, at=NOW)]
    module.handle_batch(_batch(*batch), FakeLambdaContext(), store)
    warned = classify_item(stuck, NOW, table="tf-locks", table_arn=TABLE_ARN)
    assert isinstance(warned, LockRecord)
    store.observe([warned], NOW + timedelta(hours=1))
    store.settle([warned], NOW + timedelta(hours=1))

    metrics = Metrics(namespace="TflockReaper", service="test")
    metrics.clear_metrics()  # Powertools keeps one metric set per process
    log = PowertoolsAuditLog(module.logger, metrics)
    for old in (stuck, quick):
        audit_stream_record(stream_record("REMOVE", old=old, at=NOW + timedelta(hours=2)), store, None, log)  # type: ignore[arg-type]

    released = {e["lock_path"]: e for e in _events(logs) if e["event"] == "lock_released"}
    assert released["tf-state/stuck.tfstate"]["by_hand"] is True
    assert released["tf-state/quick.tfstate"]["by_hand"] is False
    assert metrics.metric_set["ForceUnlocks"]["Value"] == [1.0]
    assert metrics.metric_set["LocksReleased"]["Value"] == [1.0, 1.0]
