"""Operator-only table administration: turning on the lock table's stream for the audit.

Never used by the deployed functions (their roles cannot ``UpdateTable``): it runs with the operator's
credentials from the CLI. It changes the table's configuration, never an item.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import AwsAccessError, describe

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REQUIRED_VIEW: Final = "NEW_AND_OLD_IMAGES"


@dataclass(frozen=True)
class StreamStatus:
    enabled: bool
    view_type: str | None
    arn: str | None
    changed: bool = False


class StreamConfigError(Exception):
    """The table has a stream the audit cannot use; changing it could break another consumer."""


def stream_status(client: DynamoDBClient, table: str) -> StreamStatus:
    try:
        description = client.describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError) as err:
        raise AwsAccessError(f"cannot describe lock table {table!r}: {describe(err)}") from err
    spec: dict[str, Any] = dict(description.get("StreamSpecification") or {})
    enabled = bool(spec.get("StreamEnabled"))
    return StreamStatus(enabled, spec.get("StreamViewType") if enabled else None, description.get("LatestStreamArn"))


def enable_stream(client: DynamoDBClient, table: str, *, wait_seconds: float = 60.0) -> StreamStatus:
    """Idempotent: a stream with the right view type is left as it is; one with another view type is refused."""
    status = stream_status(client, table)
    if status.enabled and status.view_type == REQUIRED_VIEW:
        return status
    if status.enabled:
        raise StreamConfigError(
            f"lock table {table!r} already has a stream of view type {status.view_type}; the audit needs "
            f"{REQUIRED_VIEW}. Changing it would cut off its current consumers, so it is left alone: "
            "disable it and run this again if nothing else reads it."
        )
    try:
        client.update_table(
            TableName=table, StreamSpecification={"StreamEnabled": True, "StreamViewType": REQUIRED_VIEW}
        )
    except (ClientError, BotoCoreError) as err:
        raise AwsAccessError(f"cannot enable the stream of {table!r}: {describe(err)}") from err
    deadline = time.monotonic() + wait_seconds
    while True:
        status = stream_status(client, table)
        if status.arn or time.monotonic() > deadline:
            return StreamStatus(status.enabled, status.view_type, status.arn, changed=True)
        time.sleep(1)
