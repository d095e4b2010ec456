"""A stale lock left by a SIGKILLed `terraform apply` is reaped by the CLI, and Terraform works again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tflab import CliResult, TerraformWorkspace, policy_yaml, wait_until_older_than

pytestmark = pytest.mark.e2e

PLAN_BLOCKED = "Error acquiring the state lock"


def test_sweep_enforce_reaps_a_killed_apply_lock_and_terraform_plans_again(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given an apply killed with SIGKILL: its lock stays and blocks terraform plan
    stale = workspace.leave_stale_lock()
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="2s").output
    digest_before = workspace.digest_item()
    assert digest_before is not None
    items_before = workspace.backend.all_items()
    policy = write_policy(policy_yaml((f"{workspace.backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the CLI sweeps with both keys turned (policy mode: enforce, --enforce)
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then it reports the lock reaped
    assert result.returncode == 0, result
    report = result.json
    assert report["mode"] == "enforce"
    [lock] = report["locks"]
    assert lock["path"] == workspace.lock_path
    assert lock["id"] == stale.id
    assert lock["who"] == stale.info["Who"]
    assert lock["operation"] == "OperationTypeApply"
    assert lock["age_seconds"] >= 2
    assert lock["action"] == "reap"
    assert lock["outcome"] == "reaped"
    assert lock["reasons"]
    assert report["skipped"] == []
    assert report["summary"]["reaped"] == 1

    # And exactly the lock item is gone: the -md5 digest is byte-for-byte unchanged
    assert workspace.lock_item() is None
    assert workspace.digest_item() == digest_before
    assert workspace.backend.all_items() == [i for i in items_before if i["LockID"]["S"] != workspace.lock_path]

    # And terraform plan takes the lock again
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output
    assert workspace.digest_item() == digest_before


def test_dry_run_sweep_only_reports_what_it_would_reap(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a stale lock and a policy that says mode: enforce
    stale = workspace.leave_stale_lock()
    items_before = workspace.backend.all_items()
    policy = write_policy(policy_yaml((f"{workspace.backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When `locks`, `explain` and `sweep` run without --enforce (only one of the two keys)
    listed = reaper("locks", "--policy", str(policy))
    explained = reaper("explain", "--policy", str(policy), workspace.lock_path)
    swept = reaper("sweep", "--policy", str(policy))
    text = reaper("sweep", "--policy", str(policy), json=False)

    # Then each reports the reap it would do, and nothing is deleted
    for result in (listed, explained, swept, text):
        assert result.returncode == 0, result
    assert [(lk["path"], lk["outcome"]) for lk in listed.json["locks"]] == [(workspace.lock_path, "would-reap")]
    assert explained.json["id"] == stale.id
    assert explained.json["outcome"] == "would-reap"
    assert swept.json["mode"] == "dry-run"
    [lock] = swept.json["locks"]
    assert (lock["action"], lock["outcome"]) == ("reap", "would-reap")
    assert workspace.lock_path in text.stdout
    assert "would-reap" in text.stdout
    assert workspace.backend.all_items() == items_before


def test_enforce_flag_alone_does_not_reap_under_a_dry_run_policy(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a stale lock and a policy still in mode: dry-run
    stale = workspace.leave_stale_lock()
    items_before = workspace.backend.all_items()
    policy = write_policy(policy_yaml((f"{workspace.backend.bucket}/*", "gone"), mode="dry-run"))
    wait_until_older_than(stale, 2)

    # When the sweep is run with --enforce
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then it is refused as a configuration error and nothing is deleted
    assert result.returncode == 2, result
    assert "mode" in result.stderr
    assert workspace.backend.all_items() == items_before


def test_workspace_lock_is_reaped_like_any_other(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a default-workspace state, and a stale lock in workspace "dev" (env:/dev/<key>)
    workspace.apply()
    default_digest = workspace.digest_item()
    workspace.workspace_new("dev")
    stale = workspace.leave_stale_lock()
    expected_path = f"{workspace.backend.bucket}/env:/dev/dev/network/terraform.tfstate"
    assert stale.lock_id == workspace.lock_path == expected_path
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="1s").output
    dev_digest = workspace.digest_item()
    assert dev_digest is not None
    policy = write_policy(policy_yaml((f"{workspace.backend.bucket}/env:/dev/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the CLI sweeps with enforce
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then the workspace lock is reaped and both digests are untouched
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert lock["path"] == expected_path
    assert lock["id"] == stale.id
    assert lock["workspace"] == "dev"
    assert lock["outcome"] == "reaped"
    assert workspace.lock_item() is None
    assert workspace.digest_item() == dev_digest
    assert workspace.backend.digest_item(f"{workspace.backend.bucket}/dev/network/terraform.tfstate") == (
        default_digest
    )

    # And terraform plan works again in the dev workspace
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output
