"""Given `.tflock` objects (S3-native locking), they are parsed with the same lock model as lock items, judged by
server time, and reaped on both sides of a dual backend, each conditional, the lockfile first."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from factories import NOW, lock_info, lock_item
from fakes import FakeLockfiles, FakeLockTable
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.lock import LockfileObject, LockRecord, SkippedItem, classify_lockfile
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import explain, sweep

PATH = "tf-state/dev/network/terraform.tfstate"
POLICY = parse_policy(
    """
mode: enforce
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/*"
    holder: {assume: gone}
"""
)


def lockfile(
    path: str = PATH,
    *,
    body: bytes | None = None,
    written: datetime | None = None,
    etag: str = '"e1"',
    **info: Any,
) -> LockfileObject:
    bucket, key = path.split("/", 1)
    if body is None:
        info.setdefault("created", (written or NOW - timedelta(hours=3)) + timedelta(milliseconds=3))
        body = json.dumps(lock_info(path, **info), separators=(",", ":")).encode()
    return LockfileObject(bucket, key + ".tflock", body, etag, written or NOW - timedelta(hours=3))


def _sweep(table: FakeLockTable | None, files: FakeLockfiles | None, mode: str = "enforce") -> Any:
    return sweep(
        lock_table=table,
        lockfiles=files,
        state=MemoryStateStore(),
        policy=POLICY,
        mode=mode,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )


def test_a_lockfile_is_parsed_with_the_lock_model_and_its_body_kept_byte_for_byte():
    obj = lockfile(lock_id="8a3cd4e3")
    lock = classify_lockfile(obj, NOW)
    assert isinstance(lock, LockRecord)
    assert lock.lock_path == PATH
    assert lock.raw_info == obj.body.decode()
    assert (lock.lock_id, lock.backend, lock.lockfile) == ("8a3cd4e3", "s3", obj)
    assert lock.item["Info"] == {"S": obj.body.decode()}


def test_a_lockfile_whose_info_path_is_another_state_is_skipped():
    obj = lockfile(body=json.dumps(lock_info("tf-state/prod/other.tfstate")).encode())
    skipped = classify_lockfile(obj, NOW)
    assert isinstance(skipped, SkippedItem)
    assert skipped.lock_id == f"{PATH}.tflock"
    assert "differs from the lockfile's key" in skipped.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "lockfile body is not valid JSON"),
        (b"[1, 2]", "lockfile body JSON is a list, not an object"),
        (b'{"ID": "x"}', "lockfile body is not a Terraform LockInfo"),
        (b"\xff\xfe", "lockfile body is not UTF-8"),
    ],
)
def test_a_malformed_lockfile_is_skipped_with_its_reason_and_never_deleted(body, reason):
    files = FakeLockfiles([lockfile(body=body)])
    report = _sweep(None, files)
    assert report.locks == []
    [skipped] = report.skipped
    assert reason in skipped.reason
    assert files.deletes == []


def test_lockfile_age_is_measured_from_last_modified_server_time():
    files = FakeLockfiles([lockfile(written=NOW - timedelta(hours=3))])
    [entry] = _sweep(None, files).locks
    assert entry.verdict.age_basis == "server time"
    assert entry.verdict.age == timedelta(hours=3)
    assert entry.outcome.value == "reaped"
    assert files.deletes == [f"{PATH}.tflock"]


def test_a_lockfile_whose_created_disagrees_with_last_modified_is_not_reaped():
    # The holder's clock runs 3h slow: Created says 6h ago, S3 wrote the object 3h ago. Clocks that disagree
    # are a reason to alert, never to reap.
    obj = lockfile(written=NOW - timedelta(hours=3), created=NOW - timedelta(hours=6))
    files = FakeLockfiles([obj])
    [entry] = _sweep(None, files).locks
    assert entry.outcome.value == "blocked"
    assert any("clock skew" in reason for reason in entry.reasons)
    assert files.deletes == []


def test_a_lockfile_replaced_after_it_was_read_is_not_deleted():
    obj = lockfile()
    files = FakeLockfiles([obj])
    files.replaced[obj.location] = '"e2"'
    [entry] = _sweep(None, files).locks
    assert entry.outcome.value == "changed"
    assert any("the lockfile s3://" in reason and "changed after it was read" in reason for reason in entry.reasons)
    assert files.deletes == []


def _dual(lock_id: str = "same-id") -> tuple[FakeLockTable, FakeLockfiles]:
    created = NOW - timedelta(hours=3)
    table = FakeLockTable([lock_item(PATH, created=created + timedelta(milliseconds=5), lock_id=lock_id)])
    return table, FakeLockfiles([lockfile(written=created, lock_id=lock_id)])


def test_a_dual_backend_lock_is_one_lock_and_both_sides_are_reaped_file_first():
    table, files = _dual()
    report = _sweep(table, files)
    [entry] = report.locks
    assert (entry.lock.backend, entry.outcome.value) == ("dual", "reaped")
    assert entry.to_dict()["backend"] == "dual"
    assert files.deletes == [f"{PATH}.tflock"]
    assert table.deletes == [PATH]
    assert entry.notes[0].startswith("lockfile s3://")
    assert report.summary()["locks"] == 1


def test_a_dual_backend_whose_lockfile_changed_leaves_the_lock_item_alone():
    table, files = _dual()
    files.replaced[files.objects[0].location] = '"e2"'
    [entry] = _sweep(table, files).locks
    assert entry.outcome.value == "changed"
    assert "the DynamoDB lock item was left alone" in entry.reasons
    assert files.deletes == []
    assert table.deletes == []


def test_a_dual_backend_whose_lock_item_changed_is_reaped_on_the_lockfile_side_and_says_what_was_left(caplog):
    """Issue 13.8: what a sweep deleted is reaped (logged in full, alerted), with what was left and why."""
    table, files = _dual()
    table.before_delete = lambda path: table.items.update({path: lock_item(PATH, lock_id="someone-else")})
    [entry] = _sweep(table, files).locks
    assert entry.outcome.value == "reaped"
    assert any("the DynamoDB lock item was released or re-acquired" in reason for reason in entry.reasons)
    assert files.deletes == [f"{PATH}.tflock"]
    assert table.deletes == []
    assert entry.deleted_item["Lockfile"]["S"] == f"s3://{PATH}.tflock"
    [reaped] = [r for r in caplog.records if r.getMessage() == "lock reaped"]
    assert reaped.deleted_items == [entry.deleted_item]
    assert "released or re-acquired" in reaped.left


def test_a_dual_backend_whose_item_delete_fails_is_still_reaped_on_the_lockfile_side():
    table, files = _dual()
    table.fail_deletes = True
    [entry] = _sweep(table, files).locks
    assert entry.outcome.value == "reaped"
    assert files.deletes == [f"{PATH}.tflock"]
    assert any("was not deleted: cannot delete: InternalServerError: release it by hand" in r for r in entry.reasons)


def test_a_dual_lock_whose_item_key_ends_in_md5_keeps_both_sides():
    """Issue 13.8: the stack's IAM never deletes a ``*-md5`` key, so its lockfile must not be deleted either."""
    path = "tf-state/weird-md5"
    created = NOW - timedelta(hours=3)
    table = FakeLockTable([lock_item(path, created=created + timedelta(milliseconds=5), lock_id="same-id")])
    files = FakeLockfiles([lockfile(path, written=created, lock_id="same-id")])
    [entry] = _sweep(table, files).locks
    assert entry.outcome.value == "blocked"
    assert any("key ends in -md5" in reason for reason in entry.reasons)
    assert files.deletes == []
    assert table.deletes == []


def test_a_lockfile_and_an_item_of_different_acquisitions_are_two_locks():
    table, files = _dual()
    files.objects = [lockfile(written=NOW - timedelta(hours=3), lock_id="another-id")]
    report = _sweep(table, files, mode="dry-run")
    assert sorted(entry.lock.backend for entry in report.locks) == ["dynamodb", "s3"]


def test_explain_a_lockfile_lock():
    obj = lockfile()
    report = explain(PATH, item=None, lockfile=obj, state=MemoryStateStore(), policy=POLICY, clock=lambda: NOW)
    assert report is not None
    assert not isinstance(report, SkippedItem)
    assert report.to_dict()["backend"] == "s3"
    assert report.outcome.value == "would-reap"
