"""scripts/read_units.py: DynamoDB's documented item sizes and read units, checked on items computed by hand."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
units = runpy.run_path(str(ROOT / "scripts" / "read_units.py"))
item_size = units["item_size"]
consumed = units["consumed"]


def sized(total: int, name: str = "LockID") -> dict[str, dict[str, str]]:
    """An item of exactly ``total`` bytes: one string attribute."""
    return {name: {"S": "x" * (total - len(name))}}


def test_a_digest_item_is_its_names_and_values_utf8_bytes():
    path = "tf-state/dev/network/terraform.tfstate-md5"
    item = {"LockID": {"S": path}, "Digest": {"S": "9f86d081884c7d659a2feaa0c55ad015"}}
    assert item_size(item) == 6 + 42 + 6 + 32


def test_non_ascii_text_counts_its_utf8_bytes():
    assert item_size({"né": {"S": "café"}}) == 3 + 5


@pytest.mark.parametrize(
    ("number", "size"),
    [
        ("1767225600", 5),  # trailing zeroes trimmed: 17672256, 8 digits = 4 bytes + 1
        ("-0.0012300", 3),  # 123: 2 bytes + 1
        ("7", 2),
        ("0", 2),
        ("12345678901234567890123456789012345678", 20),  # 38 digits
    ],
)
def test_a_number_is_about_a_byte_per_two_significant_digits_plus_one(number, size):
    assert item_size({"n": {"N": number}}) == 1 + size


def test_binary_booleans_nulls_and_sets():
    item = {
        "b": {"B": b"\x00\x01\x02"},  # 1 + 3 raw bytes
        "t": {"BOOL": True},  # 1 + 1
        "z": {"NULL": True},  # 1 + 1
        "ss": {"SS": ["a", "bc"]},  # 2 + 1 + 2
        "ns": {"NS": ["10", "123"]},  # 2 + 2 + 3
    }
    assert item_size(item) == 4 + 2 + 2 + 5 + 7


def test_lists_and_maps_cost_three_bytes_and_one_per_element():
    item = {
        "m": {"M": {"a": {"S": "xy"}, "b": {"BOOL": False}}},  # 1 + 3 + (1 + 2 + 1) + (1 + 1 + 1)
        "l": {"L": [{"S": "abc"}, {"NULL": True}]},  # 1 + 3 + (3 + 1) + (1 + 1)
        "e": {"L": []},  # 1 + 3
    }
    assert item_size(item) == 11 + 10 + 4


def test_a_consistent_scan_page_sums_its_items_before_rounding_up_to_4_kb():
    page = {"Items": [sized(3000), sized(2000)]}
    assert consumed("Scan", {"TableName": "t", "ConsistentRead": True}, page) == {"t": 2.0}
    assert consumed("Scan", {"TableName": "t", "ConsistentRead": True}, {"Items": [sized(2048)] * 2}) == {"t": 1.0}


def test_an_eventually_consistent_page_costs_half_and_an_index_query_is_never_consistent():
    page = {"Items": [sized(3000), sized(2000)]}
    assert consumed("Query", {"TableName": "s"}, page) == {"s": 1.0}
    on_index = {"TableName": "s", "IndexName": "held-locks", "ConsistentRead": True}
    assert consumed("Query", on_index, page) == {"s": 1.0}
    assert consumed("Query", {"TableName": "s"}, {"Items": []}) == {"s": 0.5}


def test_batch_get_rounds_each_item_on_its_own_and_charges_keys_not_found():
    params = {"RequestItems": {"t": {"Keys": [{}] * 4, "ConsistentRead": True}}}
    response = {"Responses": {"t": [sized(1500), sized(6500), sized(100)]}}
    # 4 KB + 8 KB + 4 KB, and one key not found: 1 + 2 + 1 + 1 (not ceil(8,100 / 4,096) = 2).
    assert consumed("BatchGetItem", params, response) == {"t": 5.0}


def test_batch_get_does_not_charge_unprocessed_keys():
    params = {"RequestItems": {"t": {"Keys": [{}] * 3, "ConsistentRead": True}}}
    response = {"Responses": {"t": [sized(100)]}, "UnprocessedKeys": {"t": {"Keys": [{}, {}]}}}
    assert consumed("BatchGetItem", params, response) == {"t": 1.0}


def test_get_item_rounds_up_and_a_missing_item_costs_the_minimum():
    assert consumed("GetItem", {"TableName": "t", "ConsistentRead": True}, {"Item": sized(8193)}) == {"t": 3.0}
    assert consumed("GetItem", {"TableName": "t", "ConsistentRead": True}, {}) == {"t": 1.0}
    assert consumed("GetItem", {"TableName": "t"}, {"Item": sized(10)}) == {"t": 0.5}


def test_writes_and_describe_table_consume_no_read_units():
    assert consumed("UpdateItem", {"TableName": "t"}, {}) == {}
    assert consumed("DescribeTable", {"TableName": "t"}, {"Table": {}}) == {}
