"""The history in the state table (moto and dynalite): each acquisition recorded by the stream function is read back
per time range through the history-by-day index and per state through its partition, with who released it, and kept
for the retention after its release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from factories import NOW, lock_item
from tables import STATE_TABLE, table_items
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.records import TTL_PRINCIPAL

TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks"


@pytest.fixture
def dynamodb(any_dynamodb):
    """Every test here runs on moto and on dynalite (DynamoDB's real key limits)."""
    return any_dynamodb


def _lock(path: str, **info: object) -> LockRecord:
    lock = classify_item(lock_item(path, **info), NOW, table="tf-locks", table_arn=TABLE_ARN)
    assert isinstance(lock, LockRecord)
    return lock


def test_the_history_of_a_time_range_is_read_per_day_with_who_released_each_lock(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    day = NOW.replace(hour=0, minute=0)
    plain, ttl, reaped, held = (
        _lock("tf-state/a.tfstate", operation="OperationTypePlan", who="alice@laptop"),
        _lock("tf-state/b.tfstate"),
        _lock("tf-state/c.tfstate"),
        _lock("tf-state/d.tfstate"),
    )
    early = _lock("tf-state/early.tfstate")
    store.record_acquired(early, day - timedelta(days=3), "1")
    store.record_acquired(plain, day - timedelta(days=2, hours=-23, minutes=-59), "2")  # 23:59 two days ago
    store.record_released(plain, day - timedelta(days=1) + timedelta(minutes=9), "3")
    store.record_acquired(ttl, day - timedelta(days=1), "4")
    store.record_released(ttl, day - timedelta(hours=20), "5", principal=TTL_PRINCIPAL)
    store.record_acquired(reaped, day + timedelta(hours=1), "6")
    store.begin_reap(reaped, day + timedelta(hours=4), ["past reap_after"], "sweep")
    # The stream delivers the release before the sweeper records the reap's outcome.
    store.record_released(reaped, day + timedelta(hours=4, seconds=1), "7")
    store.end_reap(reaped, "reaped", day + timedelta(hours=4, seconds=2), None)
    store.record_acquired(held, day + timedelta(hours=2), "8")

    records = store.history(day - timedelta(days=2), NOW)

    assert [r.lock_path for r in records] == [
        "tf-state/a.tfstate",
        "tf-state/b.tfstate",
        "tf-state/c.tfstate",
        "tf-state/d.tfstate",
    ]
    a, b, c, d = records
    assert (a.who, a.operation, a.released_by) == ("alice@laptop", "OperationTypePlan", "terraform")
    assert a.hold(NOW) == timedelta(minutes=10)
    assert (b.released_by, c.released_by, c.reaped_by, c.reap_status) == ("ttl", "tflock-reaper", "sweep", "reaped")
    assert d.held
    assert d.released_by is None
    assert {r.scope for r in records} == {TABLE_ARN}
    assert {r.table for r in records} == {"tf-locks"}


def test_one_states_history_is_its_own_partition(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    lock = _lock("tf-state/net.tfstate")
    again = _lock("tf-state/net.tfstate")
    other = _lock("tf-state/other.tfstate")
    for n, (each, at) in enumerate(((lock, NOW - timedelta(days=5)), (again, NOW), (other, NOW))):
        store.record_acquired(each, at, str(n))
    store.record_released(lock, NOW - timedelta(days=5) + timedelta(minutes=3), "9")
    records = store.state_history(TABLE_ARN, "tf-state/net.tfstate")
    assert [(r.lock_id, r.held) for r in records] == [(lock.lock_id, False), (again.lock_id, True)]


def test_a_released_acquisition_is_kept_for_the_retention_after_its_release(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE, history_retention=timedelta(days=7))
    lock = _lock("tf-state/kept.tfstate")
    store.record_acquired(lock, NOW, "1")
    released = NOW + timedelta(hours=2)
    store.record_released(lock, released, "2")
    (item,) = table_items(dynamodb, STATE_TABLE)
    assert int(item["expires_at"]["N"]) == int((released + timedelta(days=7)).timestamp())
    assert item["history_day"] == {"S": NOW.date().isoformat()}


def test_the_first_warning_and_the_first_blocked_reap_are_kept(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    lock = _lock("tf-state/stuck.tfstate")
    store.record_acquired(lock, NOW - timedelta(hours=5), "1")
    store.observe([lock], NOW)
    store.settle([lock], NOW, [lock])
    store.observe([lock], NOW + timedelta(minutes=1))
    store.settle([], NOW + timedelta(minutes=1), [lock])
    [record] = store.history(NOW - timedelta(days=1), NOW + timedelta(hours=1))
    assert (record.warned_at, record.blocked_at) == (NOW, NOW)
    assert record.stale


def test_a_reap_by_hand_is_recorded_as_such(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    lock = _lock("tf-state/forced.tfstate")
    store.record_acquired(lock, NOW - timedelta(hours=1), "1")
    store.begin_reap(lock, NOW, ["released by hand"], "unlock by ops@laptop")
    store.end_reap(lock, "reaped", NOW, None)
    release = store.record_released(lock, NOW + timedelta(seconds=1), "2")
    assert release.by_hand("tflock-reaper")
    [record] = store.history(NOW - timedelta(days=1), NOW + timedelta(hours=1))
    assert record.by_hand
    assert record.reaped_by == "unlock by ops@laptop"


def test_hostile_paths_and_ids_are_recorded_and_read_back(dynamodb):
    """The index's keys are a date and a time: a 2,000-byte path or a 1,100-byte ID never reaches a key."""
    store = StateTable(dynamodb, STATE_TABLE)
    path = "tf-state/" + "p" * 2000
    lock = _lock(path, lock_id="i" * 1100, who="<script>alert(1)</script>")
    store.record_acquired(lock, NOW, "1")
    [record] = store.history(NOW - timedelta(hours=1), NOW)
    assert (record.lock_path, record.lock_id, record.who) == (path, "i" * 1100, "<script>alert(1)</script>")


def test_a_short_retention_never_shortens_a_reap_record(dynamodb):
    """Reap records (with the deleted item) stay 90 days after the reap, whatever HistoryRetentionDays says."""
    store = StateTable(dynamodb, STATE_TABLE, history_retention=timedelta(days=7))
    lock = _lock("tf-state/reaped.tfstate")
    store.record_acquired(lock, NOW - timedelta(hours=3), "1")
    store.begin_reap(lock, NOW, ["past reap_after"], "sweep")
    store.record_released(lock, NOW + timedelta(seconds=1), "2")
    store.end_reap(lock, "reaped", NOW + timedelta(seconds=2), None)
    (item,) = table_items(dynamodb, STATE_TABLE)
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(days=90)).timestamp())
    assert item["reaped_item"]["M"] == lock.item
