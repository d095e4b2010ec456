"""The lock table's DynamoDB stream on the moto server, read back and shaped as Lambda delivers it.

`enable_stream(backend)` turns on a `NEW_AND_OLD_IMAGES` stream, the way a user would on a Terraform lock
table that was made without one (`aws dynamodb update-table --stream-specification ...`). A `StreamReader`
reads every record written so far from every shard through the server's DynamoDB Streams API
(`describe_stream`, `get_shard_iterator`, `get_records`), continuing where its previous read stopped, and
`to_lambda_event` turns the records into the event a stream function receives.

What moto's stream differs on, and what `to_lambda_event` does about it:

- `ApproximateCreationDateTime`: moto stamps milliseconds; AWS rounds it down to the second, and Lambda
  delivers it as epoch seconds. `to_lambda_event` floors to whole seconds (`fractional=True` keeps moto's
  milliseconds). `CapturedRecord.server_time` keeps moto's precise time, for tests that need it.
- `eventVersion` is "1.0" in moto, "1.1" in Lambda's events; moto has no `eventSourceARN` (Lambda adds it
  from the event source mapping): both are set here.
- moto writes a `MODIFY` record for a `PutItem` that changes nothing (AWS writes none), and never writes the
  `userIdentity` of TTL deletions (it does not run TTL).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tflab.backend import Backend, Item
from tflab.server import MotoServer

STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
#: Lambda's DynamoDB stream events carry this `eventVersion`.
LAMBDA_EVENT_VERSION = "1.1"


def enable_stream(backend: Backend, view_type: str = STREAM_VIEW_TYPE) -> str:
    """Turn on the lock table's stream (idempotent); return its ARN.

    A stream already on with another view type is an error: the audit needs both images.
    """
    dynamodb = backend.server.client("dynamodb")
    table = dynamodb.describe_table(TableName=backend.table)["Table"]
    spec = table.get("StreamSpecification") or {}
    if spec.get("StreamEnabled"):
        if spec.get("StreamViewType") != view_type:
            raise ValueError(f"{backend.table} already streams {spec.get('StreamViewType')}, not {view_type}")
        return str(table["LatestStreamArn"])
    response = dynamodb.update_table(
        TableName=backend.table, StreamSpecification={"StreamEnabled": True, "StreamViewType": view_type}
    )
    return str(response["TableDescription"]["LatestStreamArn"])


@dataclass(frozen=True)
class CapturedRecord:
    """One stream record as `get_records` returned it (boto3's shapes), and the stream it came from."""

    raw: dict[str, Any]
    stream_arn: str

    @property
    def event_name(self) -> str:
        return str(self.raw["eventName"])

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.raw["dynamodb"])

    @property
    def lock_id(self) -> str:
        return str(self.body["Keys"]["LockID"]["S"])

    @property
    def new_image(self) -> Item | None:
        return self.body.get("NewImage")

    @property
    def old_image(self) -> Item | None:
        return self.body.get("OldImage")

    @property
    def image(self) -> Item | None:
        """The item as written (`NewImage`), or as it was when removed (`OldImage`)."""
        return self.old_image if self.event_name == "REMOVE" else self.new_image

    @property
    def sequence_number(self) -> str:
        return str(self.body["SequenceNumber"])

    @property
    def server_time(self) -> datetime:
        """`ApproximateCreationDateTime` as the stream gave it (boto3 parses it to an aware datetime)."""
        value = self.body["ApproximateCreationDateTime"]
        if not isinstance(value, datetime):
            raise TypeError(f"ApproximateCreationDateTime is {type(value).__name__}, expected a datetime")
        return value

    def to_lambda_record(self, *, fractional: bool = False) -> dict[str, Any]:
        """The record exactly as Lambda hands it to a stream function (keys in Lambda's order)."""
        body = self.body
        epoch = self.server_time.timestamp()
        dynamodb: dict[str, Any] = {
            # AWS rounds this down to the second, and Lambda sends it as epoch seconds.
            "ApproximateCreationDateTime": round(epoch, 3) if fractional else math.floor(epoch),
            "Keys": body["Keys"],
        }
        for image in ("NewImage", "OldImage"):
            if image in body:
                dynamodb[image] = body[image]
        dynamodb["SequenceNumber"] = str(body["SequenceNumber"])
        dynamodb["SizeBytes"] = int(body["SizeBytes"])
        dynamodb["StreamViewType"] = str(body["StreamViewType"])
        record: dict[str, Any] = {
            "eventID": self.raw["eventID"],
            "eventName": self.event_name,
            "eventVersion": LAMBDA_EVENT_VERSION,
            "eventSource": "aws:dynamodb",
            "awsRegion": self.raw.get("awsRegion") or self.stream_arn.split(":")[3],
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        }
        if "userIdentity" in self.raw:  # TTL deletions: {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
            record["userIdentity"] = dict(self.raw["userIdentity"])
        return record


