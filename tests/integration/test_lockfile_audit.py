"""The stream function on S3 lockfile events from EventBridge (`events/s3_lockfile_*.json`, shaped as AWS
documents them), against moto's S3 and state table: the same audit events and fields as DynamoDB locks."""

import copy
import io
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from factories import go_time, lock_info
from fakes import FakeLambdaContext
from tables import STATE_TABLE
from tflock_reaper.dal.errors import AwsAccessError
from tflock_reaper.dal.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.dal.state_table import StateTable
from tflock_reaper.lock import LockRecord, classify_lockfile

EVENTS = Path(__file__).parents[2] / "events"
BUCKET = "tf-state"
KEY = "dev/network/terraform.tfstate.tflock"
LOCK_PATH = f"{BUCKET}/dev/network/terraform.tfstate"
NOW = datetime.now(UTC).replace(microsecond=0)


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture
def s3(dynamodb: Any) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def handler(monkeypatch):
    import stream_handler  # noqa: PLC0415

    monkeypatch.setattr(stream_handler.metrics, "namespace", "TflockReaper")
    stream_handler.metrics.clear_metrics()
    package_logger = logging.getLogger("tflock_reaper")
    saved = (list(package_logger.handlers), package_logger.propagate, package_logger.level)
    buffer = io.StringIO()
    previous = stream_handler.logger.registered_handler.setStream(buffer)
    yield stream_handler, buffer
    stream_handler.logger.registered_handler.setStream(previous)
    package_logger.handlers[:], package_logger.propagate = saved[0], saved[1]
    package_logger.setLevel(saved[2])
    stream_handler.metrics.clear_metrics()


