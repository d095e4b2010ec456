"""Fuzzing the stream function: generated DynamoDB stream records (well-shaped records of any lock-table item,
and records broken at any place) never fail a batch, so a poison record is never retried; the good records
of the same batch are still recorded."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from factories import NOW, lock_item
from fakes import FakeLambdaContext, MemoryAuditStore
from fuzz import Case, json_value, lock_table_cases
from hypothesis import example, given
from hypothesis import strategies as st
from streams import stream_record

EVENTS = Path(__file__).parents[2] / "events"
SAMPLES = [
    record
    for name in ("stream_lock_acquired.json", "stream_lock_released.json", "stream_digest_written.json")
    for record in json.loads((EVENTS / name).read_text())["Records"]
]


@pytest.fixture(scope="module")
def handler() -> Iterator[Any]:
    import stream_handler  # noqa: PLC0415

    saved = stream_handler.metrics.namespace
    stream_handler.metrics.namespace = "TflockReaperFuzz"
    yield stream_handler
    stream_handler.metrics.namespace = saved
    stream_handler.metrics.metric_set.clear()


def _announce(notification: Any, channels: str) -> Any:
    raise AssertionError("no channel was alerted in these tests: nothing to announce")


def _run(handler: Any, records: list[dict[str, Any]], store: MemoryAuditStore) -> dict[str, Any]:
    try:
        return dict(handler.handle_batch({"Records": records}, FakeLambdaContext(), store=store, announce=_announce))
    finally:
        handler.metrics.metric_set.clear()  # shared across instances: leave no metric (but the dimensions) behind


#: A record whose images are any lock-table item, good or hostile, under any event name.
@st.composite
def item_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record whose image is any lock-table item, good or hostile, under any event name."""
    case: Case = draw(lock_table_cases)
    event = draw(st.sampled_from(["INSERT", "MODIFY", "REMOVE"]))
    at = draw(
        st.datetimes(NOW.replace(tzinfo=None, year=2000), NOW.replace(tzinfo=None, year=2100), timezones=st.just(UTC))
    )
    image = {"old": case.item} if event == "REMOVE" else {"new": case.item}
    record = stream_record(event, **image, at=at, ttl=draw(st.booleans()))
    if draw(st.booleans()):  # a stream view type without this image (KEYS_ONLY, NEW_IMAGE)
        record["dynamodb"].pop("OldImage" if event == "REMOVE" else "NewImage")
    return record


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document (dict keys and list indexes)."""
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return [prefix]
    return [prefix] + [p for key, child in children for p in _paths(child, (*prefix, key))]


@st.composite
def broken_records(draw: st.DrawFn) -> dict[str, Any]:
    """A real record (events/ or generated) with one place replaced by anything, or deleted."""
    record = copy.deepcopy(draw(st.one_of(st.sampled_from(SAMPLES), item_records())))
    path = draw(st.sampled_from(_paths(record)[1:]))
    parent = record
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        parent[path[-1]] = draw(
            st.one_of(
                json_value,
                st.sampled_from([float("nan"), float("inf"), -1e13, 1e20, 10**400, "1795717122", True]),
            )
        )
    else:
        del parent[path[-1]]
    return record


@given(st.one_of(item_records(), broken_records(), json_value))
@example(SAMPLES[0] | {"dynamodb": SAMPLES[0]["dynamodb"] | {"ApproximateCreationDateTime": 1e20}})
@example(SAMPLES[0] | {"dynamodb": SAMPLES[0]["dynamodb"] | {"ApproximateCreationDateTime": float("nan")}})
@example(SAMPLES[0] | {"dynamodb": SAMPLES[0]["dynamodb"] | {"ApproximateCreationDateTime": -1e13}})
def test_no_record_fails_the_batch_and_the_good_record_beside_it_is_recorded(handler: Any, record: Any) -> None:
    good = stream_record("INSERT", new=lock_item("tf-state/fuzz/good.tfstate", lock_id="good-id"), at=NOW)
    store = MemoryAuditStore()
    result = _run(handler, [record, good], store)
    assert result == {"batchItemFailures": []}
    assert ("tf-state/fuzz/good.tfstate", "good-id") in store.acquired


@given(st.lists(broken_records(), min_size=1, max_size=5))
def test_a_batch_of_poison_records_only_is_not_an_error(handler: Any, records: list[dict[str, Any]]) -> None:
    """BatchProcessor raises when every record fails: a batch of poison must therefore fail none."""
    assert _run(handler, records, MemoryAuditStore()) == {"batchItemFailures": []}
