"""Operator-only table administration: turning on the lock tables' streams for the audit, and letting another
account's stream function read a stream (the stream's resource-based policy).

Never used by the deployed functions (their roles cannot ``UpdateTable`` nor ``PutResourcePolicy``): it runs with the
operator's credentials from the CLI. It changes a table's stream configuration and a stream's policy, never an item.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import AwsAccessError, describe

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

REQUIRED_VIEW: Final = "NEW_AND_OLD_IMAGES"
#: The statement of a stream's resource-based policy that this tool owns: it is replaced whole on each grant, and
#: every other statement of the policy is kept as it is.
GRANT_SID: Final = "TflockReaperAuditRead"
#: What a Lambda event source mapping in another account needs on the stream, as AWS documents it (ListStreams is
#: not an action on a stream: the mapping's own role is granted it in its account).
STREAM_READ_ACTIONS: Final = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}$")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")


@dataclass(frozen=True)
class StreamStatus:
    enabled: bool
    view_type: str | None
    arn: str | None
    changed: bool = False
    kms_key_arn: str | None = None
    """The KMS key the table is encrypted with, when it is a KMS key (None: the AWS owned key, DynamoDB's default)."""


class StreamConfigError(Exception):
    """The table has a stream the audit cannot use; changing it could break another consumer."""


def stream_status(client: DynamoDBClient, table: str) -> StreamStatus:
    try:
        description = client.describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError) as err:
        raise AwsAccessError(f"cannot describe lock table {table!r}: {describe(err)}") from err
    spec: dict[str, Any] = dict(description.get("StreamSpecification") or {})
    enabled = bool(spec.get("StreamEnabled"))
    sse: dict[str, Any] = dict(description.get("SSEDescription") or {})
    return StreamStatus(
        enabled,
        spec.get("StreamViewType") if enabled else None,
        description.get("LatestStreamArn"),
        kms_key_arn=sse.get("KMSMasterKeyArn") if sse.get("SSEType") == "KMS" else None,
    )


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
            return StreamStatus(
                status.enabled, status.view_type, status.arn, changed=True, kms_key_arn=status.kms_key_arn
            )
        time.sleep(1)


def reader_principal(reader: str, partition: str = "aws") -> str:
    """The IAM principal a stream's policy names for ``reader``: a role ARN as given (the stack's StreamRoleArn), or a
    12-digit account ID as that account's root (its own IAM then decides which of its roles may read), in the
    stream's ``partition``."""
    if _ROLE_ARN.match(reader):
        return reader
    if _ACCOUNT_ID.match(reader):
        return f"arn:{partition}:iam::{reader}:root"
    raise StreamConfigError(
        f"--grant-read-to {reader!r} is neither an IAM role ARN (arn:aws:iam::<account>:role/<name>: the tflock-reaper "
        "stack's StreamRoleArn output) nor a 12-digit account ID"
    )


def read_statement(stream_arn: str, principals: Sequence[str]) -> dict[str, Any]:
    """The statement that lets ``principals`` (another account's stream function) read the stream."""
    listed = sorted(set(principals))
    return {
        "Sid": GRANT_SID,
        "Effect": "Allow",
        "Principal": {"AWS": listed[0] if len(listed) == 1 else listed},
        "Action": list(STREAM_READ_ACTIONS),
        "Resource": stream_arn,
    }


def merged_policy(current: str | None, statement: dict[str, Any]) -> str:
    """``current`` (a policy document, or None) with its :data:`GRANT_SID` statement replaced by ``statement`` and
    every other statement kept."""
    document: dict[str, Any] = json.loads(current) if current else {"Version": "2012-10-17", "Statement": []}
    statements = document.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    kept = [s for s in statements if s.get("Sid") != GRANT_SID]
    document["Statement"] = [*kept, statement]
    return json.dumps(document, sort_keys=True)


def grant_stream_read(client: DynamoDBClient, stream_arn: str, principals: Sequence[str]) -> bool:
    """Let ``principals`` read the stream through its resource-based policy (DynamoDB ``PutResourcePolicy`` on the
    stream ARN), keeping the policy's other statements. Idempotent: False when the policy already says so.

    The write is conditional on the policy read (its revision, or none at all), so that a policy changed meanwhile
    by someone else is never overwritten: that fails, and running it again reads the new one."""
    statement = read_statement(stream_arn, principals)
    try:
        current = client.get_resource_policy(ResourceArn=stream_arn)
        document: str | None = current["Policy"]
        revision = current["RevisionId"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "PolicyNotFoundException":
            raise AwsAccessError(f"cannot read the policy of stream {stream_arn}: {describe(err)}") from err
        document, revision = None, "NO_POLICY"
    except BotoCoreError as err:
        raise AwsAccessError(f"cannot read the policy of stream {stream_arn}: {describe(err)}") from err
    if document and statement in _statements(document):
        return False
    try:
        client.put_resource_policy(
            ResourceArn=stream_arn, Policy=merged_policy(document, statement), ExpectedRevisionId=revision
        )
    except (ClientError, BotoCoreError) as err:
        raise AwsAccessError(f"cannot set the policy of stream {stream_arn}: {describe(err)}") from err
    return True


def aws_managed_key(kms_client: Any, key_arn: str) -> bool | None:
    """Whether ``key_arn`` is an AWS managed key (aws/dynamodb), with which AWS does not support cross-account
    reads through a resource-based policy; None when the key cannot be described (the caller warns)."""
    try:
        metadata = kms_client.describe_key(KeyId=key_arn)["KeyMetadata"]
    except (ClientError, BotoCoreError):
        return None
    return bool(metadata.get("KeyManager") == "AWS")


def _statements(document: str) -> list[dict[str, Any]]:
    statements = json.loads(document).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)
