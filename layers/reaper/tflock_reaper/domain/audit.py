"""The audit trail of a lock table, read from its DynamoDB stream (``NEW_AND_OLD_IMAGES``).

Terraform never modifies a lock in place: an acquisition is an ``INSERT`` with ``NewImage.Info``, a release
a ``REMOVE`` with ``OldImage.Info``. Its ``-md5`` digest item is written after every state upload, so an
``INSERT``/``MODIFY`` of a digest means the state was just persisted (its lock holder is alive and
writing). ``ApproximateCreationDateTime`` is AWS's clock: the sweeper measures age from it when known.

This module is pure: :func:`parse_record` turns a Lambda stream record into a :class:`StreamChange`,
:func:`interpret` says what it means, and :func:`audit_event` builds the log event once the state store
has been updated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tflock_reaper.domain.lock import (
    DIGEST_SUFFIX,
    DigestRecord,
    DynamoItem,
    LockRecord,
    SkippedItem,
    classify_item,
    describe_validation_error,
)

#: The stream's user identity on deletions made by DynamoDB's TTL process.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class EventKind(StrEnum):
    LOCK_ACQUIRED = "lock_acquired"
    LOCK_RELEASED = "lock_released"
    STATE_PERSISTED = "state_persisted"
    ITEM_IGNORED = "item_ignored"


ReleasedBy = Literal["terraform", "tflock-reaper", "ttl", "unknown"]


class _StreamRecordBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    approximate_creation: float = Field(alias="ApproximateCreationDateTime")
    keys: dict[str, dict[str, Any]] = Field(alias="Keys")
    new_image: dict[str, dict[str, Any]] | None = Field(default=None, alias="NewImage")
    old_image: dict[str, dict[str, Any]] | None = Field(default=None, alias="OldImage")
    sequence_number: str = Field(alias="SequenceNumber", min_length=1)


class _UserIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore")

    principalId: str | None = None  # noqa: N815 - AWS's spelling


class _LambdaStreamRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    eventID: str = ""  # noqa: N815
    eventSourceARN: str = ""  # noqa: N815
    eventName: Literal["INSERT", "MODIFY", "REMOVE"]  # noqa: N815
    dynamodb: _StreamRecordBody
    userIdentity: _UserIdentity | None = None  # noqa: N815


@dataclass(frozen=True)
class StreamChange:
    """One stream record, parsed at the edge."""

    event_name: Literal["INSERT", "MODIFY", "REMOVE"]
    keys: DynamoItem
    new_image: DynamoItem | None
    old_image: DynamoItem | None
    server_time: datetime
    sequence_number: str
    principal: str | None
    event_id: str = ""
    source_arn: str = ""

    @property
    def table(self) -> str:
        """The lock table's name, from the stream ARN (``...:table/<name>/stream/<label>``)."""
        _, _, rest = self.source_arn.partition(":table/")
        return rest.split("/", 1)[0]

    @property
    def table_arn(self) -> str:
        """The lock table's ARN (the stream ARN up to ``/stream/``): the scope of this table's records."""
        return self.source_arn.split("/stream/", 1)[0]

    @property
    def lock_path(self) -> str:
        value = self.keys.get("LockID", {}).get("S")
        return value if isinstance(value, str) else "<missing>"


class UnreadableRecordError(ValueError):
    """A stream record that is not shaped like DynamoDB's: it can never be processed."""


def parse_record(record: dict[str, Any]) -> StreamChange:
    try:
        parsed = _LambdaStreamRecord.model_validate(record)
    except ValidationError as err:
        raise UnreadableRecordError(f"not a DynamoDB stream record: {describe_validation_error(err)}") from err
    body = parsed.dynamodb
    try:
        server_time = datetime.fromtimestamp(body.approximate_creation, tz=UTC)
    except (OverflowError, OSError, ValueError) as err:  # NaN, infinity, a year out of range
        raise UnreadableRecordError(
            f"not a DynamoDB stream record: ApproximateCreationDateTime {body.approximate_creation!r} is not a time"
        ) from err
    return StreamChange(
        event_name=parsed.eventName,
        keys=body.keys,
        new_image=body.new_image,
        old_image=body.old_image,
        server_time=server_time,
        sequence_number=body.sequence_number,
        principal=parsed.userIdentity.principalId if parsed.userIdentity else None,
        event_id=parsed.eventID,
        source_arn=parsed.eventSourceARN,
    )


@dataclass(frozen=True)
class Acquired:
    lock: LockRecord


@dataclass(frozen=True)
class Released:
    lock_path: str
    lock: LockRecord | None
    """None when the stream carries no old image (a stream view type without it)."""


@dataclass(frozen=True)
class Persisted:
    state_path: str
    """The lock path of the state whose digest was written (the digest's key without ``-md5``)."""


