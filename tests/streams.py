"""Lambda DynamoDB stream records shaped like the real ones, for lock-table items; what the stream function logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def function_logs(handler: Any) -> Iterator[io.StringIO]:
    """What the stream function (``handler``: its module) logs: Powertools binds its handler to the stdout of import
    time, so it is redirected here.

    The handler copies its logging config onto the `tflock_reaper` logger (handlers, no propagation): restored
    afterwards, so that later tests capturing `tflock_reaper.*` records through the root still can.
    """
    package_logger = logging.getLogger("tflock_reaper")
    saved = (list(package_logger.handlers), package_logger.propagate, package_logger.level)
    buffer = io.StringIO()
    previous = handler.logger.registered_handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.logger.registered_handler.setStream(previous)
        package_logger.handlers[:], package_logger.propagate = saved[0], saved[1]
        package_logger.setLevel(saved[2])


def logged_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines with an ``event`` field (the audit's), in order."""
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if "event" in line]
