"""The reaper's state table against moto: first-seen survives sweeps; reaps keep the full item."""

from datetime import timedelta

from factories import NOW, lock_item
from tables import STATE_TABLE, table_items
from tflock_reaper.dal.state_table import StateTable
from tflock_reaper.lock import LockRecord, classify_item
from tflock_reaper.state import lock_key


def _locks(n: int) -> list[LockRecord]:
    out = []
    for i in range(n):
        lock = classify_item(lock_item(f"tf-state/s{i}.tfstate"), NOW)
        assert isinstance(lock, LockRecord)
        out.append(lock)
    return out


def test_first_seen_is_recorded_once_and_kept(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(3)
    first = store.observe(locks, NOW)
    later = store.observe(locks, NOW + timedelta(hours=1))
    for lock in locks:
        assert first[lock_key(lock)].first_seen == NOW
        assert later[lock_key(lock)].first_seen == NOW


def test_observe_handles_more_locks_than_one_batch_get(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    locks = _locks(130)
    store.observe(locks, NOW)
    states = store.observe(locks, NOW + timedelta(minutes=5))
    assert len(states) == 130
    assert {s.first_seen for s in states.values()} == {NOW}


def test_observation_ttl_is_refreshed_when_close_to_expiry(dynamodb):
    store = StateTable(dynamodb, STATE_TABLE)
    (lock,) = _locks(1)
    store.observe([lock], NOW)
    (item,) = table_items(dynamodb, STATE_TABLE)
    store.observe([lock], NOW + timedelta(days=25))
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
    store.mark_warned(lock, NOW)
    store.mark_warned(lock, NOW + timedelta(hours=1))
    assert store.observe([lock], NOW)[lock_key(lock)].warned_at == NOW
