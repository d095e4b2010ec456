"""The lock-table adapter against moto: consistent scan, and a delete conditional on the exact Info."""

from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from factories import digest_item, lock_item
from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, put, table_items
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import MAX_SEGMENTS, SEGMENT_BYTES, LockTable, segments_for
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import sweep


def test_scan_reads_every_item_across_pages(dynamodb):
    items = [lock_item(f"tf-state/app{n}.tfstate") for n in range(30)]
    put(dynamodb, *items)
    table = LockTable(dynamodb, LOCK_TABLE)
    assert sorted(i["LockID"]["S"] for i in table.scan()) == sorted(i["LockID"]["S"] for i in items)


def test_delete_succeeds_only_for_the_exact_info_observed(dynamodb):
    item = lock_item("tf-state/app.tfstate")
    put(dynamodb, item, digest_item("tf-state/app.tfstate"))
    table = LockTable(dynamodb, LOCK_TABLE)
    result = table.delete_if_unchanged("tf-state/app.tfstate", item["Info"]["S"])
    assert result.deleted
    assert result.item == item
    assert table_items(dynamodb) == [digest_item("tf-state/app.tfstate")]


def test_delete_of_a_reacquired_lock_is_refused_and_the_new_lock_survives(dynamodb):
    old = lock_item("tf-state/app.tfstate")
    new = lock_item("tf-state/app.tfstate")
    put(dynamodb, new)
    result = LockTable(dynamodb, LOCK_TABLE).delete_if_unchanged("tf-state/app.tfstate", old["Info"]["S"])
    assert not result.deleted
    assert result.item == new
    assert table_items(dynamodb) == [new]


def test_delete_of_a_released_lock_is_refused(dynamodb):
    old = lock_item("tf-state/app.tfstate")
    result = LockTable(dynamodb, LOCK_TABLE).delete_if_unchanged("tf-state/app.tfstate", old["Info"]["S"])
    assert not result.deleted
    assert result.item is None


def test_a_single_character_difference_in_info_is_enough_to_refuse(dynamodb):
    item = lock_item("tf-state/app.tfstate")
    put(dynamodb, item)
    reserialised = item["Info"]["S"].replace('","', '", "', 1)
    result = LockTable(dynamodb, LOCK_TABLE).delete_if_unchanged("tf-state/app.tfstate", reserialised)
    assert not result.deleted
    assert table_items(dynamodb) == [item]


def test_missing_table_is_a_clear_access_error(dynamodb):
    with pytest.raises(AwsAccessError, match="cannot describe lock table 'absent': ResourceNotFoundException"):
        list(LockTable(dynamodb, "absent").scan())


def test_other_delete_failures_are_access_errors(dynamodb):
    with pytest.raises(AwsAccessError, match="cannot delete"):
        LockTable(dynamodb, "absent").delete_if_unchanged("tf-state/x", "{}")
    assert issubclass(AwsAccessError, Exception)
    assert not issubclass(AwsAccessError, ClientError)


@pytest.mark.parametrize("segments", [2, 5])
def test_parallel_segments_read_every_item_exactly_once(dynamodb, segments):
    items = [lock_item(f"tf-state/app{n}.tfstate") for n in range(40)] + [
        digest_item(f"tf-state/app{n}.tfstate") for n in range(40)
    ]
    put(dynamodb, *items)
    calls: list[dict] = []
    dynamodb.meta.events.register("before-parameter-build.dynamodb.Scan", lambda params, **_: calls.append(params))
    scanned = [i["LockID"]["S"] for i in LockTable(dynamodb, LOCK_TABLE, segments=segments).scan()]
    assert sorted(scanned) == sorted(i["LockID"]["S"] for i in items)  # no item twice, none missing
    assert sorted(c["Segment"] for c in calls) == list(range(segments))
    assert {c["TotalSegments"] for c in calls} == {segments}
    assert all(c["ConsistentRead"] for c in calls)


def test_segments_are_chosen_from_the_table_size(dynamodb):
    assert [segments_for(size) for size in (0, 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 10**9, 10**12)] == [
        1,
        1,
        1,
        2,
        MAX_SEGMENTS,
        MAX_SEGMENTS,
    ]
    put(dynamodb, lock_item("tf-state/app.tfstate"))
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    assert len(list(LockTable(dynamodb, LOCK_TABLE).scan())) == 1
    assert calls == ["DescribeTable", "Scan"]  # a small table: one segment
    calls.clear()
    assert len(list(LockTable(dynamodb, LOCK_TABLE).scan())) == 1
    assert calls == ["Scan"]  # the size is kept by a warm process


def test_a_failing_segment_fails_the_whole_scan(dynamodb):
    put(dynamodb, *[lock_item(f"tf-state/app{n}.tfstate") for n in range(10)])

    def fail_segment_one(params, **_):
        if params.get("Segment") == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "Scan")

    dynamodb.meta.events.register("before-parameter-build.dynamodb.Scan", fail_segment_one)
    with pytest.raises(AwsAccessError, match="cannot scan lock table"):
        list(LockTable(dynamodb, LOCK_TABLE, segments=3).scan())


def test_several_tables_delete_each_lock_from_the_table_it_was_read_from(dynamodb):
    """Issue 13.10: the same (LockID, Info) in two swept tables are two locks. Each is deleted from its own table,
    each reap is recorded under its own table (no overwrite), and neither is reported ``changed``."""
    create_lock_table(dynamodb, "tf-locks-b")
    same = lock_item("tf-state/a.tfstate", created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, same)
    dynamodb.put_item(TableName="tf-locks-b", Item=same)
    state = StateTable(dynamodb, STATE_TABLE)
    policy = parse_policy(
        "mode: enforce\ndefaults: {min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}\n"
    )
    tables = [LockTable(dynamodb, LOCK_TABLE), LockTable(dynamodb, "tf-locks-b")]

    report = sweep(lock_table=tables, state=state, policy=policy, mode="enforce")

    assert report.table == f"{LOCK_TABLE}, tf-locks-b"
    assert sorted((r.lock.table, r.outcome.value) for r in report.locks) == [
        (LOCK_TABLE, "reaped"),
        ("tf-locks-b", "reaped"),
    ]
    assert table_items(dynamodb) == []
    assert table_items(dynamodb, "tf-locks-b") == []
    records = [i for i in table_items(dynamodb, STATE_TABLE) if "reap_status" in i]
    assert sorted((r["lock_table"]["S"], r["reap_status"]["S"]) for r in records) == [
        (LOCK_TABLE, "reaped"),
        ("tf-locks-b", "reaped"),
    ]
    assert {r["lock_scope"]["S"].rsplit("/", 1)[-1] for r in records} == {LOCK_TABLE, "tf-locks-b"}
    assert all(":123456789012:" in r["lock_scope"]["S"] for r in records), "each record names its account"
