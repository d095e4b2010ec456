"""The audit trail of a lock table, read from its DynamoDB stream (``NEW_AND_OLD_IMAGES``).

Terraform never modifies a lock in place: an acquisition is an ``INSERT`` with ``NewImage.Info``, a release
a ``REMOVE`` with ``OldImage.Info``. Its ``-md5`` digest item is written after every state upload, so an
``INSERT``/``MODIFY`` of a digest means the state was just persisted (its lock holder is alive and
writing). ``ApproximateCreationDateTime`` is AWS's clock: the sweeper measures age from it when known.

This module is pure: :func:`parse_record` turns a Lambda stream record into a :class:`StreamChange`,
:func:`interpret` says what it means, and once the :class:`AuditStore` has recorded it, :func:`acquired_event` and
:func:`released_event` build the log event (for lock items and lockfiles alike: ``domain.lockfile_audit``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, Protocol, TypeVar

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
from tflock_reaper.domain.records import TTL_PRINCIPAL, ReleaseRecord, reaped_by_us


class EventKind(StrEnum):
    LOCK_ACQUIRED = "lock_acquired"
    LOCK_RELEASED = "lock_released"
    STATE_PERSISTED = "state_persisted"
    ITEM_IGNORED = "item_ignored"


ReleasedBy = Literal["terraform", "tflock-reaper", "ttl", "unknown"]
_Model = TypeVar("_Model", bound=BaseModel)


# The stream record's models are built on the first record parsed (defer_build), not at import: cold start.
class _StreamRecordBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    approximate_creation: float = Field(alias="ApproximateCreationDateTime")
    keys: dict[str, dict[str, Any]] = Field(alias="Keys")
    new_image: dict[str, dict[str, Any]] | None = Field(default=None, alias="NewImage")
    old_image: dict[str, dict[str, Any]] | None = Field(default=None, alias="OldImage")
    sequence_number: str = Field(alias="SequenceNumber", min_length=1)


class _UserIdentity(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    principalId: str | None = None  # noqa: N815 - AWS's spelling


class _LambdaStreamRecord(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

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


def parse_event(model: type[_Model], event: dict[str, Any], what: str) -> _Model:
    """``event`` as ``model``, or :class:`UnreadableRecordError` saying it is not ``what``."""
    try:
        return model.model_validate(event)
    except ValidationError as err:
        raise UnreadableRecordError(f"not {what}: {describe_validation_error(err)}") from err


def parse_record(record: dict[str, Any]) -> StreamChange:
    parsed = parse_event(_LambdaStreamRecord, record, "a DynamoDB stream record")
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
    unreadable: bool = False
    """A lock by its key and shape that cannot be judged was written: the sweeps must see it (they alert about it),
    and incremental sweeps read only the acquisitions the stream records, so the next sweep must read in full."""


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
        return Ignored(change.lock_path, item.reason, unreadable=item.unreadable and change.event_name != "REMOVE")
    if isinstance(item, DigestRecord):
        if change.event_name == "REMOVE":
            return Ignored(change.lock_path, "digest item removed (state deleted, e.g. workspace delete)")
        return Persisted(item.lock_path.removesuffix(DIGEST_SUFFIX))
    if change.event_name == "INSERT":
        return Acquired(item)
    if change.event_name == "REMOVE":
        return Released(item.lock_path, item)
    return Ignored(change.lock_path, "lock item modified in place: Terraform never does that")


class AcquisitionStore(Protocol):
    """Where acquisitions and their releases are recorded once (the state table), whatever the lock's backend."""

    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        """False when this acquisition was already recorded."""
        ...

    def record_released(
        self,
        lock: LockRecord,
        server_time: datetime,
        sequence: str,
        *,
        position: str | None = None,
        principal: str | None = None,
    ) -> ReleaseRecord:
        """The acquisition's record; ``first`` is False when this release was already recorded. With ``position``
        (a lockfile deletion's), the release replaces one recorded from a later deletion. ``principal``: the stream
        record's user identity (DynamoDB's TTL process has one)."""
        ...


class AuditStore(AcquisitionStore, Protocol):
    """What the audit of a lock table's stream records: acquisitions, releases and state writes."""

    def record_persisted(self, scope: str, state_path: str, server_time: datetime, sequence: str) -> bool:
        """False when this (or a later) digest write was already recorded."""
        ...

    def request_full(self, scope: str, reason: str, now: datetime) -> None:
        """Make the next sweep of the lock table ``scope`` read every item (see ``domain.reconcile``)."""
        ...


def released_by(
    server_time: datetime, lock: LockRecord | None, record: ReleaseRecord | None, principal: str | None = None
) -> ReleasedBy:
    """Who removed the lock: the reaper (by its reap record), DynamoDB's TTL (by the stream record's ``principal``),
    else Terraform when the released lock is known."""
    if reaped_by_us(server_time, record):
        return "tflock-reaper"
    if principal == TTL_PRINCIPAL:
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
    by_hand: bool = False
    """A release by a person (see ``ReleaseRecord.by_hand``): counted as ``ForceUnlocks``."""
    reaped_by: str | None = None
    """For the reaper's own release (``released_by: tflock-reaper``): who asked for the reap, from its record
    (``sweep``, ``unlock by <user@host>``, ``slack by <name> (<user ID>)``)."""

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
            fields["by_hand"] = self.by_hand
            if self.reaped_by is not None:
                fields["reaped_by"] = self.reaped_by
        if self.reason is not None:
            fields["reason"] = self.reason
        return fields


def acquired_event(lock: LockRecord, server_time: datetime) -> AuditEvent:
    """``lock_acquired`` at the server's time of the acquisition (a lock item's ``INSERT``, a lockfile's create)."""
    info = lock.info
    return AuditEvent(
        EventKind.LOCK_ACQUIRED, lock.lock_path, server_time, info.id, info.who, info.operation, info.created
    )


def ignored_event(lock_path: str, server_time: datetime, reason: str) -> AuditEvent:
    """``item_ignored``: a change that is neither an acquisition nor a release (nor a state write), and why."""
    return AuditEvent(EventKind.ITEM_IGNORED, lock_path, server_time, reason=reason)


def released_event(
    lock_path: str,
    server_time: datetime,
    lock: LockRecord | None,
    *,
    since: datetime | None,
    by: ReleasedBy,
    reason: str | None = None,
    record: ReleaseRecord | None = None,
) -> AuditEvent:
    """``lock_released`` at the server's time of the release (a lock item's ``REMOVE``, a lockfile's deletion).

    ``lock`` is None when the events do not say which lock it was (``lock_path`` is the lock's when they do);
    ``held_seconds`` runs from ``since`` (None: unknown); ``record``, the state table's, says whether it was
    released by hand."""
    base = acquired_event(lock, server_time) if lock else AuditEvent(EventKind.LOCK_RELEASED, lock_path, server_time)
    held = round((server_time - since).total_seconds(), 3) if since else None
    by_hand = record is not None and record.by_hand(by)
    reaped_by = record.reaped_by if record is not None and by == "tflock-reaper" else None
    return replace(
        base,
        event=EventKind.LOCK_RELEASED,
        held_seconds=held,
        released_by=by,
        reason=reason,
        by_hand=by_hand,
        reaped_by=reaped_by,
    )
