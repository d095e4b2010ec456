"""Given stream records of lock-table changes, the audit says what happened, once, with server time."""

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from factories import NOW, digest_item, lock_item
from fakes import MemoryAuditStore
from streams import stream_record
from tflock_reaper.domain.audit import EventKind, UnreadableRecordError, parse_record
from tflock_reaper.domain.lockfile_audit import batch_order, parse_lockfile_event, sequencer_position
from tflock_reaper.services.dispatch import ChannelResult, DispatchResult, SendStatus
from tflock_reaper.services.recorder import ResolvedNotSentError, audit_stream_record, record_change

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


# -- lockfiles: S3 events in S3's order (sequencer) ---------------------------------------------------------------
EVENTS = Path(__file__).parents[2] / "events"


def _s3_event(name: str, key: str, sequencer: str) -> dict:
    event = json.loads((EVENTS / name).read_text())
    event["detail"]["object"] |= {"key": key, "sequencer": sequencer}
    return event


def test_the_sequencer_of_a_lockfile_event_is_parsed():
    for name in ("s3_lockfile_created.json", "s3_lockfile_deleted.json"):
        event = json.loads((EVENTS / name).read_text())
        assert parse_lockfile_event(event).sequencer == event["detail"]["object"]["sequencer"]


@pytest.mark.parametrize(
    ("earlier", "later"),
    [
        ("00617F08299329D189", "00617F0837B476E463"),  # the fixtures' create and delete
        ("0A", "0B0"),
        ("0A01", "0B"),  # right-padded: 0A01 < 0B00 (left-padded, 0A01 > 000B: the other way round)
        ("0a", "0B"),  # hexadecimal: case does not matter
    ],
)
def test_sequencers_compare_right_padded_with_zeros_then_lexicographically(earlier, later):
    first, second = sequencer_position(earlier), sequencer_position(later)
    assert first is not None
    assert second is not None
    assert first < second


def test_sequencers_equal_once_right_padded_are_the_same_position():
    assert sequencer_position("0A") == sequencer_position("0A00") == sequencer_position("0a0")


@pytest.mark.parametrize("sequencer", [None, "", "not-hex", "0x1F", "F" * 65])
def test_a_missing_or_unusable_sequencer_has_no_position(sequencer):
    assert sequencer_position(sequencer) is None


def test_a_batch_of_lockfile_events_is_ordered_per_object_by_sequencer():
    events = [
        _s3_event("s3_lockfile_deleted.json", "b.tflock", "00617F08299329D18A"),
        _s3_event("s3_lockfile_created.json", "a.tflock", "00617F08299329D190"),
        _s3_event("s3_lockfile_created.json", "b.tflock", "00617F08299329D189"),
        _s3_event("s3_lockfile_deleted.json", "a.tflock", "00617F0829"),  # shorter: right-padded, the earliest
    ]

    ordered = sorted((parse_lockfile_event(event) for event in events), key=batch_order)

    assert [(c.key, c.sequencer) for c in ordered] == [
        ("a.tflock", "00617F0829"),
        ("a.tflock", "00617F08299329D190"),
        ("b.tflock", "00617F08299329D189"),
        ("b.tflock", "00617F08299329D18A"),
    ]


# -- what is retried -------------------------------------------------------------------------------------------
class RecordingLog:
    """The audit log of a test: what the function would log and count."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.unreadable_reasons: list[str] = []
        self.counts: dict[str, int] = {}

    def publish(self, event: Any) -> None:
        self.events.append(event)

    def unreadable(self, reason: str) -> None:
        self.unreadable_reasons.append(reason)

    def count(self, metric: str, value: int) -> None:
        self.counts[metric] = self.counts.get(metric, 0) + value


class AlertedStore(MemoryAuditStore):
    """Every lock was alerted about: its release carries the channels' snapshot."""

    def record_released(self, *args: Any, **kwargs: Any) -> Any:
        return replace(super().record_released(*args, **kwargs), alert_channels='{"team": {"type": "slack"}}')


def _not_announced(notification: Any, channels: str) -> Any:
    raise AssertionError("nothing to announce")


def test_an_unreadable_record_is_logged_and_counted_and_never_raised():
    log = RecordingLog()
    audit_stream_record({"eventName": "INSERT"}, MemoryAuditStore(), _not_announced, log)
    assert log.events == []
    [reason] = log.unreadable_reasons
    assert "not a DynamoDB stream record" in reason


@pytest.mark.parametrize(
    ("failure", "retried"),
    [("retryable", True), ("not retryable", False), ("no answer", False)],
)
def test_a_resolved_not_sent_fails_its_record_only_when_a_retry_can_send_it(failure, retried):
    def announce(notification: Any, channels: str) -> DispatchResult:
        if failure == "no answer":
            raise ValueError("unreadable channel settings")
        result = ChannelResult("team", SendStatus.FAILED, "HTTP 503", retryable=failure == "retryable")
        return DispatchResult(notification.dedup_key, (result,))

    store, log = AlertedStore(), RecordingLog()
    lock = lock_item(PATH)
    audit_stream_record(stream_record("INSERT", new=lock, at=NOW), store, _not_announced, log)
    release = stream_record("REMOVE", old=lock, at=NOW + timedelta(minutes=5))
    if retried:
        with pytest.raises(ResolvedNotSentError, match="not sent on team: will retry"):
            audit_stream_record(release, store, announce, log)
    else:
        audit_stream_record(release, store, announce, log)

    assert [e.event for e in log.events] == [EventKind.LOCK_ACQUIRED, EventKind.LOCK_RELEASED]
    sent = {} if failure == "no answer" else {"NotificationsSent": 0}
    assert log.counts == sent | {"NotificationFailures": 1}


@pytest.mark.parametrize(
    ("event", "item", "requested"),
    [
        ("INSERT", {"LockID": {"S": "tf-state/a.tfstate"}, "Info": {"S": "{not json"}}, True),  # unreadable lock
        ("REMOVE", {"LockID": {"S": "tf-state/a.tfstate"}, "Info": {"S": "{not json"}}, False),  # gone: nothing to see
        ("INSERT", {"LockID": {"S": "tf-state/a.tfstate"}, "Owner": {"S": "x"}}, False),  # not a lock: ignored
        ("INSERT", lock_item("tf-state/a.tfstate"), False),  # an acquisition: recorded, read incrementally
    ],
)
def test_an_unreadable_lock_written_asks_for_a_full_sweep(event, item, requested):
    store = MemoryAuditStore()
    record = stream_record(
        event, new=item if event != "REMOVE" else None, old=item if event == "REMOVE" else None, at=NOW
    )
    record_change(parse_record(record), store)
    expected = [
        (
            "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks",
            "an unreadable lock was written at tf-state/a.tfstate",
        )
    ]
    assert store.full_requests == (expected if requested else [])
