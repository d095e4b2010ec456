"""The S3 bucket and DynamoDB lock table of a Terraform s3 backend, and raw reads of the lock table.

Reads are consistent and return items exactly as DynamoDB holds them (`{"LockID": {"S": ...}, ...}`), so
tests can compare them byte for byte before and after a sweep.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from tflab.server import MotoServer

Item = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Backend:
    server: MotoServer
    bucket: str
    table: str

    def lock_path(self, state_path: str) -> str:
        """`LockID` of the lock on `state_path` (`<bucket>/<state path>`)."""
        return f"{self.bucket}/{state_path}"

    def lock_item(self, lock_path: str) -> Item | None:
        return lock_item(self.server, self.table, lock_path)

    def digest_item(self, lock_path: str) -> Item | None:
        return digest_item(self.server, self.table, lock_path)

    def all_items(self) -> list[Item]:
        return all_items(self.server, self.table)

    def put_item(self, item: Item) -> None:
        self.server.client("dynamodb").put_item(TableName=self.table, Item=item)


@dataclass(frozen=True)
class HeldLock:
    """A lock item as read: `raw_info` is the `Info` string untouched (never re-serialize it)."""

    lock_id: str
    raw_info: str

    @property
    def info(self) -> dict[str, Any]:
        return dict(json.loads(self.raw_info))

    @property
    def id(self) -> str:
        return str(self.info["ID"])

    @classmethod
    def from_item(cls, item: Item) -> HeldLock:
        return cls(lock_id=item["LockID"]["S"], raw_info=item["Info"]["S"])


def create_backend(server: MotoServer, bucket: str = "tf-state", table: str = "tf-locks") -> Backend:
    """Create the state bucket and the lock table the way Terraform users (and Terragrunt) do.

    Table: partition key `LockID` (S) only, PAY_PER_REQUEST, no stream.
    """
    server.client("s3").create_bucket(Bucket=bucket)
    dynamodb = server.client("dynamodb")
    # Already there is fine: creating the backend is idempotent.
    with contextlib.suppress(dynamodb.exceptions.ResourceInUseException):
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return Backend(server=server, bucket=bucket, table=table)


def lockfile(backend: Backend, key: str) -> tuple[str, str] | None:
    """(body, ETag) of the S3 object `key` in the backend's bucket (a `.tflock` lockfile), or None."""
    s3 = backend.server.client("s3")
    try:
        response = s3.get_object(Bucket=backend.bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return response["Body"].read().decode(), str(response["ETag"])


def delete_backend(backend: Backend) -> None:
    """Drop the table and the bucket with its objects (keeps a long session's moto server small)."""
    backend.server.client("dynamodb").delete_table(TableName=backend.table)
    s3 = backend.server.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=backend.bucket):
        for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=backend.bucket, Key=version["Key"], VersionId=version["VersionId"])
    s3.delete_bucket(Bucket=backend.bucket)


def lock_item(server: MotoServer, table: str, lock_path: str) -> Item | None:
    """The raw item with `LockID = lock_path` (consistent read), or None."""
    response = server.client("dynamodb").get_item(
        TableName=table, Key={"LockID": {"S": lock_path}}, ConsistentRead=True
    )
    item = response.get("Item")
    return dict(item) if item else None


def digest_item(server: MotoServer, table: str, lock_path: str) -> Item | None:
    """The raw `<lock_path>-md5` digest item Terraform writes after every state upload, or None."""
    return lock_item(server, table, f"{lock_path}-md5")


def all_items(server: MotoServer, table: str) -> list[Item]:
    """Every item of the table (consistent scan), sorted by LockID."""
    items: list[Item] = []
    paginator = server.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=table, ConsistentRead=True):
        items.extend(page["Items"])
    return sorted(items, key=lambda item: str(item.get("LockID", {}).get("S", "")))


def release_like_terraform(server: MotoServer, table: str, lock_path: str, lock_id: str) -> bool:
    """Release a lock the way Terraform's unlock does: consistent GetItem, compare ID, unconditional DeleteItem.

    (`terraform force-unlock` takes the same path; `TerraformWorkspace.force_unlock` runs the real thing.)
    Returns False when the lock is gone or held under another ID.
    """
    item = lock_item(server, table, lock_path)
    if item is None or "Info" not in item or HeldLock.from_item(item).id != lock_id:
        return False
    server.client("dynamodb").delete_item(TableName=table, Key={"LockID": {"S": lock_path}})
    return True
