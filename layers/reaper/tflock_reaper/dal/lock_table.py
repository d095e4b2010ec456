"""The Terraform lock table. Read with consistent reads; written only by one conditional delete.

Nothing here ever puts or updates an item: the reaper's IAM role does not even allow it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.dal.errors import AwsAccessError, describe
from tflock_reaper.lock import DynamoItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class DeleteResult:
    """``deleted`` with the item removed, or not deleted with the item found instead (None: gone)."""

    deleted: bool
    item: DynamoItem | None


class LockTable:
    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self._client = client
        self.name = name

    def scan(self) -> Iterator[DynamoItem]:
        """Every item, strongly consistent, page by page."""
        paginator = self._client.get_paginator("scan")
        try:
            for page in paginator.paginate(TableName=self.name, ConsistentRead=True):
                yield from page.get("Items", [])  # type: ignore[misc]
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot scan lock table {self.name!r}: {describe(err)}") from err

    def get(self, lock_path: str) -> DynamoItem | None:
        try:
            response = self._client.get_item(TableName=self.name, Key={"LockID": {"S": lock_path}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read {lock_path!r} from lock table {self.name!r}: {describe(err)}") from err
        item: DynamoItem | None = response.get("Item")  # type: ignore[assignment]
        return item

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> DeleteResult:
        """Delete the lock only if its ``Info`` is still, byte for byte, the one that was judged.

        Terraform's own unlock deletes unconditionally after comparing IDs; a reaper cannot afford that
        race: between our read and this delete the holder may have released and someone else re-acquired.
        A failed condition is not an error: it means the lock changed meanwhile, so it is left alone.
        """
        try:
            response = self._client.delete_item(
                TableName=self.name,
                Key={"LockID": {"S": lock_path}},
                ConditionExpression="#info = :observed",
                ExpressionAttributeNames={"#info": "Info"},
                ExpressionAttributeValues={":observed": {"S": raw_info}},
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                current: DynamoItem | None = err.response.get("Item")  # type: ignore[assignment]
                return DeleteResult(deleted=False, item=current)
            raise AwsAccessError(f"cannot delete {lock_path!r} from {self.name!r}: {describe(err)}") from err
        except BotoCoreError as err:
            raise AwsAccessError(f"cannot delete {lock_path!r} from {self.name!r}: {describe(err)}") from err
        deleted: DynamoItem | None = response.get("Attributes")  # type: ignore[assignment]
        return DeleteResult(deleted=True, item=deleted)
