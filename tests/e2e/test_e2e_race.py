"""The reap's delete is conditional on the exact lock judged: a lock released (and re-taken by a real
Terraform run) between the sweep's read and its delete is left alone."""

from __future__ import annotations

import pytest
from tflab import ApplyHandle, Backend, HeldLock, TerraformWorkspace, policy_yaml, wait_until_older_than
from tflock_reaper.adapters.lock_table import DeleteResult, LockTable
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import sweep

pytestmark = pytest.mark.e2e


class LockTableRacedByTerraform(LockTable):
    """Just before the sweep's delete, the stale lock is force-unlocked by real Terraform (GetItem, compare ID,
    unconditional DeleteItem) and, when `retake`, a new real apply takes the same lock."""

    def __init__(self, backend: Backend, workspace: TerraformWorkspace, stale: HeldLock, *, retake: bool) -> None:
        super().__init__(backend.server.client("dynamodb"), backend.table)
        self.workspace = workspace
        self.stale = stale
        self.retake = retake
        self.deletes: list[tuple[str, str]] = []
        self.apply: ApplyHandle | None = None
        self.new_lock: HeldLock | None = None

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> DeleteResult:
        self.deletes.append((lock_path, raw_info))
        unlocked = self.workspace.force_unlock(self.stale.id)
        assert unlocked.returncode == 0, unlocked.output
        if self.retake:
            self.apply = self.workspace.start_apply(sleep=600)
            self.new_lock = self.apply.wait_for_lock()
        return super().delete_if_unchanged(lock_path, raw_info)


@pytest.mark.parametrize("retake", [True, False], ids=["re-acquired", "released"])
def test_lock_changed_between_read_and_delete_is_not_deleted(
    workspace: TerraformWorkspace, backend: Backend, retake: bool
) -> None:
    # Given a stale lock that the policy would reap
    stale = workspace.leave_stale_lock()
    wait_until_older_than(stale, 2)
    policy = parse_policy(policy_yaml((f"{backend.bucket}/*", "gone")))
    table = LockTableRacedByTerraform(backend, workspace, stale, retake=retake)

    # When a sweep reads it, and Terraform releases (and re-takes) it before the sweep's delete
    report = sweep(lock_table=table, state=MemoryStateStore(), policy=policy, mode="enforce")

    # Then the sweep tried to delete exactly the lock it judged ...
    assert table.deletes == [(workspace.lock_path, stale.raw_info)]
    # ... and reports it changed, not reaped
    [entry] = report.to_dict()["locks"]
    assert entry["id"] == stale.id
    assert entry["action"] == "reap"
    assert entry["outcome"] == "changed"
    assert report.summary()["reaped"] == 0

    if retake:
        # And the new holder's lock is still there, its apply still running
        assert table.new_lock is not None
        assert table.apply is not None
        assert table.new_lock.id != stale.id
        assert workspace.lock_item() == {"LockID": {"S": workspace.lock_path}, "Info": {"S": table.new_lock.raw_info}}
        assert table.apply.alive()
        table.apply.terminate()
    assert workspace.lock_item() is None
    assert workspace.digest_item() is not None
