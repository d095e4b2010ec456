"""The lock-table adapter against moto: consistent scan, and a delete conditional on the exact Info."""

import pytest
from botocore.exceptions import ClientError
from factories import digest_item, lock_item
from tables import LOCK_TABLE, create_lock_table, put, table_items
from tflock_reaper.dal.errors import AwsAccessError
from tflock_reaper.dal.lock_table import MAX_SEGMENTS, SEGMENT_BYTES, LockTable, LockTables, segments_for


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
    with pytest.raises(AwsAccessError, match="cannot scan lock table 'absent': ResourceNotFoundException"):
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
    create_lock_table(dynamodb, "tf-locks-b")
    mine, theirs = lock_item("tf-state/a.tfstate"), lock_item("tf-state/b.tfstate")
    put(dynamodb, mine)
    dynamodb.put_item(TableName="tf-locks-b", Item=theirs)
    tables = LockTables([LockTable(dynamodb, LOCK_TABLE), LockTable(dynamodb, "tf-locks-b")])
    assert tables.name == f"{LOCK_TABLE}, tf-locks-b"
    assert sorted(i["LockID"]["S"] for i in tables.scan()) == ["tf-state/a.tfstate", "tf-state/b.tfstate"]
    assert tables.delete_if_unchanged("tf-state/b.tfstate", theirs["Info"]["S"]).deleted
    assert table_items(dynamodb, "tf-locks-b") == []
    assert table_items(dynamodb) == [mine]
    with pytest.raises(AwsAccessError, match="was not read from any of the lock tables"):
        tables.delete_if_unchanged("tf-state/c.tfstate", theirs["Info"]["S"])