class Audit:
    """Delivers S3 events to the function's lockfile path with a StateTable on moto; collects the audit lines."""

    def __init__(self, module: Any, logs: io.StringIO, s3: Any, dynamodb: Any) -> None:
        self.module, self.logs, self.s3 = module, logs, s3
        self.store = StateTable(dynamodb, STATE_TABLE)
        self.buckets = LockfileBuckets(s3, [BucketLocation(BUCKET)])

    def read(self, bucket: str, key: str) -> Any:
        return self.buckets.get(f"{bucket}/{key.removesuffix('.tflock')}")

    def deliver(self, event: dict[str, Any]) -> None:
        self.module.handle_lockfile_event(event, store=self.store, read=self.read)

    def lines(self) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.logs.getvalue().splitlines() if line.startswith("{")]
        return [line for line in parsed if "event" in line]

    def acquire(self, *, at: datetime = NOW, key: str = KEY, **info: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Terraform writes the lockfile; returns (its LockInfo, the Object Created event S3 sends)."""
        body = lock_info(f"{BUCKET}/{key.removesuffix('.tflock')}", created=go_time(at), **info)
        etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())["ETag"]
        return body, s3_event("s3_lockfile_created.json", at=at, key=key, etag=etag.strip('"'))

    def lock(self, key: str = KEY) -> LockRecord:
        obj = self.read(BUCKET, key)
        assert obj is not None
        lock = classify_lockfile(obj, None)
        assert isinstance(lock, LockRecord)
        return lock


def s3_event(name: str, *, at: datetime, key: str = KEY, etag: str | None = None, **top: Any) -> dict[str, Any]:
    event = copy.deepcopy(load(name))
    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event["detail"]["object"]["key"] = key
    if etag is not None:
        event["detail"]["object"]["etag"] = etag
    event.update(top)
    return event


def released(at: datetime, key: str = KEY) -> dict[str, Any]:
    return s3_event("s3_lockfile_deleted.json", at=at, key=key, id=f"deleted-{at.timestamp()}-{key}")


@pytest.fixture
def audit(handler, s3, dynamodb) -> Audit:
    module, logs = handler
    return Audit(module, logs, s3, dynamodb)


def test_the_fixtures_are_s3_events_as_eventbridge_delivers_them():
    for name, detail_type in (
        ("s3_lockfile_created.json", "Object Created"),
        ("s3_lockfile_deleted.json", "Object Deleted"),
    ):
        event = load(name)
        assert (event["source"], event["detail-type"], event["version"]) == ("aws.s3", detail_type, "0")
        assert event["resources"] == [f"arn:aws:s3:::{event['detail']['bucket']['name']}"]
        assert event["detail"]["object"]["key"].endswith(".tflock")
        assert datetime.fromisoformat(event["time"]).tzinfo is not None


def test_created_lockfile_is_logged_as_lock_acquired_with_the_dynamodb_fields(audit, dynamodb):
    info, event = audit.acquire(who="runner@ci-host-7")

    audit.deliver(event)

    [line] = audit.lines()
    assert line["level"] == "INFO"
    assert line["message"] == line["event"] == "lock_acquired"
    assert (line["lock_path"], line["lock_id"]) == (LOCK_PATH, info["ID"])
    assert (line["who"], line["operation"]) == ("runner@ci-host-7", "OperationTypeApply")
    assert datetime.fromisoformat(line["lock_created"]) == NOW
    assert line["server_time"] == NOW.isoformat()
    [item] = dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
    assert (item["pk"]["S"], item["sk"]["S"]) == (f"LOCK#{LOCK_PATH}", f"ID#{info['ID']}")
    assert item["acquired_at"]["S"] == NOW.isoformat()
    assert item["acquired_seq"]["S"] == event["id"]


def test_deleted_lockfile_is_logged_as_lock_released_held_from_the_recorded_server_time(audit):
    info, event = audit.acquire()
    audit.deliver(event)
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)

    audit.deliver(released(NOW + timedelta(seconds=42)))

    _, release = audit.lines()
    assert release["event"] == "lock_released"
    assert (release["lock_path"], release["lock_id"]) == (LOCK_PATH, info["ID"])
    assert (release["who"], release["operation"]) == (info["Who"], "OperationTypeApply")
    assert release["held_seconds"] == 42
    assert release["released_by"] == "terraform"
    assert release["server_time"] == (NOW + timedelta(seconds=42)).isoformat()
    assert audit.store.open_acquisitions(LOCK_PATH) == []


def test_deletion_after_a_reap_record_is_released_by_the_reaper(audit):
    _, event = audit.acquire()
    audit.deliver(event)
    lock = audit.lock()
    audit.store.begin_reap(lock, NOW + timedelta(minutes=10), ["past reap_after"])
    audit.store.end_reap(lock, "reaped", NOW + timedelta(minutes=10), None)
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)

    audit.deliver(released(NOW + timedelta(minutes=10)))

    release = audit.lines()[-1]
    assert (release["event"], release["released_by"]) == ("lock_released", "tflock-reaper")
    assert release["held_seconds"] == 600


def test_redelivered_events_record_and_log_nothing_twice(audit, dynamodb):
    _, created = audit.acquire()
    audit.deliver(created)
    audit.deliver(created)
    item_before = dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
    deleted = released(NOW + timedelta(seconds=5))
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)

    audit.deliver(deleted)
    [item_released] = dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
    audit.deliver(deleted)
    audit.deliver(created)  # the object is gone by now: a late redelivery is ignored, never re-recorded

    assert [line["event"] for line in audit.lines()] == ["lock_acquired", "lock_released", "item_ignored"]
    assert item_before[0]["acquired_at"] == item_released["acquired_at"]
    assert dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"] == [item_released]


def test_a_second_acquisition_is_released_on_its_own(audit):
    first, created = audit.acquire()
    audit.deliver(created)
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)
    audit.deliver(released(NOW + timedelta(seconds=5)))
    second, created_again = audit.acquire(at=NOW + timedelta(minutes=30))
    audit.deliver({**created_again, "id": "second-acquisition"})
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)

    audit.deliver(released(NOW + timedelta(minutes=31)))

    lines = audit.lines()
    assert [(line["event"], line["lock_id"]) for line in lines] == [
        ("lock_acquired", first["ID"]),
        ("lock_released", first["ID"]),
        ("lock_acquired", second["ID"]),
        ("lock_released", second["ID"]),
    ]
    assert lines[-1]["held_seconds"] == 60


def test_deletion_of_a_lockfile_never_seen_acquired_is_released_by_unknown(audit):
    audit.deliver(released(NOW))

    [line] = audit.lines()
    # Powertools leaves out the fields whose value is None (lock_id, who, held_seconds, ...).
    assert (line["event"], line["lock_path"], line.get("lock_id")) == ("lock_released", LOCK_PATH, None)
    assert (line["released_by"], line.get("held_seconds")) == ("unknown", None)


def test_a_dual_backend_release_already_recorded_from_the_stream_logs_nothing_more(audit):
    info, created = audit.acquire()
    audit.deliver(created)
    audit.store.record_released(LOCK_PATH, info["ID"], NOW + timedelta(seconds=9), "100000000000000000001")
    audit.s3.delete_object(Bucket=BUCKET, Key=KEY)

    audit.deliver(released(NOW + timedelta(seconds=10)))

    assert [line["event"] for line in audit.lines()] == ["lock_acquired"]


@pytest.mark.parametrize(
    ("key", "detail_type", "reason"),
    [
        ("dev/network/terraform.tfstate", "Object Created", "is not a <state key>.tflock object"),
        ("dev/network/terraform.tfstate", "Object Deleted", "is not a <state key>.tflock object"),
        (KEY, "Object Restore Completed", "'Object Restore Completed' is not a lockfile acquire or release"),
    ],
)
def test_anything_but_a_lockfile_change_is_ignored_with_its_reason(audit, dynamodb, key, detail_type, reason):
    audit.deliver(s3_event("s3_lockfile_created.json", at=NOW, key=key, **{"detail-type": detail_type}))

    [line] = audit.lines()
    assert (line["level"], line["event"]) == ("WARNING", "item_ignored")
    assert reason in line["reason"]
    assert dynamodb.scan(TableName=STATE_TABLE)["Items"] == []


def test_a_lockfile_replaced_before_it_was_read_is_left_to_its_own_event(audit, dynamodb):
    _, created = audit.acquire()
    audit.acquire()  # released and taken again before the first event was handled

    audit.deliver(created)

    [line] = audit.lines()
    assert (line["event"], line["reason"]) == (
        "item_ignored",
        "lockfile replaced since the event (another acquisition)",
    )
    assert dynamodb.scan(TableName=STATE_TABLE)["Items"] == []


def test_a_lockfile_gone_before_it_was_read_is_ignored(audit, dynamodb):
    audit.deliver(s3_event("s3_lockfile_created.json", at=NOW))

    [line] = audit.lines()
    assert line["event"] == "item_ignored"
    assert "gone before it could be read" in line["reason"]
    assert dynamodb.scan(TableName=STATE_TABLE)["Items"] == []


def test_a_malformed_lockfile_and_a_malformed_event_are_ignored(audit):
    etag = audit.s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"{not json")["ETag"]
    audit.deliver(s3_event("s3_lockfile_created.json", at=NOW, etag=etag.strip('"')))
    audit.deliver({"source": "aws.s3", "detail-type": "Object Created", "detail": {}})

    first, second = audit.lines()
    assert "lockfile body is not valid JSON" in first["reason"]
    assert "not an S3 event from EventBridge" in second["reason"]


def _refuse(client: Any, operation: str) -> None:
    def refuse(params: Any, **kwargs: Any) -> None:
        error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}
        raise ClientError({"Error": error}, operation)

    client.meta.events.register(f"provide-client-params.dynamodb.{operation}", refuse)


@pytest.mark.parametrize("operation", ["UpdateItem", "Query"])
def test_a_throttled_state_table_raises_so_that_lambda_retries(audit, dynamodb, operation):
    _, created = audit.acquire()
    if operation == "Query":
        audit.deliver(created)
    _refuse(dynamodb, operation)
    event = created if operation == "UpdateItem" else released(NOW + timedelta(seconds=3))

    with pytest.raises(AwsAccessError, match="state table"):
        audit.deliver(event)


def test_lambda_handler_dispatches_eventbridge_events_and_reads_s3_itself(handler, s3, dynamodb, monkeypatch):
    from tflock_reaper.app import default_clients  # noqa: PLC0415
    from tflock_reaper.settings import get_settings  # noqa: PLC0415

    module, logs = handler
    event = load("s3_lockfile_created.json")
    body = lock_info(LOCK_PATH, created=event["time"])
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(body).encode())["ETag"]
    event["detail"]["object"]["etag"] = etag.strip('"')
    monkeypatch.setenv("LOCK_TABLE_NAME", "tf-locks")
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    caches: list[Any] = [get_settings, module.default_store, default_clients]
    for cache in caches:
        cache.cache_clear()
    try:
        assert module.lambda_handler(event, FakeLambdaContext()) is None
    finally:
        for cache in caches:
            cache.cache_clear()

    lines = [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]
    [line] = [line for line in lines if "event" in line]
    assert (line["event"], line["lock_id"]) == ("lock_acquired", body["ID"])
    assert line["server_time"] == datetime.fromisoformat(event["time"]).isoformat()
