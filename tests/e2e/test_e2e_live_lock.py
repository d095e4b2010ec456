"""A lock held by an apply that is still running is never reaped while nothing proves its holder gone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from tflab import CliResult, TerraformWorkspace, policy_yaml, wait_until_older_than

pytestmark = pytest.mark.e2e


def test_live_lock_with_unknown_holder_is_only_warned_about(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given an apply that is running and holds the lock past reap_after, under a policy that enforces but
    # declares no holder check (the default, holder: {assume: unknown})
    apply = workspace.start_apply(sleep=600)
    held = apply.wait_for_lock()
    policy = write_policy(policy_yaml())
    wait_until_older_than(held, 2)

    # When the sweep runs with enforce
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then the lock is judged stale but blocked, not reaped
    assert result.returncode == 0, result
    assert result.json["mode"] == "enforce"
    [lock] = result.json["locks"]
    assert lock["id"] == held.id
    assert lock["action"] == "warn"
    assert lock["outcome"] == "blocked"
    assert any("unknown" in reason for reason in lock["reasons"]), lock["reasons"]
    assert result.json["summary"]["reaped"] == 0

    # And the lock item is exactly as it was, its apply still running
    item = workspace.lock_item()
    assert item is not None
    assert item["Info"]["S"] == held.raw_info
    assert apply.alive()

    # Finally: interrupting the apply lets Terraform release its own lock
    apply.terminate()
    assert workspace.lock_item() is None


def test_live_lock_younger_than_reap_after_is_warned(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a running apply whose lock is past warn_after but not reap_after, even with holder: gone
    apply = workspace.start_apply(sleep=600)
    held = apply.wait_for_lock()
    policy = write_policy(policy_yaml((f"{workspace.backend.bucket}/*", "gone"), warn_after="1s", reap_after="10m"))
    wait_until_older_than(held, 1)

    # When the sweep runs with enforce
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then it is a warning only and the lock stays
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert (lock["action"], lock["outcome"]) == ("warn", "warned")
    assert workspace.lock_item() == {"LockID": {"S": workspace.lock_path}, "Info": {"S": held.raw_info}}
    assert apply.alive()
    apply.terminate()
