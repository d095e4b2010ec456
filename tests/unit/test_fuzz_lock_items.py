"""Fuzzing the lock table: generated items (well-formed locks, digests, hostile and broken variants) are
classified as the oracle says and never crash; an enforce sweep with the most aggressive policy deletes
every well-formed stale lock and nothing else."""

from __future__ import annotations

from typing import Any

import pytest
from factories import NOW
from fakes import FakeLockTable
from fuzz import AGGRESSIVE, Case, broken_items, digest_items, lock_table_cases, no_lock_id_cases, well_formed_locks
from hypothesis import example, given
from hypothesis import strategies as st
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.lock import DigestRecord, LockRecord, SkippedItem, classify_item
from tflock_reaper.services.sweep import sweep

_KINDS = {"lock": LockRecord, "digest": DigestRecord, "skipped": SkippedItem}


def _check_classified(case: Case) -> None:
    result = classify_item(case.item, NOW)
    assert isinstance(result, _KINDS[case.kind]), (case.why, result)
    if isinstance(result, LockRecord):
        # The delete is conditional on these: exactly as read, never re-serialised.
        assert result.raw_info == case.item["Info"]["S"]
        assert result.lock_path == case.item["LockID"]["S"] == result.info.path
    elif isinstance(result, SkippedItem):
        assert result.reason
        assert result.item is case.item
    # The audit classifies without a clock: the same verdict, except that a future Created is allowed there.
    if case.why != "future":
        assert type(classify_item(case.item, None)) is type(result)


@pytest.mark.parametrize(
    "cases", [well_formed_locks(), digest_items(), broken_items()], ids=["locks", "digests", "broken"]
)
@given(data=st.data())
def test_each_kind_of_item_is_classified_as_the_oracle_says(
    cases: st.SearchStrategy[Case], data: st.DataObject
) -> None:
    _check_classified(data.draw(cases))


@given(lock_table_cases)
@example(Case({"LockID": {"S": "b/x-md5"}, "Info": {"S": '{"ID":"1"}'}}, "skipped", "missing"))
@example(Case({"LockID": {"S": "b/x-md5"}}, "digest", "bare"))
def test_every_item_is_classified_as_the_oracle_says(case: Case) -> None:
    _check_classified(case)


@given(no_lock_id_cases)
def test_an_item_without_a_string_lock_id_is_skipped(case: Case) -> None:
    _check_classified(case)


@given(st.dictionaries(st.text(max_size=8), st.dictionaries(st.text(max_size=3), st.text(max_size=8), max_size=2)))
def test_arbitrary_attribute_maps_never_crash(item: dict[str, Any]) -> None:
    result = classify_item(item, NOW)
    assert isinstance(result, LockRecord | DigestRecord | SkippedItem)
    if not isinstance(result, LockRecord):
        return
    assert set(item) == {"LockID", "Info"}  # a lock is LockID and Info, nothing else


def _unique(cases: list[Case]) -> list[Case]:
    """A table holds one item per LockID; keep the first."""
    seen: dict[str, Case] = {}
    for case in cases:
        seen.setdefault(str(case.lock_id), case)
    return list(seen.values())


@given(st.lists(lock_table_cases, min_size=1, max_size=12).map(_unique))
def test_an_aggressive_enforce_sweep_deletes_exactly_the_well_formed_locks(cases: list[Case]) -> None:
    table = FakeLockTable([case.item for case in cases])
    report = sweep(lock_table=table, state=MemoryStateStore(), policy=AGGRESSIVE, mode="enforce", clock=lambda: NOW)

    locks = [case.lock_id for case in cases if case.kind == "lock"]
    # A lock whose key ends in -md5 (a state key may) is never deleted: the stack's IAM refuses such keys.
    deletable = [lock_id for lock_id in locks if not str(lock_id).endswith("-md5")]
    assert table.deletes == deletable
    for case in cases:
        if case.kind != "lock":  # digests and malformed items: still there, untouched
            assert table.items[str(case.lock_id)] is case.item
    assert [entry.outcome for entry in report.locks] == [
        Outcome.REAPED if lock_id in deletable else Outcome.BLOCKED for lock_id in locks
    ]
    summary = report.summary()
    assert summary["digests"] == sum(case.kind == "digest" for case in cases)
    assert summary["skipped"] == sum(case.kind == "skipped" for case in cases)
    assert sorted(s.lock_id for s in report.skipped) == sorted(str(c.lock_id) for c in cases if c.kind == "skipped")


@given(st.lists(st.one_of(broken_items(), digest_items()), min_size=1, max_size=12).map(_unique))
def test_a_table_of_digests_and_malformed_items_loses_nothing(cases: list[Case]) -> None:
    table = FakeLockTable([case.item for case in cases])
    report = sweep(lock_table=table, state=MemoryStateStore(), policy=AGGRESSIVE, mode="enforce", clock=lambda: NOW)
    assert table.deletes == []
    assert report.locks == []
    assert len(table.items) == len(cases)
