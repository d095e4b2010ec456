"""The lab's own claims, proven against real Terraform: what other e2e tests build on."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from tflab import Backend, TerraformFailedError, TerraformWorkspace, all_items

pytestmark = pytest.mark.e2e

LOCK_INFO_KEYS = ["ID", "Operation", "Info", "Who", "Version", "Created", "Path"]
UUID_SHAPED = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def test_backend_table_is_shaped_like_terraform_users_make_it(session_backend: Backend) -> None:
    # Given the conventional backend / When described
    table = session_backend.server.client("dynamodb").describe_table(TableName=session_backend.table)["Table"]

    # Then: LockID (S) as the only key, on-demand, no stream
    assert table["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert "StreamSpecification" not in table or not table["StreamSpecification"].get("StreamEnabled")


def test_apply_writes_a_digest_and_releases_its_lock(workspace: TerraformWorkspace) -> None:
    # When
    workspace.apply()

    # Then: the permanent -md5 digest item exists and no lock is left
    assert workspace.lock_item() is None
    digest = workspace.digest_item()
    assert digest is not None
    assert set(digest) == {"LockID", "Digest"}
    assert re.fullmatch(r"[0-9a-f]{32}", digest["Digest"]["S"])
    assert workspace.plan().returncode == 0


def test_killed_apply_leaves_a_stale_lock_that_blocks_plan(workspace: TerraformWorkspace) -> None:
    # Given a state that has been applied once (so its digest exists)
    workspace.apply()
    digest_before = workspace.digest_item()

    # When an apply holding the lock is SIGKILLed with its whole process group
    apply = workspace.start_apply(sleep=600)
    held = apply.wait_for_lock()
    apply.kill()

    # Then the lock item stays, in the documented shape
    assert not apply.alive()
    item = workspace.lock_item()
    assert item is not None
    assert set(item) == {"LockID", "Info"}
    assert item["LockID"]["S"] == workspace.lock_path == f"{workspace.backend.bucket}/dev/network/terraform.tfstate"
    assert item["Info"]["S"] == held.raw_info
    info = json.loads(item["Info"]["S"])
    assert list(info) == LOCK_INFO_KEYS
    assert info["Path"] == item["LockID"]["S"]
    assert info["Operation"] == "OperationTypeApply"
    assert info["Info"] == ""
    assert UUID_SHAPED.fullmatch(info["ID"])
    assert re.fullmatch(r"[^@]*@.+", info["Who"])
    assert info["Created"].endswith("Z")
    created = datetime.fromisoformat(info["Created"])
    assert abs((datetime.now(UTC) - created).total_seconds()) < 120

    # And terraform plan cannot take the lock
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode != 0
    assert "Error acquiring the state lock" in plan.output
    assert info["ID"] in plan.output

    # And the digest was not touched by the killed apply's lock (it only changes on state uploads)
    assert workspace.digest_item() == digest_before


def test_conditional_delete_of_the_stale_lock_lets_plan_run_and_keeps_the_digest(
    workspace: TerraformWorkspace,
) -> None:
    # Given a stale lock
    workspace.apply()
    apply = workspace.start_apply(sleep=600)
    apply.wait_for_lock()
    apply.kill()
    item = workspace.lock_item()
    assert item is not None
    digest_before = workspace.digest_item()
    assert digest_before is not None

    # When it is deleted on condition that Info is still the one observed
    workspace.backend.server.client("dynamodb").delete_item(
        TableName=workspace.backend.table,
        Key={"LockID": item["LockID"]},
        ConditionExpression="Info = :info",
        ExpressionAttributeValues={":info": item["Info"]},
    )

    # Then the digest is unchanged and plan works again
    assert workspace.lock_item() is None
    assert workspace.digest_item() == digest_before
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output
    assert workspace.digest_item() == digest_before


def test_interrupted_apply_releases_its_lock(workspace: TerraformWorkspace) -> None:
    # Given a running apply holding the lock
    apply = workspace.start_apply(sleep=600)
    apply.wait_for_lock()

    # When it is interrupted once (SIGINT), as a person pressing Ctrl-C
    apply.terminate()

    # Then Terraform released its lock itself
    assert not apply.alive()
    assert workspace.lock_item() is None


def test_start_apply_on_a_held_lock_fails_instead_of_reporting_the_old_lock(
    workspace: TerraformWorkspace,
) -> None:
    # Given a stale lock
    first = workspace.start_apply(sleep=600)
    first.wait_for_lock()
    first.kill()

    # When another apply starts, Then wait_for_lock does not mistake the old lock for its own
    second = workspace.start_apply(sleep=600)
    with pytest.raises(TerraformFailedError, match="Error acquiring the state lock"):
        second.wait_for_lock(timeout=30)


def test_force_unlock_releases_a_stale_lock(workspace: TerraformWorkspace) -> None:
    apply = workspace.start_apply(sleep=600)
    held = apply.wait_for_lock()
    apply.kill()

    result = workspace.force_unlock(held.id)

    assert result.returncode == 0, result.output
    assert workspace.lock_item() is None


def test_workspace_locks_live_under_the_env_prefix(workspace: TerraformWorkspace) -> None:
    # Given a new Terraform workspace "dev"
    workspace.workspace_new("dev")
    bucket = workspace.backend.bucket
    expected = f"{bucket}/env:/dev/dev/network/terraform.tfstate"
    assert workspace.lock_path == expected

    # When an apply there is killed
    apply = workspace.start_apply(sleep=600)
    held = apply.wait_for_lock()
    apply.kill()

    # Then its lock (and digest) use the env:/<workspace>/<key> state path
    assert held.lock_id == expected
    assert held.info["Path"] == expected
    ids = [item["LockID"]["S"] for item in all_items(workspace.backend.server, workspace.backend.table)]
    assert expected in ids
    assert f"{expected}-md5" in ids
    assert "Error acquiring the state lock" in workspace.plan(lock_timeout="1s").output
