"""The stream function on S3 lockfile events from EventBridge (`events/s3_lockfile_*.json`, shaped as AWS
documents them), against moto's S3 and state table: the same audit events and fields as DynamoDB locks.

S3 delivers these events in no particular order, and sometimes twice: a deletion is matched by sequencer to the
create right before it, never to the newest acquisition (tests from "out of order" on)."""

import copy
import io
import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from factories import go_time, lock_info
from fakes import FakeLambdaContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streams import function_logs, logged_events
from tables import STATE_TABLE
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.state_table import StateTable, digest, state_pk
from tflock_reaper.domain.lock import LockRecord, classify_lockfile
from tflock_reaper.domain.lockfile_audit import sequencer_position

EVENTS = Path(__file__).parents[2] / "events"
BUCKET = "tf-state"
KEY = "dev/network/terraform.tfstate.tflock"
LOCK_PATH = f"{BUCKET}/dev/network/terraform.tfstate"
SCOPE = f"s3://{BUCKET}"
NOW = datetime.now(UTC).replace(microsecond=0)
#: S3's sequencers of one key grow with its events (18 hexadecimal digits, as in the documented examples).
FIRST_SEQUENCER = 0x00617F08299329D189


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
    with function_logs(stream_handler) as buffer:
        yield stream_handler, buffer
    stream_handler.metrics.clear_metrics()


