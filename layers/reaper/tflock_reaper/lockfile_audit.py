"""The audit trail of S3-native lockfiles, read from the S3 events a bucket sends to EventBridge.

With EventBridge notifications on, S3 sends ``Object Created`` when Terraform writes ``<state>.tflock``
(an acquisition: ``PutObject`` with ``If-None-Match: *``) and ``Object Deleted`` when it deletes it (a release,
a ``force-unlock`` or the reaper's reap). The event's ``time`` is AWS's clock, as a stream record's
``ApproximateCreationDateTime`` is for lock items; its ``id`` is unique per event and stays the same when
EventBridge or Lambda delivers it again, so it plays the stream sequence number's part in the state table.

A deletion carries no body: the acquisition it ends is found in the state table (the items of the lock path
with ``acquired_at`` set and ``released_at`` not). This module is pure: :func:`parse_lockfile_event` parses
at the edge, :func:`ignore_reason` says what is not a lockfile change, :func:`choose_release` picks the
acquisition a deletion ends, and the ``*_event`` functions build the log events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from tflock_reaper.audit import (
    REAP_ATTRIBUTION_WINDOW,
    AuditEvent,
    EventKind,
    ReleasedBy,
    ReleaseRecord,
    UnreadableRecordError,
    reaped_by_us,
)
from tflock_reaper.lock import (
    LOCKFILE_SUFFIX,
    LockRecord,
    describe_validation_error,
    is_lockfile_key,
    lockfile_lock_path,
)

S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
OBJECT_DELETED = "Object Deleted"


class _Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str = Field(min_length=1)
    etag: str | None = None


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    bucket: _Bucket
    object: _Object
    reason: str | None = None
    deletion_type: str | None = Field(default=None, alias="deletion-type")


class _S3Event(BaseModel):
    """An S3 event as EventBridge delivers it (only the fields the audit uses)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(min_length=1)
    source: Literal["aws.s3"]
    detail_type: str = Field(alias="detail-type")
    time: AwareDatetime
    detail: _Detail


def is_eventbridge_event(event: dict[str, Any]) -> bool:
    """One EventBridge event (``detail-type`` and ``source``), as opposed to a batch of stream ``Records``."""
    return "Records" not in event and "detail-type" in event and "source" in event


@dataclass(frozen=True)
class LockfileChange:
    """One S3 event about an object, parsed at the edge."""

    detail_type: str
    bucket: str
    key: str
    etag: str | None
    server_time: datetime
    event_id: str
    reason: str | None = None
    deletion_type: str | None = None

    @property
    def location(self) -> str:
        return f"{self.bucket}/{self.key}"

    @property
    def lock_path(self) -> str:
        return lockfile_lock_path(self.bucket, self.key)


def parse_lockfile_event(event: dict[str, Any]) -> LockfileChange:
    try:
        parsed = _S3Event.model_validate(event)
    except ValidationError as err:
        raise UnreadableRecordError(f"not an S3 event from EventBridge: {describe_validation_error(err)}") from err
    detail = parsed.detail
    return LockfileChange(
        detail_type=parsed.detail_type,
        bucket=detail.bucket.name,
        key=detail.object.key,
        etag=detail.object.etag,
        server_time=parsed.time,
        event_id=parsed.id,
        reason=detail.reason,
        deletion_type=detail.deletion_type,
    )


def ignore_reason(change: LockfileChange) -> str | None:
    """Why this event is not a lockfile acquire or release, or None when it is one."""
    if change.detail_type not in (OBJECT_CREATED, OBJECT_DELETED):
        return f"S3 event {change.detail_type!r} is not a lockfile acquire or release"
    if not is_lockfile_key(change.key):
        return f"s3://{change.location} is not a <state key>{LOCKFILE_SUFFIX} object"
    return None


def same_etag(a: str, b: str) -> bool:
    """S3's API quotes ETags, its events do not."""
    return a.strip('"') == b.strip('"')


@dataclass(frozen=True)
class Acquisition:
    """A lock acquisition as the state table holds it (``pk = LOCK#<lock path>``, ``sk = ID#<lock id>``)."""

    lock_id: str
    acquired_at: datetime | None
    released_at: datetime | None = None
    released_seq: str | None = None
    who: str | None = None
    operation: str | None = None

    @property
    def open(self) -> bool:
        return self.acquired_at is not None and self.released_at is None


@dataclass(frozen=True)
class AlreadyReleased:
    """The deletion's release is recorded already: this very event delivered again, or the DynamoDB side of a
    dual backend (same lock ID) released moments before. Nothing to record or log."""


def choose_release(change: LockfileChange, acquisitions: list[Acquisition]) -> Acquisition | AlreadyReleased | None:
    """The acquisition a deletion ends: the latest open one; None when the audit never saw it acquired."""
    if any(a.released_seq == change.event_id for a in acquisitions):
        return AlreadyReleased()
    opened = [a for a in acquisitions if a.open]
    if opened:
        return max(opened, key=lambda a: a.acquired_at or change.server_time)
    if any(
        a.released_at is not None and abs(a.released_at - change.server_time) <= REAP_ATTRIBUTION_WINDOW
        for a in acquisitions
    ):
        return AlreadyReleased()
    return None


def acquired_event(change: LockfileChange, lock: LockRecord) -> AuditEvent:
    info = lock.info
    return AuditEvent(
        EventKind.LOCK_ACQUIRED, lock.lock_path, change.server_time, info.id, info.who, info.operation, info.created
    )


def ignored_event(change: LockfileChange, reason: str) -> AuditEvent:
    return AuditEvent(EventKind.ITEM_IGNORED, change.lock_path, change.server_time, reason=reason)


def release_event(change: LockfileChange, acquisition: Acquisition | None, record: ReleaseRecord | None) -> AuditEvent:
    """Held time runs from the recorded server time of the acquisition; the body (and ``Created``) is gone."""
    if acquisition is None:
        return AuditEvent(EventKind.LOCK_RELEASED, change.lock_path, change.server_time, released_by="unknown")
    start = (record.acquired_at if record else None) or acquisition.acquired_at
    by: ReleasedBy = "tflock-reaper" if reaped_by_us(change.server_time, record) else "terraform"
    return AuditEvent(
        EventKind.LOCK_RELEASED,
        change.lock_path,
        change.server_time,
        acquisition.lock_id,
        acquisition.who,
        acquisition.operation,
        held_seconds=round((change.server_time - start).total_seconds(), 3) if start else None,
        released_by=by,
    )
