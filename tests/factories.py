"""Lock-table items shaped exactly as Terraform 1.15 writes them (see shared/TERRAFORM_LOCKING.md)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def go_time(when: datetime) -> str:
    """RFC 3339 the way Go's RFC3339Nano prints it: trailing zeros trimmed, no dot when zero, Z."""
    text = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def lock_info(
    path: str = "tf-state/dev/network/terraform.tfstate",
    *,
    created: datetime | str | None = None,
    who: str = "runner@ci-host-1",
    operation: str = "OperationTypeApply",
    lock_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "ID": lock_id or str(uuid.uuid4()),
        "Operation": operation,
        "Info": "",
        "Who": who,
        "Version": "1.15.5",
        "Created": created if isinstance(created, str) else go_time(created or NOW - timedelta(hours=3)),
        "Path": path,
    }
    info.update(overrides)
    return info


def lock_item(path: str = "tf-state/dev/network/terraform.tfstate", **kwargs: Any) -> dict[str, Any]:
    info = lock_info(path, **kwargs)
    return {"LockID": {"S": path}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}


def digest_item(path: str = "tf-state/dev/network/terraform.tfstate") -> dict[str, Any]:
    return {"LockID": {"S": path + "-md5"}, "Digest": {"S": "9f86d081884c7d659a2feaa0c55ad015"}}