class Audit:
    """Delivers S3 events to the function's lockfile path with a StateTable on moto; collects the audit lines."""

    def __init__(self, module: Any, logs: io.StringIO, s3: Any, dynamodb: Any) -> None:
        self.module, self.logs, self.s3, self.dynamodb = module, logs, s3, dynamodb
        self.store = StateTable(dynamodb, STATE_TABLE)
        self.buckets = LockfileBuckets(s3, [BucketLocation(BUCKET)])
        self.sequencers = itertools.count(FIRST_SEQUENCER)

    def next_sequencer(self) -> str:
        """The sequencer S3 gives the next event of the key (events of other keys are not compared)."""
        return f"{next(self.sequencers):018X}"

    def read(self, bucket: str, key: str) -> Any:
        return self.buckets.get(f"{bucket}/{key.removesuffix('.tflock')}")

    def deliver(self, event: dict[str, Any]) -> None:
        self.module.handle_lockfile_event(event, store=self.store, read=self.read)

    def deliver_batch(self, events: list[dict[str, Any]]) -> None:
        self.module.handle_lockfile_events(events, store=self.store, read=self.read)

    def lines(self) -> list[dict[str, Any]]:
        return logged_events(self.logs.getvalue())

    def acquire(self, *, at: datetime = NOW, key: str = KEY, **info: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Terraform writes the lockfile; returns (its LockInfo, the Object Created event S3 sends)."""
        body = lock_info(f"{BUCKET}/{key.removesuffix('.tflock')}", created=go_time(at), **info)
        etag = self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())["ETag"]
        event = s3_event("s3_lockfile_created.json", at=at, key=key, etag=etag.strip('"'))
        event["detail"]["object"]["sequencer"] = self.next_sequencer()
        event["id"] = f"created-{event['detail']['object']['sequencer']}"
        return body, event

    def release(self, *, at: datetime, key: str = KEY) -> dict[str, Any]:
        """Terraform deletes the lockfile; returns the Object Deleted event S3 sends."""
        self.s3.delete_object(Bucket=BUCKET, Key=key)
        return released(at, key, sequencer=self.next_sequencer())

    def acquisition_items(self) -> list[dict[str, Any]]:
        """The state table's acquisition records (not the lockfile's kept S3 events)."""
        items = self.dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
        return [item for item in items if item["sk"]["S"].startswith("ID#")]

    def acquisition_items_of(self, key: str) -> list[dict[str, Any]]:
        pk = state_pk(SCOPE, f"{BUCKET}/{key.removesuffix('.tflock')}")
        return self.dynamodb.query(
            TableName=STATE_TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :id)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":id": {"S": "ID#"}},
            ConsistentRead=True,
        )["Items"]

    def acquisition(self, lock_id: str) -> dict[str, Any]:
        [item] = [item for item in self.acquisition_items() if item["lock_id"]["S"] == lock_id]
        return item

    def releases(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == "lock_released"]

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


def released(at: datetime, key: str = KEY, *, sequencer: str | None = None) -> dict[str, Any]:
    event = s3_event("s3_lockfile_deleted.json", at=at, key=key, id=f"deleted-{at.timestamp()}-{key}")
    if sequencer is not None:
        event["detail"]["object"]["sequencer"] = sequencer
        event["id"] = f"deleted-{sequencer}"
    return event


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
    [item] = audit.acquisition_items()
    assert (item["pk"]["S"], item["sk"]["S"]) == (state_pk(SCOPE, LOCK_PATH), f"ID#{digest(info['ID'])}")
    assert item["acquired_at"]["S"] == NOW.isoformat()
    assert item["acquired_seq"]["S"] == event["id"]
    # The create is kept by its sequencer, with the body read, in the lock's partition: deletions are matched to it.
    [kept] = [i for i in dynamodb.scan(TableName=STATE_TABLE)["Items"] if i["sk"]["S"].startswith("S3#")]
    assert kept["pk"]["S"] == item["pk"]["S"]
    assert kept["sk"]["S"] == "S3#" + str(sequencer_position(event["detail"]["object"]["sequencer"]))
    assert (kept["kind"]["S"], json.loads(kept["body"]["S"])) == ("created", info)


def test_deleted_lockfile_is_logged_as_lock_released_held_from_the_recorded_server_time(audit):
    info, event = audit.acquire()
    audit.deliver(event)

    audit.deliver(audit.release(at=NOW + timedelta(seconds=42)))

    _, release = audit.lines()
    assert release["event"] == "lock_released"
    assert (release["lock_path"], release["lock_id"]) == (LOCK_PATH, info["ID"])
    assert (release["who"], release["operation"]) == (info["Who"], "OperationTypeApply")
    assert release["held_seconds"] == 42
    assert release["released_by"] == "terraform"
    assert release["server_time"] == (NOW + timedelta(seconds=42)).isoformat()
    assert audit.store.open_acquisitions(SCOPE, LOCK_PATH) == []


def test_deletion_after_a_reap_record_is_released_by_the_reaper(audit):
    _, event = audit.acquire()
    audit.deliver(event)
    lock = audit.lock()
    audit.store.begin_reap(lock, NOW + timedelta(minutes=10), ["past reap_after"])
    audit.store.end_reap(lock, "reaped", NOW + timedelta(minutes=10), None)

    audit.deliver(audit.release(at=NOW + timedelta(minutes=10)))

    release = audit.lines()[-1]
    assert (release["event"], release["released_by"]) == ("lock_released", "tflock-reaper")
    assert release["held_seconds"] == 600


def test_redelivered_events_record_and_log_nothing_twice(audit, dynamodb):
    _, created = audit.acquire()
    audit.deliver(created)
    audit.deliver(created)
    [item_before] = audit.acquisition_items()
    deleted = audit.release(at=NOW + timedelta(seconds=5))

    audit.deliver(deleted)
    items_released = dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]
    audit.deliver(deleted)
    # The object is gone by now: a late redelivery goes by what its first delivery read, and records nothing.
    audit.deliver(created)

    assert [line["event"] for line in audit.lines()] == ["lock_acquired", "lock_released"]
    [item_released] = audit.acquisition_items()
    assert item_before["acquired_at"] == item_released["acquired_at"]
    assert dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"] == items_released


def test_a_second_acquisition_is_released_on_its_own(audit):
    first, created = audit.acquire()
    audit.deliver(created)
    audit.deliver(audit.release(at=NOW + timedelta(seconds=5)))
    second, created_again = audit.acquire(at=NOW + timedelta(minutes=30))
    audit.deliver(created_again)

    audit.deliver(audit.release(at=NOW + timedelta(minutes=31)))

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
    lock = classify_lockfile(audit.read(BUCKET, KEY), None)
    assert isinstance(lock, LockRecord)
    assert (lock.scope, lock.lock_path, lock.lock_id) == (SCOPE, LOCK_PATH, info["ID"])
    audit.store.record_released(lock, NOW + timedelta(seconds=9), "100000000000000000001")

    audit.deliver(audit.release(at=NOW + timedelta(seconds=10)))

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
    assert audit.acquisition_items() == []  # kept only as an acquisition not read: its deletion says "unknown"


def test_a_lockfile_gone_before_it_was_read_is_ignored(audit, dynamodb):
    audit.deliver(s3_event("s3_lockfile_created.json", at=NOW))

    [line] = audit.lines()
    assert line["event"] == "item_ignored"
    assert "gone before it could be read" in line["reason"]
    assert audit.acquisition_items() == []


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
    event = created if operation == "UpdateItem" else audit.release(at=NOW + timedelta(seconds=3))

    with pytest.raises(AwsAccessError, match="state table"):
        audit.deliver(event)


def test_lambda_handler_dispatches_eventbridge_events_and_reads_s3_itself(handler, s3, dynamodb, monkeypatch):
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415
    from tflock_reaper.entrypoints.stream import default_store  # noqa: PLC0415
    from tflock_reaper.entrypoints.wiring import default_clients  # noqa: PLC0415

    module, logs = handler
    event = load("s3_lockfile_created.json")
    body = lock_info(LOCK_PATH, created=event["time"])
    etag = s3.put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(body).encode())["ETag"]
    event["detail"]["object"]["etag"] = etag.strip('"')
    monkeypatch.setenv("LOCK_TABLE_NAME", "tf-locks")
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    caches: list[Any] = [get_settings, default_store, default_clients]
    for cache in caches:
        cache.cache_clear()
    try:
        assert module.lambda_handler(event, FakeLambdaContext()) is None
    finally:
        for cache in caches:
            cache.cache_clear()

    [line] = logged_events(logs.getvalue())
    assert (line["event"], line["lock_id"]) == ("lock_acquired", body["ID"])
    assert line["server_time"] == datetime.fromisoformat(event["time"]).isoformat()


# -- out of order: S3 events are not delivered in order, and may be delivered twice ----------------------------
class TwoAcquisitions:
    """X acquired and released, then Y acquired: in S3's order create X, delete X, create Y. X's create was
    handled while its lockfile was there (so X's lock ID is known); the other events are handed out by the test."""

    def __init__(self, audit: Audit) -> None:
        self.x, self.create_x = audit.acquire(at=NOW)
        audit.deliver(self.create_x)
        self.delete_x = audit.release(at=NOW + timedelta(seconds=40))
        self.y, self.create_y = audit.acquire(at=NOW + timedelta(seconds=45))


def assert_x_released_and_y_open(audit: Audit, case: TwoAcquisitions) -> None:
    x_item, y_item = audit.acquisition(case.x["ID"]), audit.acquisition(case.y["ID"])
    assert x_item["released_at"]["S"] == (NOW + timedelta(seconds=40)).isoformat()
    assert "released_at" not in y_item
    [release] = audit.releases()
    assert (release["lock_id"], release["held_seconds"]) == (case.x["ID"], 40)
    assert release["server_time"] == (NOW + timedelta(seconds=40)).isoformat()
    assert_never_released_before_acquired(audit)


def assert_never_released_before_acquired(audit: Audit) -> None:
    acquired = {line["lock_id"]: line["server_time"] for line in audit.lines() if line["event"] == "lock_acquired"}
    for release in audit.releases():
        if release.get("lock_id") is not None:
            assert release["held_seconds"] >= 0
            assert release["server_time"] >= acquired[release["lock_id"]]


def test_a_release_delivered_after_the_next_acquisition_releases_its_own_acquisition(audit):
    # The repro: create X, create Y, delete X. The newest open acquisition (Y) was taken for the released one.
    case = TwoAcquisitions(audit)

    audit.deliver(case.create_y)
    audit.deliver(case.delete_x)

    assert_x_released_and_y_open(audit, case)


def test_a_release_delivered_before_the_next_acquisition_in_another_batch(audit):
    case = TwoAcquisitions(audit)

    audit.deliver_batch([case.delete_x])
    audit.deliver_batch([case.create_y])

    assert_x_released_and_y_open(audit, case)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_events_shuffled_in_one_batch_are_recorded_in_s3s_order(audit, order):
    # X's create is delivered a second time in the batch (S3 and EventBridge may deliver an event twice).
    case = TwoAcquisitions(audit)
    events = [case.delete_x, case.create_y, case.create_x]

    audit.deliver_batch([events[i] for i in order])

    assert_x_released_and_y_open(audit, case)


@pytest.mark.parametrize("twice", ["the same event", "another event id, the same sequencer"])
def test_a_duplicated_deletion_releases_once(audit, twice):
    case = TwoAcquisitions(audit)
    again = case.delete_x if twice == "the same event" else {**case.delete_x, "id": "sent-again-by-s3"}

    audit.deliver(case.create_y)
    audit.deliver(case.delete_x)
    audit.deliver(again)
    audit.deliver_batch([again, case.delete_x])

    assert_x_released_and_y_open(audit, case)


def test_when_the_released_acquisition_was_never_read_the_release_says_unknown(audit):
    # All three events arrive after Y took the lock: X's lockfile can no longer be read, so nobody knows its ID.
    _, create_x = audit.acquire(at=NOW)
    delete_x = audit.release(at=NOW + timedelta(seconds=40))
    y, create_y = audit.acquire(at=NOW + timedelta(seconds=45))

    audit.deliver_batch([create_y, delete_x, create_x])

    [y_item] = audit.acquisition_items()
    assert (y_item["lock_id"]["S"], "released_at" in y_item) == (y["ID"], False)
    [release] = audit.releases()
    assert (release.get("lock_id"), release["released_by"], release.get("held_seconds")) == (None, "unknown", None)
    assert "could not be read" in release["reason"]


def test_a_create_arriving_late_takes_over_the_deletion_first_matched_to_the_acquisition_before(audit):
    # True order: create X, delete X, create Z, delete Z. X's deletion comes last; Z's create arrives after Z's
    # deletion (Z's lockfile is gone by then: never read). Z's deletion was first taken for X's release.
    x, create_x = audit.acquire(at=NOW)
    audit.deliver(create_x)
    delete_x = audit.release(at=NOW + timedelta(seconds=10))
    _, create_z = audit.acquire(at=NOW + timedelta(seconds=20))
    delete_z = audit.release(at=NOW + timedelta(seconds=30))

    audit.deliver(delete_z)
    assert audit.acquisition(x["ID"])["released_at"]["S"] == (NOW + timedelta(seconds=30)).isoformat()
    audit.deliver(create_z)
    assert "released_at" not in audit.acquisition(x["ID"])
    audit.deliver(delete_x)

    assert audit.acquisition(x["ID"])["released_at"]["S"] == (NOW + timedelta(seconds=10)).isoformat()
    tentative, handed_over, final = audit.releases()
    assert (tentative["lock_id"], handed_over.get("lock_id"), final["lock_id"]) == (x["ID"], None, x["ID"])
    assert f"first taken for the release of {x['ID']}" in handed_over["reason"]
    assert final["held_seconds"] == 10
    assert_never_released_before_acquired(audit)


def test_an_earlier_deletion_arriving_late_replaces_a_later_one(audit):
    # True order: create X, delete X, create Z, delete Z, with Z's create lost (never delivered).
    x, create_x = audit.acquire(at=NOW)
    audit.deliver(create_x)
    delete_x = audit.release(at=NOW + timedelta(seconds=10))
    audit.acquire(at=NOW + timedelta(seconds=20))
    delete_z = audit.release(at=NOW + timedelta(seconds=30))

    audit.deliver(delete_z)
    audit.deliver(delete_x)

    assert audit.acquisition(x["ID"])["released_at"]["S"] == (NOW + timedelta(seconds=10)).isoformat()
    _, corrected = audit.releases()
    assert (corrected["lock_id"], corrected["held_seconds"]) == (x["ID"], 10)
    assert "came after it" in corrected["reason"]


# -- any order: a property over random histories and deliveries -------------------------------------------------
@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    """N acquisitions of one lockfile (the last one maybe still held), each operation some seconds after the
    previous (0: the same second), with sequencers that grow, some with trailing zeros (equal once right-padded)."""
    count = draw(st.integers(1, 4))
    held_at_end = draw(st.booleans())
    operations = count * 2 - (1 if held_at_end else 0)
    gaps = draw(st.lists(st.sampled_from([0, 1, 7, 60]), min_size=operations, max_size=operations))
    zeros = draw(st.lists(st.integers(0, 2), min_size=operations, max_size=operations))
    return {"count": count, "gaps": gaps, "zeros": zeros}


@settings(
    max_examples=30 if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci" else 500,  # as tests/fuzz.py
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],  # see the first lines
)
@given(history=histories(), data=st.data())
def test_any_delivery_order_records_the_true_history_or_says_it_cannot_tell(audit, history, data):
    # One moto for all examples: each example is another state (lockfile key), with a log of its own.
    audit.logs.seek(0)
    audit.logs.truncate()
    audit.sequencers = itertools.count(FIRST_SEQUENCER)  # sequencers are per key: a replay sees the same ones
    key = f"property/{next(_EXAMPLES)}/terraform.tfstate.tflock"
    truth = _play(audit, history, data, key)

    # Every acquisition whose lockfile was read is recorded, released exactly by its own deletion, if any.
    items = {item["lock_id"]["S"]: item for item in audit.acquisition_items_of(key)}
    assert set(items) == {a["id"] for a in truth if a["read"]}
    final_release: dict[str, dict[str, Any]] = {}
    for release in audit.releases():
        if release.get("lock_id") is not None:
            final_release[release["lock_id"]] = release
    for acquisition in (a for a in truth if a["read"]):
        item = items[acquisition["id"]]
        assert item["acquired_at"]["S"] == acquisition["acquired"].isoformat()
        if acquisition["released"] is None:
            assert "released_at" not in item
            assert acquisition["id"] not in final_release
            continue
        assert item["released_at"]["S"] == acquisition["released"].isoformat()
        assert item["released_position"]["S"] == sequencer_position(acquisition["release_sequencer"])
        last = final_release[acquisition["id"]]  # the log's last word on it is the true release
        assert last["server_time"] == acquisition["released"].isoformat()
        assert last["held_seconds"] == (acquisition["released"] - acquisition["acquired"]).total_seconds()
    # An acquisition never read is never said to be released by another's deletion.
    assert set(final_release) <= {a["id"] for a in truth if a["read"]}
    assert_never_released_before_acquired(audit)


