"""S3-native locking (`use_lockfile = true`): a lockfile left by a SIGKILLed apply is reaped by the CLI, alone
and beside a DynamoDB lock (a dual backend), and Terraform works again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tflab import Backend, policy_yaml, run_reaper, wait_until_older_than
from tflab.terraform import TerraformWorkspace

pytestmark = pytest.mark.e2e

PLAN_BLOCKED = "Error acquiring the state lock"


def test_sweep_reaps_a_killed_apply_lockfile_without_a_lock_table(
    backend: Backend,
    make_workspace: Callable[..., TerraformWorkspace],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a Terraform backend with use_lockfile and no DynamoDB table, and an apply killed while holding its lock
    workspace = make_workspace(use_lockfile=True, dynamodb_table=False)
    stale = workspace.leave_stale_lock()
    held = workspace.lockfile()
    assert held is not None
    assert held[0] == stale.raw_info
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="2s").output
    assert workspace.lock_item() is None  # nothing in the table: the lockfile alone blocks Terraform
    policy = write_policy(policy_yaml((f"{backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the CLI sweeps the bucket (no --table) with both keys turned
    result = run_reaper(
        backend.server, "sweep", "--bucket", backend.bucket, "--policy", str(policy), "--enforce", table=None
    )

    # Then the lockfile lock is judged with the same model and reaped
    assert result.returncode == 0, result
    report = result.json
    assert report["table"] is None
    assert report["buckets"] == f"s3://{backend.bucket}"
    [lock] = report["locks"]
    assert (lock["path"], lock["id"], lock["backend"]) == (workspace.lock_path, stale.id, "s3")
    assert lock["age_basis"] == "server time"
    assert (lock["action"], lock["outcome"]) == ("reap", "reaped"), lock["reasons"]
    assert report["skipped"] == []
    assert workspace.lockfile() is None

    # And terraform plan takes the lock again
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output


def test_sweep_reaps_both_locks_of_a_dual_backend(
    backend: Backend,
    make_workspace: Callable[..., TerraformWorkspace],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a backend with both use_lockfile and dynamodb_table, and an apply killed while holding both locks
    workspace = make_workspace(use_lockfile=True)
    stale = workspace.leave_stale_lock()
    held = workspace.lockfile()
    assert held is not None
    item = workspace.lock_item()
    assert item is not None
    assert held[0] == item["Info"]["S"] == stale.raw_info  # Terraform writes the same LockInfo bytes to both
    digest_before = workspace.digest_item()
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="2s").output
    policy = write_policy(policy_yaml((f"{backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the CLI sweeps the table and the bucket
    result = run_reaper(
        backend.server,
        "sweep",
        "--bucket",
        backend.bucket,
        "--policy",
        str(policy),
        "--enforce",
        table=backend.table,
    )

    # Then one lock is reported, on both backends, and both sides are deleted; the digest is untouched
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert (lock["path"], lock["id"], lock["backend"]) == (workspace.lock_path, stale.id, "dual")
    assert lock["outcome"] == "reaped", lock["reasons"]
    assert workspace.lockfile() is None
    assert workspace.lock_item() is None
    assert workspace.digest_item() == digest_before

    # And terraform plan takes both locks again
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output
