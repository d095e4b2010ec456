"""Fuzzing S3-native lockfiles: generated ``.tflock`` objects (well-formed, huge, hostile and broken bodies, keys
that are not a lockfile's) are classified as the oracle says and never crash; an enforce sweep with the most
aggressive policy deletes every well-formed lockfile (and, for a dual backend, its lock item) and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from factories import NOW
from fakes import FakeLockfiles, FakeLockTable
from fuzz import (
    AGGRESSIVE,
    TFLOCK,
    LockfileCase,
    any_text,
    broken_items,
    broken_lockfiles,
    digest_text,
    json_value,
    lockfile_cases,
    printable_key,
    well_formed_lockfiles,
)
from hypothesis import example, given
from hypothesis import strategies as st
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.lock import LockfileObject, LockRecord, SkippedItem, classify_lockfile
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.services.sweep import sweep

_NOT_A_LOCKFILE = "not a <state key>.tflock object"
_NOT_LOCK_INFO = "not a Terraform LockInfo"
_OTHER_PATH = "differs from the lockfile's key"
#: Why a broken variant is skipped, as built: the reason must say so (a skip for the wrong reason hides a bug).
_REASONS = {
    "key": _NOT_A_LOCKFILE,
    "bare-suffix": _NOT_A_LOCKFILE,
    "not-utf8": "not UTF-8",
    "utf16": "not UTF-8",
    "bom": "not valid JSON",
    "truncated": "not valid JSON",
    "text": "not valid JSON",
    "not-object": "not an object",
    "missing": _NOT_LOCK_INFO,
    "wrong-type": _NOT_LOCK_INFO,
    "empty-id": _NOT_LOCK_INFO,
    "bad-created": _NOT_LOCK_INFO,
    "future": "in the future",
    "path": _OTHER_PATH,
    "path-near-miss": _OTHER_PATH,
}


def _obj(key: str, body: bytes, bucket: str = "tf-state") -> LockfileObject:
    return LockfileObject(bucket, key, body, '"e1"', NOW)


def _check_classified(case: LockfileCase) -> None:
    result = classify_lockfile(case.obj, NOW)
    if case.kind == "lock":
        assert isinstance(result, LockRecord), (case.why, result)
        # The body exactly as read (never re-serialised), the object itself for the ETag-conditional delete.
        raw = case.obj.body.decode("utf-8")
        assert result.raw_info == raw
        assert result.item["Info"] == {"S": raw}
        assert result.lock_path == case.path == result.info.path
        assert result.lockfile is case.obj
        assert (result.backend, result.in_table) == ("s3", False)
        info = json.loads(raw)
        fields = (result.lock_id, result.info.operation, result.info.info, result.info.who, result.info.version)
        assert fields == (info["ID"], info["Operation"], info["Info"], info["Who"], info["Version"])
    else:
        assert isinstance(result, SkippedItem), (case.why, result)
        assert result.lock_id == case.obj.location
        assert result.reason
        assert _REASONS[case.why] in result.reason, (case.why, result.reason)
    # The audit classifies without a clock: the same verdict, except that a future Created is allowed there.
    if case.why != "future":
        assert type(classify_lockfile(case.obj, None)) is type(result)


@pytest.mark.parametrize("cases", [well_formed_lockfiles(), broken_lockfiles()], ids=["locks", "broken"])
@given(data=st.data())
def test_each_kind_of_lockfile_is_classified_as_the_oracle_says(
    cases: st.SearchStrategy[LockfileCase], data: st.DataObject
) -> None:
    _check_classified(data.draw(cases))


_GOOD = (
    b'{"ID":"1","Operation":"","Info":"","Who":"","Version":"","Created":"2026-11-26T11:00:00Z","Path":"tf-state/k"}'
)


@given(lockfile_cases)
@example(LockfileCase(_obj("k.tflock", _GOOD), "lock", "minimal", "tf-state/k"))
@example(LockfileCase(_obj("k.tflock", b""), "skipped", "truncated", "tf-state/k"))
@example(LockfileCase(_obj("k.tflock", b"null"), "skipped", "not-object", "tf-state/k"))
@example(LockfileCase(_obj("k.tflock.tflock", _GOOD), "skipped", "path", "tf-state/k.tflock"))
@example(LockfileCase(_obj("k", _GOOD), "skipped", "key", "tf-state/k"))
@example(LockfileCase(_obj(TFLOCK, _GOOD.replace(b"/k", b"/")), "skipped", "bare-suffix", "tf-state/"))
def test_every_lockfile_is_classified_as_the_oracle_says(case: LockfileCase) -> None:
    _check_classified(case)


@given(
    st.text(max_size=8),
    st.one_of(printable_key, any_text, any_text.map(lambda k: k + TFLOCK)),
    st.one_of(st.binary(max_size=64), json_value.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass"))),
)
def test_arbitrary_objects_never_crash(bucket: str, key: str, body: bytes) -> None:
    result = classify_lockfile(LockfileObject(bucket, key, body, '"e1"', NOW), NOW)
    assert isinstance(result, LockRecord | SkippedItem)
    if isinstance(result, LockRecord):
        assert key.endswith(TFLOCK)
        assert result.info.path == f"{bucket}/{key.removesuffix(TFLOCK)}"


def _sweep(table: FakeLockTable | None, files: FakeLockfiles) -> SweepReport:
    return sweep(
        lock_table=table,
        lockfiles=files,
        state=MemoryStateStore(),
        policy=AGGRESSIVE,
        mode="enforce",
        clock=lambda: NOW,
    )


def _unique(cases: st.SearchStrategy[LockfileCase], max_size: int = 8) -> st.SearchStrategy[list[LockfileCase]]:
    """A bucket holds one object per key."""
    return st.lists(cases, min_size=1, max_size=max_size, unique_by=lambda case: case.obj.location)


@given(_unique(lockfile_cases))
def test_an_aggressive_enforce_sweep_deletes_exactly_the_well_formed_lockfiles(cases: list[LockfileCase]) -> None:
    files = FakeLockfiles([case.obj for case in cases])
    report = _sweep(None, files)

    locks = [case for case in cases if case.kind == "lock"]
    assert files.deletes == [case.obj.location for case in locks]
    # Malformed objects: still there, untouched, each reported skipped.
    malformed = [case.obj for case in cases if case.kind == "skipped"]
    assert [id(obj) for obj in files.objects] == [id(obj) for obj in malformed]
    assert [s.lock_id for s in report.skipped] == [obj.location for obj in malformed]
    outcomes = [(entry.lock.lock_path, entry.lock.backend, entry.outcome) for entry in report.locks]
    assert outcomes == [(case.path, "s3", Outcome.REAPED) for case in locks]


@given(_unique(broken_lockfiles()))
def test_a_bucket_of_malformed_lockfiles_loses_nothing(cases: list[LockfileCase]) -> None:
    files = FakeLockfiles([case.obj for case in cases])
    report = _sweep(None, files)
    assert files.deletes == []
    assert report.locks == []
    assert len(files.objects) == len(report.skipped) == len(cases)


@st.composite
def dual_estates(draw: st.DrawFn) -> tuple[list[LockfileCase], dict[str, tuple[str, dict[str, Any]]]]:
    """Lockfiles and a lock table beside them: a lock item for some well-formed lockfiles (a dual backend: same
    path, same Info, so the same ID), a digest item for every lockfile's state, and malformed items.

    Returns the lockfiles and the table's items by LockID, each with its expected class.
    """
    files = draw(_unique(lockfile_cases, max_size=6))
    items: dict[str, tuple[str, dict[str, Any]]] = {}
    for case in files:  # first: a pair's LockID wins over any other item that happens to share it
        if case.kind == "lock" and draw(st.booleans()):
            items[case.path] = ("dual", {"LockID": {"S": case.path}, "Info": {"S": case.obj.body.decode("utf-8")}})
    for case in files:
        digest = draw(st.one_of(st.none(), digest_text, any_text))  # None: terragrunt's bare -md5 item
        item = {"LockID": {"S": case.path + "-md5"}, **({"Digest": {"S": digest}} if digest is not None else {})}
        items.setdefault(case.path + "-md5", ("digest", item))
    for broken in draw(st.lists(broken_items(), max_size=4)):
        items.setdefault(str(broken.lock_id), ("skipped", broken.item))
    return files, items


@given(dual_estates())
def test_an_aggressive_enforce_sweep_of_dual_backends_deletes_both_sides_of_exactly_the_well_formed_locks(
    estate: tuple[list[LockfileCase], dict[str, tuple[str, dict[str, Any]]]],
) -> None:
    cases, items = estate
    table = FakeLockTable([item for _, item in items.values()])
    files = FakeLockfiles([case.obj for case in cases])
    report = _sweep(table, files)

    locks = [case for case in cases if case.kind == "lock"]
    dual = {lock_id for lock_id, (kind, _) in items.items() if kind == "dual"}
    # A dual lock whose item key ends in -md5 keeps both sides: the stack's IAM never deletes such a key.
    kept = {path for path in dual if path.endswith("-md5")}
    # Each exactly once (dual backends are judged first: the order is the merge's, not the scan's).
    assert sorted(files.deletes) == sorted(case.obj.location for case in locks if case.path not in kept)
    assert sorted(table.deletes) == sorted(dual - kept)
    for lock_id, (kind, item) in items.items():
        if kind != "dual" or lock_id in kept:  # digests, malformed items and kept locks: there, untouched
            assert table.items[lock_id] is item
    left = [id(case.obj) for case in cases if case.kind == "skipped" or case.path in kept]
    assert [id(obj) for obj in files.objects] == left

    # One record per acquisition: a pair is one dual lock, reaped on both sides.
    outcomes = sorted((entry.lock.lock_path, entry.lock.backend, entry.outcome) for entry in report.locks)
    expected = [
        (case.path, "dual" if case.path in dual else "s3", Outcome.BLOCKED if case.path in kept else Outcome.REAPED)
        for case in locks
    ]
    assert outcomes == sorted(expected)
    summary = report.summary()
    assert summary["digests"] == sum(kind == "digest" for kind, _ in items.values())
    skipped_items = sum(kind == "skipped" for kind, _ in items.values())
    assert summary["skipped"] == skipped_items + len(cases) - len(locks)
