"""A lock table holding malformed and foreign items beside a real stale lock: the sweep completes, reaps the
real lock, reports every malformed item as skipped, and deletes nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tflab import Backend, CliResult, Item, TerraformWorkspace, policy_yaml, wait_until_older_than

pytestmark = pytest.mark.e2e


def _go_time(when: datetime) -> str:
    """RFC 3339 the way Terraform writes Created (UTC, fractional seconds, Z)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _info(path: str, *, created: str, **overrides: object) -> str:
    info: dict[str, object] = {
        "ID": "3f1b5c1e-0000-4000-8000-00000000beef",
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "ci@runner-7f9c",
        "Version": "1.15.5",
        "Created": created,
        "Path": path,
    }
    info.update(overrides)
    return json.dumps(info, separators=(",", ":"))


def _lock(path: str, info: str, **extra: dict[str, str]) -> Item:
    return {"LockID": {"S": path}, "Info": {"S": info}, **extra}


def foreign_items(bucket: str) -> tuple[list[Item], dict[str, str]]:
    """(items, {LockID: a word its skip reason must contain, or "" for any reason}); digests are not skipped.

    Every would-be lock is a day old and matched by a `holder: gone` rule: read as a lock, it would be reaped.
    """
    now = datetime.now(UTC)
    old = _go_time(now - timedelta(days=1))
    p = f"{bucket}/foreign"
    items: list[Item] = [
        _lock(f"{p}/bad-json.tfstate", '{"ID":"8a3c", "Operation": '),
        {"LockID": {"S": f"{p}/info-number.tfstate"}, "Info": {"N": "42"}},
        _lock(f"{p}/missing-fields.tfstate", json.dumps({"ID": "8a3c", "Path": f"{p}/missing-fields.tfstate"})),
        _lock(f"{p}/created-garbage.tfstate", _info(f"{p}/created-garbage.tfstate", created="yesterday at noon")),
        _lock(
            f"{p}/created-future.tfstate",
            _info(f"{p}/created-future.tfstate", created=_go_time(now + timedelta(days=1))),
        ),
        {"LockID": {"S": f"{p}/only-lockid.tfstate"}},
        _lock(f"{p}/extra-attr.tfstate", _info(f"{p}/extra-attr.tfstate", created=old), Owner={"S": "team-a"}),
        _lock(f"{p}/path-mismatch.tfstate", _info(f"{bucket}/elsewhere.tfstate", created=old)),
        _lock(f"{p}/info-array.tfstate", "[1, 2, 3]"),
        # Foreign but legitimate: a digest for a state key ending in -md5, and a Terragrunt-migrated digest.
        {"LockID": {"S": f"{p}/x-md5"}, "Digest": {"S": "0123456789abcdef0123456789abcdef"}},
        {"LockID": {"S": f"{p}/terragrunt/terraform.tfstate-md5"}},
    ]
    skipped = {
        f"{p}/bad-json.tfstate": "JSON",
        f"{p}/info-number.tfstate": "",
        f"{p}/missing-fields.tfstate": "",
        f"{p}/created-garbage.tfstate": "Created",
        f"{p}/created-future.tfstate": "future",
        f"{p}/only-lockid.tfstate": "",
        f"{p}/extra-attr.tfstate": "Owner",
        f"{p}/path-mismatch.tfstate": "Path",
        f"{p}/info-array.tfstate": "",
    }
    return items, skipped


def test_sweep_skips_malformed_and_foreign_items_and_reaps_only_the_real_stale_lock(
    workspace: TerraformWorkspace,
    backend: Backend,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a real stale lock and a table seeded with malformed and foreign items
    stale = workspace.leave_stale_lock()
    items, expected_skipped = foreign_items(backend.bucket)
    for item in items:
        backend.put_item(item)
    table_before = backend.all_items()
    policy = write_policy(policy_yaml((f"{backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the CLI sweeps with enforce
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then the sweep completes and reaps the one real stale lock
    assert result.returncode == 0, result
    report = result.json
    assert [(lk["path"], lk["id"], lk["outcome"]) for lk in report["locks"]] == [
        (workspace.lock_path, stale.id, "reaped")
    ]

    # And every malformed item is reported as skipped, with a reason
    reasons = {entry["lock_id"]: entry["reason"] for entry in report["skipped"]}
    assert sorted(reasons) == sorted(expected_skipped)
    assert len(report["skipped"]) == len(expected_skipped)
    for lock_id, word in expected_skipped.items():
        assert reasons[lock_id].strip(), lock_id
        assert word.lower() in reasons[lock_id].lower(), (lock_id, reasons[lock_id])
    # The real digest, the x-md5 digest and the Terragrunt one are digests, neither locks nor skipped
    assert report["summary"]["digests"] == 3
    assert report["summary"]["skipped"] == len(expected_skipped)

    # And the table is identical apart from the real stale lock
    assert backend.all_items() == [i for i in table_before if i["LockID"]["S"] != workspace.lock_path]
    assert workspace.plan(lock_timeout="2s").returncode == 0
