"""The reaper's state table against moto: first-seen survives sweeps; reaps keep the full item."""

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from factories import NOW, lock_item
from tables import STATE_TABLE, table_items
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.memory import lock_key


def _locks(n: int, bucket: str = "tf-state") -> list[LockRecord]:
    out = []
    for i in range(n):
        lock = classify_item(lock_item(f"{bucket}/s{i}.tfstate"), NOW)
        assert isinstance(lock, LockRecord)
        out.append(lock)
    return out


@pytest.fixture
def dynamodb(any_dynamodb):
    """Every test here runs on moto and on dynalite (DynamoDB's real key limits)."""
    return any_dynamodb


def test_first_seen_is_recorded_once_and_kept(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(3)
    first = store.observe(locks, NOW)
    store.settle([], NOW)
    later = store.observe(locks, NOW + timedelta(hours=1))
    for lock in locks:
        assert first[lock_key(lock)].first_seen == NOW
        assert later[lock_key(lock)].first_seen == NOW


def test_observe_handles_more_locks_than_one_batch_get(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(250)
    store.observe(locks, NOW)
    store.settle([], NOW)
    states = store.observe(locks, NOW + timedelta(minutes=5))
    assert len(states) == 250
    assert {s.first_seen for s in states.values()} == {NOW}


def test_observation_ttl_is_refreshed_when_close_to_expiry(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1)
    store.observe([lock], NOW)
    store.settle([], NOW)
    (item,) = table_items(dynamodb, STATE_TABLE)
    store.observe([lock], NOW + timedelta(days=25))
    store.settle([], NOW + timedelta(days=25))
    (refreshed,) = table_items(dynamodb, STATE_TABLE)
    assert int(refreshed["expires_at"]["N"]) > int(item["expires_at"]["N"])
    assert refreshed["first_seen"] == item["first_seen"]


def test_reap_record_keeps_the_full_item_and_outcome(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1)
    store.observe([lock], NOW)
    store.begin_reap(lock, NOW, ["past reap_after"])
    (pending,) = table_items(dynamodb, STATE_TABLE)
    assert pending["reap_status"] == {"S": "pending"}
    assert pending["reaped_item"] == {"M": lock.item}
    store.end_reap(lock, "reaped", NOW, lock.item)
    (done,) = table_items(dynamodb, STATE_TABLE)
    assert done["reap_status"] == {"S": "reaped"}
    assert int(done["expires_at"]["N"]) == int((NOW + timedelta(days=90)).timestamp())


def test_warning_time_is_kept_from_the_first_warning(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1)
    store.observe([lock], NOW)
    store.settle([lock], NOW)
    store.settle([lock], NOW + timedelta(hours=1))
    assert store.observe([lock], NOW)[lock_key(lock)].warned_at == NOW


def _count_updates(dynamodb) -> list[str]:
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    return calls


def test_observe_only_reads_and_settle_writes_once_per_new_lock_with_its_warning(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(3)
    calls = _count_updates(dynamodb)
    store.observe(locks, NOW)
    # The bucket's open observations, the locks not among them, then the table's holds (one record per table).
    assert calls == ["Query", "BatchGetItem", "GetItem"]
    assert table_items(dynamodb, STATE_TABLE) == []  # nothing written until the sweep settles

    calls.clear()
    store.settle([locks[0]], NOW)
    assert calls.count("UpdateItem") == 3  # first-seen and the warning of locks[0] in one write
    states = store.observe(locks, NOW + timedelta(minutes=5))
    assert states[lock_key(locks[0])].warned_at == NOW
    assert states[lock_key(locks[1])].warned_at is None
    assert {s.first_seen for s in states.values()} == {NOW}

    calls.clear()
    store.settle([locks[1]], NOW + timedelta(minutes=5))  # known lock, newly stale: its warning only
    assert calls == ["UpdateItem"]
    later = store.observe(locks, NOW + timedelta(minutes=10))
    assert later[lock_key(locks[1])].warned_at == NOW + timedelta(minutes=5)
    assert later[lock_key(locks[1])].first_seen == NOW


def test_settle_keeps_an_earlier_first_seen_written_by_an_overlapping_sweep(dynamodb):
    (lock,) = _locks(1)
    ours, theirs = StateTable(dynamodb, STATE_TABLE), StateTable(dynamodb, STATE_TABLE)
    ours.observe([lock], NOW + timedelta(minutes=1))
    theirs.observe([lock], NOW)
    theirs.settle([], NOW)
    ours.settle([], NOW + timedelta(minutes=1))
    assert ours.observe([lock], NOW + timedelta(minutes=2))[lock_key(lock)].first_seen == NOW


def test_settle_reports_failed_writes_after_attempting_every_one(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(4)
    store.observe(locks, NOW)
    failing = {"n": 0}

    def throttle_first(params, **_):
        failing["n"] += 1
        if failing["n"] == 1:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "boom"}}, "UpdateItem")

    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", throttle_first)
    with pytest.raises(AwsAccessError, match="1 of 4 observation writes failed"):
        store.settle([], NOW)
    assert len(table_items(dynamodb, STATE_TABLE)) == 3


def test_a_steady_sweep_reads_its_observations_with_one_query_per_lock_table_and_writes_nothing(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(150, "tf-state") + _locks(2, "other-state")
    store.observe(locks, NOW)
    store.settle([], NOW)
    calls = _count_updates(dynamodb)

    states = store.observe(locks, NOW + timedelta(minutes=5))
    store.settle([], NOW + timedelta(minutes=5))

    # The lock table's open set and its holds record: no BatchGetItem, no write.
    assert sorted(calls) == ["GetItem", "Query"]
    assert len(states) == 152
    assert {s.first_seen for s in states.values()} == {NOW}


def test_an_observation_missing_from_the_index_is_read_consistently_and_put_back(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1, "tf-state")
    store.observe([lock], NOW)
    store.settle([], NOW)
    # As if the index lagged, or the record predates the index (0.1's open_bucket): the item is there, not in the
    # index.
    dynamodb.update_item(
        TableName=STATE_TABLE,
        Key=_key_of(dynamodb, lock),
        UpdateExpression="SET open_bucket = :old REMOVE held_scope",
        ExpressionAttributeValues={":old": {"S": f"{lock.scope} tf-state"}},
    )

    state = store.observe([lock], NOW + timedelta(minutes=5))[lock_key(lock)]
    store.settle([], NOW + timedelta(minutes=5))

    assert state.first_seen == NOW
    (item,) = table_items(dynamodb, STATE_TABLE)
    assert item["held_scope"] == {"S": lock.scope}
    assert "open_bucket" not in item  # 0.1's index empties as records are written again
    assert item["first_seen"] == {"S": NOW.isoformat()}


def test_a_lock_gone_from_the_table_is_taken_out_of_the_index_and_its_record_kept(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    held, released = _locks(2, "tf-state")
    store.observe([held, released], NOW)
    store.settle([], NOW)

    store.observe([held], NOW + timedelta(minutes=5))
    store.settle([], NOW + timedelta(minutes=5))

    items = {i["lock_id"]["S"]: i for i in table_items(dynamodb, STATE_TABLE)}
    assert items[held.lock_id]["held_scope"] == {"S": held.scope}
    assert "held_scope" not in items[released.lock_id]
    assert items[released.lock_id]["first_seen"] == {"S": NOW.isoformat()}
    assert items[released.lock_id]["gone_at"] == {"S": (NOW + timedelta(minutes=5)).isoformat()}
    assert [h.lock_id for h in store.held(held.scope)] == [held.lock_id]


def test_a_release_recorded_from_the_stream_closes_the_observation(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1, "tf-state")
    store.observe([lock], NOW)
    store.settle([], NOW)
    assert [h.lock_id for h in store.held(lock.scope)] == [lock.lock_id]
    store.record_released(lock, NOW + timedelta(minutes=1), "1" * 21)
    (item,) = table_items(dynamodb, STATE_TABLE)
    assert "held_scope" not in item
    assert "released_at" in item
    assert store.held(lock.scope) == []


def _key_of(dynamodb, lock: LockRecord) -> dict:
    (item,) = (i for i in table_items(dynamodb, STATE_TABLE) if i["lock_id"]["S"] == lock.lock_id)
    return {"pk": item["pk"], "sk": item["sk"]}


def test_a_hostile_lock_id_and_path_are_observed_warned_reaped_and_released(dynamodb):
    """Issue 13.3: keys built from a 1,100-byte lock ID and a 2,048-byte LockID stay within DynamoDB's limits, on
    every read and write the sweep and the stream make (dynalite enforces the limits; moto does not)."""
    hostile = classify_item(
        lock_item("tf-state/" + "p" * (2048 - len("tf-state/")), lock_id="i" * 1100, created=NOW), NOW
    )
    assert isinstance(hostile, LockRecord)
    (normal,) = _locks(1)
    store = StateTable(dynamodb, STATE_TABLE)
    assert store.record_acquired(hostile, NOW, "1" * 21)
    store.observe([hostile, normal], NOW)
    store.settle([hostile, normal], NOW)
    states = store.observe([hostile, normal], NOW + timedelta(minutes=5))
    assert states[lock_key(hostile)].warned_at == NOW
    assert states[lock_key(hostile)].acquired_at == NOW
    store.begin_reap(hostile, NOW, ["past reap_after"])
    store.end_reap(hostile, "reaped", NOW, hostile.item)
    released = store.record_released(hostile, NOW, "2" * 21)
    assert released.reap_status == "reaped"
    (record,) = [i for i in table_items(dynamodb, STATE_TABLE) if i["lock_id"]["S"] == hostile.lock_id]
    assert record["lock_path"]["S"] == hostile.lock_path
    assert record["lock_scope"]["S"] == hostile.scope
