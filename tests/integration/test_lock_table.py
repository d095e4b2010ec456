"""The lock-table adapter against moto: consistent scan, and a delete conditional on the exact Info."""

import pytest
from botocore.exceptions import ClientError
from factories import digest_item, lock_item
from tables import LOCK_TABLE, put, table_items
from tflock_reaper.dal.errors import AwsAccessError
from tflock_reaper.dal.lock_table import LockTable


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
