"""Given stream records of lock-table changes, the audit says what happened, once, with server time."""

import json
from datetime import timedelta

import pytest
from factories import NOW, digest_item, lock_item
from fakes import MemoryAuditStore
from streams import stream_record
from tflock_reaper.audit import EventKind, UnreadableRecordError, parse_record
from tflock_reaper.recorder import record_change

PATH = "tf-state/dev/network/terraform.tfstate"


def _record(record, store):
    recorded = record_change(parse_record(record), store)
    return None if recorded is None else recorded.event


def test_acquire_then_release_gives_hold_time_from_server_time():
    store = MemoryAuditStore()
    lock = lock_item(PATH, created=NOW - timedelta(seconds=30))  # the holder stamped Created before retrying
    acquired = _record(stream_record("INSERT", new=lock, at=NOW), store)
    released = _record(stream_record("REMOVE", old=lock, at=NOW + timedelta(seconds=95)), store)
    assert acquired.event is EventKind.LOCK_ACQUIRED
    assert acquired.server_time == NOW
    assert released.event is EventKind.LOCK_RELEASED
    assert released.held_seconds == 95
    assert released.released_by == "terraform"
    fields = released.log_fields()
    assert {"event", "lock_path", "lock_id", "who", "operation", "lock_created", "server_time"} <= set(fields)
    assert fields["released_by"] == "terraform"


def test_release_without_a_recorded_acquisition_falls_back_to_created():
    store = MemoryAuditStore()
    lock = lock_item(PATH, created=NOW - timedelta(minutes=10))
    released = _record(stream_record("REMOVE", old=lock, at=NOW), store)
    assert released.held_seconds == 600


@pytest.mark.parametrize(
    ("status", "started", "expected"),
    [
        ("reaped", NOW + timedelta(hours=3), "tflock-reaper"),
        # The REMOVE can reach the stream function before the sweeper writes "reaped".
        ("pending", NOW + timedelta(hours=3), "tflock-reaper"),
        # An intent left "pending" by a crash long before does not claim a later ordinary release.
        ("pending", NOW + timedelta(minutes=20), "terraform"),
        ("changed", NOW + timedelta(hours=3), "terraform"),
    ],
)
def test_release_by_the_reaper_is_known_from_its_reap_record(status, started, expected):
    store = MemoryAuditStore()
    lock = lock_item(PATH)
    _record(stream_record("INSERT", new=lock, at=NOW), store)
    store.reap_status[(PATH, json.loads(lock["Info"]["S"])["ID"])] = (status, started)  # the sweeper's record
    released = _record(stream_record("REMOVE", old=lock, at=NOW + timedelta(hours=3)), store)
    assert released.released_by == expected


def test_release_by_dynamodb_ttl_is_known_from_the_user_identity():
    released = _record(stream_record("REMOVE", old=lock_item(PATH), at=NOW, ttl=True), MemoryAuditStore())
    assert released.released_by == "ttl"


def test_release_without_old_image_is_unknown():
    record = stream_record("REMOVE", old=lock_item(PATH), at=NOW)
    del record["dynamodb"]["OldImage"]
    released = _record(record, MemoryAuditStore())
    assert released.event is EventKind.LOCK_RELEASED
    assert released.released_by == "unknown"
    assert released.held_seconds is None


@pytest.mark.parametrize("event_name", ["INSERT", "MODIFY"])
def test_digest_writes_are_state_persisted_for_the_state_path(event_name):
    event = _record(stream_record(event_name, new=digest_item(PATH), at=NOW), MemoryAuditStore())
    assert event.event is EventKind.STATE_PERSISTED
    assert event.lock_path == PATH


def test_an_older_digest_write_delivered_late_is_not_recorded_again():
    store = MemoryAuditStore()
    assert _record(stream_record("MODIFY", new=digest_item(PATH), at=NOW), store)
    assert _record(stream_record("MODIFY", new=digest_item(PATH), at=NOW - timedelta(seconds=20)), store) is None


def test_redelivery_records_nothing_twice():
    store = MemoryAuditStore()
    records = [
        stream_record("INSERT", new=lock_item(PATH), at=NOW),
        stream_record("MODIFY", new=digest_item(PATH), at=NOW),
    ]
    first = [_record(r, store) for r in records]
    second = [_record(r, store) for r in records]
    assert all(first)
    assert second == [None, None]


@pytest.mark.parametrize(
    ("record_kwargs", "reason"),
    [
        ({"new": {"LockID": {"S": "tf-state/x"}, "Info": {"S": "nope"}}}, "not valid JSON"),
        ({"new": {"LockID": {"S": "tf-state/x"}, "Owner": {"S": "me"}}}, "unexpected attributes"),
        ({"new": {"LockID": {"S": "tf-state/x"}}}, "no Info attribute"),
    ],
)
def test_foreign_items_are_ignored_with_their_reason(record_kwargs, reason):
    event = _record(stream_record("INSERT", at=NOW, **record_kwargs), MemoryAuditStore())
    assert event.event is EventKind.ITEM_IGNORED
    assert reason in event.reason


def test_a_lock_modified_in_place_is_ignored_as_surprising():
    event = _record(stream_record("MODIFY", new=lock_item(PATH), at=NOW), MemoryAuditStore())
    assert event.event is EventKind.ITEM_IGNORED
    assert "modified in place" in event.reason


def test_a_skewed_created_is_still_recorded_by_the_audit():
    lock = lock_item(PATH, created=NOW + timedelta(hours=2))
    event = _record(stream_record("INSERT", new=lock, at=NOW), MemoryAuditStore())
    assert event.event is EventKind.LOCK_ACQUIRED


@pytest.mark.parametrize(
    "record",
    [
        {"eventName": "INSERT"},
        {"eventName": "UPSERT", "dynamodb": {}},
        {"eventName": "INSERT", "dynamodb": {"Keys": {}, "SequenceNumber": "1"}},
    ],
)
def test_records_not_shaped_like_dynamodb_cannot_be_parsed(record):
    with pytest.raises(UnreadableRecordError, match="not a DynamoDB stream record"):
        parse_record(record)
