"""The Terraform lock table. Read with consistent reads; written only by one conditional delete.

Nothing here ever puts or updates an item: the reaper's IAM role does not even allow it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.batch_get import batch_get
from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.domain.lock import DynamoItem

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class DeleteResult:
    """``deleted`` with the item removed, or not deleted with the item found instead (None: gone)."""

    deleted: bool
    item: DynamoItem | None


#: A Scan page holds at most 1 MB; each parallel segment is given about this much of the table to read.
SEGMENT_BYTES = 2 * 1024 * 1024
#: Parallel segments at most (and threads): beyond this a sweep's time is the Lambda's network, not the pages.
MAX_SEGMENTS = 16


#: An incremental read's unprocessed keys (throttling) are asked again, with a growing pause.
BATCH_GET_ATTEMPTS = 6
BATCH_GET_BACKOFF = 0.05


#: How long a warm process keeps a table's segment count: DynamoDB refreshes TableSizeBytes about every 6 hours.
SIZE_CACHE_SECONDS = 3600.0
_SEGMENTS: dict[tuple[str, str | None, str], tuple[float, str, int, int]] = {}


def segments_for(table_size_bytes: int) -> int:
    """Parallel Scan segments for a table of this size: one per ``SEGMENT_BYTES`` (two pages), 1 to 16."""
    return max(1, min(MAX_SEGMENTS, math.ceil(table_size_bytes / SEGMENT_BYTES)))


class LockTable:
    """``segments``: parallel Scan segments; None chooses them from the table's size (one DescribeTable)."""

    def __init__(self, client: DynamoDBClient, name: str, *, segments: int | None = None) -> None:
        self._client = client
        self.name = name
        self.segments = segments
        self._arn: str | None = None
        self._size = 0

    @property
    def arn(self) -> str | None:
        """The table's ARN (account, region, name): read with :meth:`describe` the first time it is asked for (a
        warm process keeps it). Raises :class:`AwsAccessError` when the table cannot be described."""
        if self._arn is None:
            self.describe()
        return self._arn

    def describe(self) -> tuple[str, int]:
        """(ARN, parallel Scan segments from the table's size), from DescribeTable.

        TableSizeBytes is refreshed by DynamoDB about every six hours: good enough to size a scan, and kept by a
        warm process for an hour (with the ARN, which never changes) so that most sweeps make no DescribeTable call.
        """
        key = (self._client.meta.region_name, self._client.meta.endpoint_url, self.name)
        cached = _SEGMENTS.get(key)
        if cached is None or time.monotonic() - cached[0] >= SIZE_CACHE_SECONDS:
            table = self._describe_table()
            size = int(table.get("TableSizeBytes", 0))
            cached = (time.monotonic(), str(table["TableArn"]), segments_for(size), size)
            _SEGMENTS[key] = cached
        self._arn = cached[1]
        self._size = cached[3]
        return cached[1], cached[2]

    def _describe_table(self) -> dict[str, Any]:
        try:
            return dict(self._client.describe_table(TableName=self.name)["Table"])
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot describe lock table {self.name!r}: {describe(err)}") from err

    def size_bytes(self) -> int:
        """The table's size as DynamoDB last published it (about every six hours; see :meth:`describe`)."""
        self.describe()
        return self._size

    def latest_stream_arn(self) -> str | None:
        """The table's current stream, if enabled: read now (DescribeTable, free of charge), never from a cache,
        since a stream turned off and on again is a new stream that no consumer may read yet."""
        table = self._describe_table()
        self._arn = str(table["TableArn"])
        enabled = table.get("StreamSpecification", {}).get("StreamEnabled", False)
        stream = table.get("LatestStreamArn")
        return str(stream) if enabled and stream else None

    def _segments(self) -> int:
        _, sized = self.describe()
        if self.segments is not None:
            return max(1, min(MAX_SEGMENTS, self.segments))
        return sized

    def _scan_segment(self, segment: int, total: int) -> list[DynamoItem]:
        kwargs: dict[str, Any] = {"Segment": segment, "TotalSegments": total} if total > 1 else {}
        items: list[DynamoItem] = []
        for page in self._client.get_paginator("scan").paginate(TableName=self.name, ConsistentRead=True, **kwargs):
            items.extend(page.get("Items", []))  # type: ignore[arg-type]
        return items

    def scan(self) -> Iterator[DynamoItem]:
        """Every item, strongly consistent; a large table in parallel segments. A failed page fails the scan."""
        total = self._segments()
        try:
            if total == 1:
                yield from self._scan_segment(0, 1)
                return
            with ThreadPoolExecutor(max_workers=total, thread_name_prefix="scan") as pool:
                for items in pool.map(self._scan_segment, range(total), [total] * total):
                    yield from items
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot scan lock table {self.name!r}: {describe(err)}") from err

    def read(self, lock_paths: Sequence[str]) -> list[DynamoItem]:
        """The items at ``lock_paths`` (those that exist), strongly consistent: one BatchGetItem per 100 paths (the
        API's maximum), several at a time. What an incremental sweep reads instead of a Scan."""
        keys = [{"LockID": {"S": path}} for path in sorted(set(lock_paths))]
        self.describe()
        try:
            items = batch_get(
                self._client,
                self.name,
                keys,
                workers=MAX_SEGMENTS,
                attempts=BATCH_GET_ATTEMPTS,
                backoff=BATCH_GET_BACKOFF,
                label=f"lock table {self.name!r}",
            )
        except (ClientError, BotoCoreError) as err:
            raise AwsAccessError(f"cannot read locks from lock table {self.name!r}: {describe(err)}") from err
        return items

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