def to_lambda_event(records: Iterable[CapturedRecord], *, fractional: bool = False) -> dict[str, Any]:
    """A Lambda DynamoDB stream event, `{"Records": [...]}`, holding `records` in order."""
    return {"Records": [record.to_lambda_record(fractional=fractional) for record in records]}


class StreamReader:
    """Reads a stream's records from every shard; each `read()` returns what was written since the last one.

    >>> reader = StreamReader.for_table(backend)   # the stream must be on (enable_stream)
    >>> ws.apply()
    >>> event = to_lambda_event(reader.read())
    """

    def __init__(self, server: MotoServer, stream_arn: str, *, page_size: int = 1000) -> None:
        self.server = server
        self.stream_arn = stream_arn
        self.page_size = page_size
        self._last_sequence: dict[str, str] = {}  # shard id -> sequence number of the last record read
        self.records: list[CapturedRecord] = []
        """Every record read so far, in the order read."""

    @classmethod
    def for_table(cls, backend: Backend) -> StreamReader:
        table = backend.server.client("dynamodb").describe_table(TableName=backend.table)["Table"]
        if not (table.get("StreamSpecification") or {}).get("StreamEnabled"):
            raise ValueError(f"{backend.table} has no stream: call enable_stream(backend) first")
        return cls(backend.server, str(table["LatestStreamArn"]))

    def shard_ids(self) -> list[str]:
        """Every shard of the stream, parents before children (the order `describe_stream` lists them)."""
        streams = self.server.client("dynamodbstreams")
        shards: list[str] = []
        start: dict[str, str] = {}
        while True:
            description = streams.describe_stream(StreamArn=self.stream_arn, **start)["StreamDescription"]
            shards.extend(shard["ShardId"] for shard in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            start = {"ExclusiveStartShardId": last}

    def read(self) -> list[CapturedRecord]:
        """Every record not read before, shard by shard (TRIM_HORIZON the first time, then after the last
        sequence number read), calling `get_records` until a page comes back empty."""
        new: list[CapturedRecord] = []
        for shard_id in self.shard_ids():
            new.extend(self._read_shard(shard_id))
        self.records.extend(new)
        return new

    def _read_shard(self, shard_id: str) -> list[CapturedRecord]:
        streams = self.server.client("dynamodbstreams")
        position: dict[str, str] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._last_sequence[shard_id]}
            if shard_id in self._last_sequence
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator: str | None = streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id, **position)[
            "ShardIterator"
        ]
        records: list[CapturedRecord] = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=self.page_size)
            if not page["Records"]:
                break
            records.extend(CapturedRecord(raw, self.stream_arn) for raw in page["Records"])
            iterator = page.get("NextShardIterator")  # None once a closed shard is exhausted
        if records:
            self._last_sequence[shard_id] = records[-1].sequence_number
        return records

    def read_all(self) -> list[CapturedRecord]:
        """Every record the stream holds, from TRIM_HORIZON (whatever was read before)."""
        self._last_sequence.clear()
        self.records.clear()
        return self.read()
