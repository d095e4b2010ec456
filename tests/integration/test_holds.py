"""Holds from the Slack app in the state table (moto and dynalite): a snoozed or claimed acquisition is left by an
enforcing sweep that would otherwise reap it, a snooze ends when it says, a new acquisition of the same state is not
held, and concurrent presses are all kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from factories import NOW, lock_item
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.holds import Hold, HoldKind
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.memory import lock_key
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import sweep

POLICY = parse_policy(
    "mode: enforce\ndefaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true, "
    "holder: {assume: gone}}\n"
)
PATH = "tf-state/prod/app.tfstate"


@pytest.fixture
def dynamodb(any_dynamodb):
    return any_dynamodb


def _held(dynamodb, path: str = PATH, **info: object) -> LockRecord:
    item = lock_item(path, created=NOW - timedelta(hours=3), **info)
    put(dynamodb, item)
    table = LockTable(dynamodb, LOCK_TABLE)
    lock = classify_item(item, NOW, table=table.name, table_arn=table.arn)
    assert isinstance(lock, LockRecord)
    return lock


def _sweep(dynamodb, at=NOW):
    return sweep(
        lock_table=LockTable(dynamodb, LOCK_TABLE),
        state=StateTable(dynamodb, STATE_TABLE),
        policy=POLICY,
        mode="enforce",
        clock=lambda: at,
    )


@pytest.mark.parametrize(
    ("hold", "why"),
    [
        (Hold(HoldKind.SNOOZE, "alice (U1)", NOW, NOW + timedelta(hours=1)), "snoozed by alice (U1) until"),
        (Hold(HoldKind.CLAIM, "bob (U2)", NOW), "claimed by bob (U2) (It's mine)"),
    ],
)
def test_an_enforcing_sweep_leaves_a_held_acquisition(dynamodb, hold: Hold, why: str):
    lock = _held(dynamodb)
    StateTable(dynamodb, STATE_TABLE).record_hold(lock.scope, lock.lock_path, lock.lock_id, hold)
    [entry] = _sweep(dynamodb).locks
    assert entry.outcome.value == "blocked"
    assert any(why in reason for reason in entry.reasons), entry.reasons
    assert [i["LockID"]["S"] for i in table_items(dynamodb)] == [PATH]


def test_a_snooze_ends_and_the_next_sweep_reaps(dynamodb):
    lock = _held(dynamodb)
    snooze = Hold(HoldKind.SNOOZE, "alice (U1)", NOW, NOW + timedelta(hours=1))
    StateTable(dynamodb, STATE_TABLE).record_hold(lock.scope, lock.lock_path, lock.lock_id, snooze)
    assert _sweep(dynamodb, NOW + timedelta(minutes=59)).locks[0].outcome.value == "blocked"
    assert _sweep(dynamodb, NOW + timedelta(hours=1)).locks[0].outcome.value == "reaped"
    assert table_items(dynamodb) == []


def test_a_hold_is_about_one_acquisition_not_the_state(dynamodb):
    old = _held(dynamodb)
    StateTable(dynamodb, STATE_TABLE).record_hold(old.scope, PATH, old.lock_id, Hold(HoldKind.CLAIM, "bob", NOW))
    again = _held(dynamodb)  # the same state, re-acquired under a new ID
    assert again.lock_id != old.lock_id
    [entry] = _sweep(dynamodb).locks
    assert entry.outcome.value == "reaped"


def test_concurrent_presses_are_all_kept(dynamodb, request):
    """At once on dynalite, whose conditional writes are atomic as DynamoDB's; one after the other on moto, whose
    in-process backend does not make a conditional write atomic across threads."""
    workers = 4 if "dynalite" in request.node.name else 1
    locks = [_held(dynamodb, f"tf-state/s{n}.tfstate") for n in range(8)]
    store = StateTable(dynamodb, STATE_TABLE)

    def press(lock: LockRecord) -> None:
        StateTable(dynamodb, STATE_TABLE).record_hold(
            lock.scope, lock.lock_path, lock.lock_id, Hold(HoldKind.CLAIM, "x", NOW)
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(press, locks))
    states = store.observe(locks, NOW)
    assert all(states[lock_key(lock)].holds for lock in locks)


def test_hostile_paths_and_ids_are_held_by_digest(dynamodb):
    lock = _held(dynamodb, "tf-state/" + "p" * 2000, lock_id="i" * 1100)
    snooze = Hold(HoldKind.SNOOZE, "<!channel> (U1)", NOW, NOW + timedelta(hours=4))
    StateTable(dynamodb, STATE_TABLE).record_hold(lock.scope, lock.lock_path, lock.lock_id, snooze)
    [entry] = _sweep(dynamodb).locks
    assert entry.outcome.value == "blocked"
    assert entry.state.holds == (snooze,)


def test_a_buttons_keys_name_the_acquisition_in_words(dynamodb):
    from tflock_reaper.adapters.state_table import digest as key_digest  # noqa: PLC0415
    from tflock_reaper.adapters.state_table import state_pk  # noqa: PLC0415

    lock = _held(dynamodb, "tf-state/" + "p" * 2000, lock_id="i" * 1100)
    store = StateTable(dynamodb, STATE_TABLE)
    store.record_acquired(lock, NOW - timedelta(hours=3), "1")
    ref = store.acquisition_by_keys(state_pk(lock.scope, lock.lock_path), f"ID#{key_digest(lock.lock_id)}")
    assert ref is not None
    assert (ref.scope, ref.lock_path, ref.lock_id, ref.table, ref.released_at) == (
        lock.scope,
        lock.lock_path,
        lock.lock_id,
        LOCK_TABLE,
        None,
    )
    assert store.acquisition_by_keys(state_pk(lock.scope, lock.lock_path), "ID#" + "0" * 32) is None