@dataclass(frozen=True)
class Ignored:
    lock_path: str
    reason: str


Meaning = Acquired | Released | Persisted | Ignored


def interpret(change: StreamChange) -> Meaning:
    """What a stream record means for the audit. Pure; never raises."""
    image = change.old_image if change.event_name == "REMOVE" else change.new_image
    if image is None:
        if change.event_name == "REMOVE" and not change.lock_path.endswith(DIGEST_SUFFIX):
            return Released(change.lock_path, None)
        return Ignored(change.lock_path, f"{change.event_name} without an item image (stream view type?)")
    # The skew check is the sweeper's business: the audit records what happened, skewed clocks included.
    item = classify_item(image, None, table=change.table or None, table_arn=change.table_arn or None)
    if isinstance(item, SkippedItem):
        return Ignored(change.lock_path, item.reason)
    if isinstance(item, DigestRecord):
        if change.event_name == "REMOVE":
            return Ignored(change.lock_path, "digest item removed (state deleted, e.g. workspace delete)")
        return Persisted(item.lock_path.removesuffix(DIGEST_SUFFIX))
    if change.event_name == "INSERT":
        return Acquired(item)
    if change.event_name == "REMOVE":
        return Released(item.lock_path, item)
    return Ignored(change.lock_path, "lock item modified in place: Terraform never does that")


@dataclass(frozen=True)
class ReleaseRecord:
    """What the state table knew about the acquisition when its release was recorded."""

    acquired_at: datetime | None
    reap_status: str | None
    reap_started_at: datetime | None = None
    alert_channels: str | None = None
    """JSON of the channels alerted about this lock (see ``alerting.channel_snapshot``), if any."""
    first: bool = True
    """False when the release had been recorded already (a redelivered record)."""


#: A ``pending`` reap record (the delete's outcome not yet written) explains a removal this close to it.
REAP_ATTRIBUTION_WINDOW = timedelta(minutes=5)


def reaped_by_us(server_time: datetime, record: ReleaseRecord | None) -> bool:
    """Whether a removal at ``server_time`` was the reaper's own, by the acquisition's reap record."""
    if record is None:
        return False
    if record.reap_status == "reaped":
        return True
    # The stream can deliver the REMOVE before the sweeper writes "reaped"; but a reap that never got that far
    # (a crash between intent and delete) must not claim a later ordinary release.
    return (
        record.reap_status == "pending"
        and record.reap_started_at is not None
        and abs(server_time - record.reap_started_at) <= REAP_ATTRIBUTION_WINDOW
    )


def released_by(change: StreamChange, lock: LockRecord | None, record: ReleaseRecord | None) -> ReleasedBy:
    if reaped_by_us(change.server_time, record):
        return "tflock-reaper"
    if change.principal == TTL_PRINCIPAL:
        return "ttl"
    if lock is not None:
        return "terraform"
    return "unknown"


@dataclass(frozen=True)
class AuditEvent:
    event: EventKind
    lock_path: str
    server_time: datetime
    lock_id: str | None = None
    who: str | None = None
    operation: str | None = None
    created: datetime | None = None
    held_seconds: float | None = None
    released_by: ReleasedBy | None = None
    reason: str | None = None

    def log_fields(self) -> dict[str, Any]:
        """The structured log line's fields (``lock_created``: ``created`` is a LogRecord attribute)."""
        fields: dict[str, Any] = {
            "event": self.event.value,
            "lock_path": self.lock_path,
            "lock_id": self.lock_id,
            "who": self.who,
            "operation": self.operation,
            "lock_created": self.created.isoformat() if self.created else None,
            "server_time": self.server_time.isoformat(),
        }
        if self.event is EventKind.LOCK_RELEASED:
            fields["held_seconds"] = self.held_seconds
            fields["released_by"] = self.released_by
        if self.reason is not None:
            fields["reason"] = self.reason
        return fields


def lock_event(kind: EventKind, change: StreamChange, lock: LockRecord) -> AuditEvent:
    info = lock.info
    return AuditEvent(kind, lock.lock_path, change.server_time, info.id, info.who, info.operation, info.created)


def release_event(change: StreamChange, meaning: Released, record: ReleaseRecord | None) -> AuditEvent:
    """Held time runs from the server's acquisition time when recorded, else from the holder's ``Created``."""
    lock = meaning.lock
    start = (record.acquired_at if record else None) or (lock.info.created if lock else None)
    base = (
        lock_event(EventKind.LOCK_RELEASED, change, lock)
        if lock
        else AuditEvent(EventKind.LOCK_RELEASED, meaning.lock_path, change.server_time)
    )
    return replace(
        base,
        held_seconds=round((change.server_time - start).total_seconds(), 3) if start else None,
        released_by=released_by(change, lock, record),
    )