_EXAMPLES = itertools.count()


def _play(audit: Audit, history: dict[str, Any], data: st.DataObject, key: str) -> list[dict[str, Any]]:
    """Run the history in S3 and deliver its events as it goes: in random batches, in random order, some twice.
    Returns the truth: each acquisition's ID, server times, its deletion's sequencer, and whether its lockfile
    was there to be read when its create event was handled."""
    truth: list[dict[str, Any]] = []
    pending: list[tuple[int, dict[str, Any], bool]] = []  # (acquisition, event, to be delivered again)
    current: int | None = None  # the acquisition whose lockfile is in S3
    at = NOW
    operations = list(zip(history["gaps"], history["zeros"], strict=True))

    def deliver_some() -> None:
        order = data.draw(st.permutations(range(len(pending))))
        chosen = order[: data.draw(st.integers(1, len(pending)))]
        batch = [pending[i] for i in chosen]
        for i in sorted(chosen, reverse=True):
            acquisition, event, again = pending.pop(i)
            if again:
                pending.append((acquisition, event, False))
        for acquisition, event, _ in batch:
            if event["detail-type"] == "Object Created" and acquisition == current:
                truth[acquisition]["read"] = True
        audit.deliver_batch([event for _, event, _ in batch])

    for index, (gap, zeros) in enumerate(operations):
        while pending and data.draw(st.booleans()):  # deliver some of what S3 sent so far, or go on
            deliver_some()
        at += timedelta(seconds=gap)
        # The sequencer is S3's next, sometimes with trailing zeros: the same value once right-padded.
        sequencer = audit.next_sequencer() + "0" * zeros
        if index % 2 == 0:
            info, event = audit.acquire(at=at, key=key)
            event["detail"]["object"]["sequencer"] = sequencer
            event["id"] = f"created-{sequencer}"
            current = len(truth)
            truth.append({"id": info["ID"], "acquired": at, "released": None, "release_sequencer": None, "read": False})
        else:
            event = audit.release(at=at, key=key)
            event["detail"]["object"]["sequencer"] = sequencer
            event["id"] = f"deleted-{sequencer}"
            truth[-1] |= {"released": at, "release_sequencer": sequencer}
            current = None
        pending.append((len(truth) - 1, event, data.draw(st.booleans())))  # S3 may send an event twice
    while pending:
        deliver_some()
    return truth
