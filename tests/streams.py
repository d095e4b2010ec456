"""Lambda DynamoDB stream records shaped like the real ones, for lock-table items."""

from __future__ import annotations

from datetime import datetime
from itertools import count
from typing import Any

_SEQUENCE = count(100000000000000000000)
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks/stream/2026-11-26T00:00:00.000"


def stream_record(
    event_name: str,
    *,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    at: datetime,
    ttl: bool = False,
    sequence: str | None = None,
) -> dict[str, Any]:
    item = new or old
    assert item is not None
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": int(at.timestamp()),
        "Keys": {"LockID": item["LockID"]},
        "SequenceNumber": sequence or str(next(_SEQUENCE)),
        "SizeBytes": 200,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        body["NewImage"] = new
    if old is not None:
        body["OldImage"] = old
    record: dict[str, Any] = {
        "eventID": f"evt-{body['SequenceNumber']}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": STREAM_ARN,
    }
    if ttl:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record
