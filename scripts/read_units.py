"""DynamoDB's read units for a request, from its documented formula (neither emulator computes them as DynamoDB does:
moto returns none, dynalite its own approximation). Used by `bench_sweep.py`; pure, no AWS.

Item size (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html): the sum,
over the attributes, of the name's UTF-8 bytes and the value's size: a string's UTF-8 bytes, a binary's raw bytes, a
number about one byte per two significant digits plus one, a Boolean or null one byte, a set the sum of its elements,
a list or map 3 bytes plus each element's size plus 1 byte per element (a map's keys count as names).

Read units (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html), strongly
consistent; an eventually consistent read costs half:

* ``GetItem``: the item's size rounded up to 4 KB, one unit per 4 KB (at least one: a missing item costs one too);
* ``BatchGetItem``: each item rounded up to 4 KB on its own (a key not found costs one unit, as its ``GetItem``);
* ``Query`` and ``Scan``: one page's items summed, then rounded up to 4 KB (at least one unit per page). Neither
  the sweeper nor the benchmark uses a ``ProjectionExpression`` or a filter, so the items returned are those read.

Writes and control-plane calls (``DescribeTable``) cost no read units.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

READ_UNIT_BYTES = 4096
#: Reads that consume read units, and how their consistency is asked for.
READ_OPERATIONS = ("GetItem", "BatchGetItem", "Query", "Scan")

AttributeValue = Mapping[str, Any]
Item = Mapping[str, AttributeValue]


def _text_bytes(value: str | bytes) -> int:
    return len(value) if isinstance(value, bytes | bytearray) else len(value.encode("utf-8"))


def number_size(text: str) -> int:
    """About one byte per two significant digits, plus one (leading and trailing zeroes do not count)."""
    mantissa = text.strip().lstrip("+-").lower().split("e")[0]
    digits = mantissa.replace(".", "").strip("0")
    return math.ceil(max(1, len(digits)) / 2) + 1


def value_size(value: AttributeValue) -> int:
    """The size of one attribute value (without its name), in DynamoDB's typed form (``{"S": "..."}``)."""
    kind, payload = next(iter(value.items()))
    if kind == "S":
        return _text_bytes(payload)
    if kind == "N":
        return number_size(str(payload))
    if kind == "B":
        return _text_bytes(payload)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(_text_bytes(element) for element in payload)
    if kind == "NS":
        return sum(number_size(str(element)) for element in payload)
    if kind == "BS":
        return sum(_text_bytes(element) for element in payload)
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in payload)
    if kind == "M":
        return 3 + sum(_text_bytes(name) + value_size(element) + 1 for name, element in payload.items())
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def item_size(item: Item) -> int:
    """The size of an item: its attributes' names and values."""
    return sum(_text_bytes(name) + value_size(value) for name, value in item.items())


def _units(size: int, *, consistent: bool) -> float:
    """One read of ``size`` bytes (items of one page summed, or one item): 4 KB per unit, at least one."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def page_units(items: Sequence[Item], *, consistent: bool) -> float:
    """A ``Query`` or ``Scan`` page: its items' sizes summed, then rounded up to 4 KB."""
    return _units(sum(item_size(item) for item in items), consistent=consistent)


def batch_get_units(items: Sequence[Item], *, missing: int, consistent: bool) -> float:
    """A ``BatchGetItem`` of one table: each item rounded up to 4 KB on its own; a key not found costs one unit."""
    units = sum(max(1, math.ceil(item_size(item) / READ_UNIT_BYTES)) for item in items) + missing
    return float(units) if consistent else units / 2


def get_units(item: Item | None, *, consistent: bool) -> float:
    """A ``GetItem``: the item's size rounded up to 4 KB (a missing item costs the minimum)."""
    return _units(item_size(item) if item else 0, consistent=consistent)


def consumed(operation: str, params: Mapping[str, Any], response: Mapping[str, Any]) -> dict[str, float]:
    """The read units one request consumed, per table, from its API parameters and its (parsed) response."""
    if operation in ("Scan", "Query"):
        # A global secondary index is always read eventually consistent (DynamoDB refuses ConsistentRead on one).
        consistent = bool(params.get("ConsistentRead")) and not (operation == "Query" and "IndexName" in params)
        return {params["TableName"]: page_units(response.get("Items", []), consistent=consistent)}
    if operation == "GetItem":
        return {params["TableName"]: get_units(response.get("Item"), consistent=bool(params.get("ConsistentRead")))}
    if operation == "BatchGetItem":
        units: dict[str, float] = {}
        for table, request in params["RequestItems"].items():
            items = response.get("Responses", {}).get(table, [])
            unprocessed = len(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
            missing = max(0, len(request["Keys"]) - len(items) - unprocessed)
            consistent = bool(request.get("ConsistentRead"))
            units[table] = batch_get_units(items, missing=missing, consistent=consistent)
        return units
    return {}
