"""The audit trail of S3-native lockfiles, read from the S3 events a bucket sends to EventBridge.

With EventBridge notifications on, S3 sends ``Object Created`` when Terraform writes ``<state>.tflock``
(an acquisition: ``PutObject`` with ``If-None-Match: *``) and ``Object Deleted`` when it deletes it (a release,
a ``force-unlock`` or the reaper's reap). The event's ``time`` is AWS's clock, as a stream record's
``ApproximateCreationDateTime`` is for lock items; its ``id`` is unique per event and stays the same when
EventBridge or Lambda delivers it again.

S3 does not deliver these events in order, and may deliver one twice. Its ``sequencer`` orders the events of
one object key (S3 User Guide, "Event message structure": "If you compare the sequencer strings from two event
notifications on the same object key, the event notification with the greater sequencer hexadecimal value is the
event that occurred later. [...] The sequencers can be of different lengths. So, to compare these values, first
right pad the shorter value with zeros, and then do a lexicographical comparison."). Older editions of that page
said "left pad"; the current one says right, and that is what :func:`sequencer_position` does.

A lockfile cannot be created while it exists (``If-None-Match: *``), so the true history of one key alternates:
create, delete, create, delete... A deletion carries no body: it ends the acquisition whose create comes right
before it in sequencer order. Every create and delete of a key is therefore kept in the state table by its
sequencer (:class:`LockfileEntry`, the create with the body read when it was handled), and a deletion is matched
to its neighbour there, never to "the newest open acquisition". Events that arrive late correct what was
matched before them: a create that arrives between an acquisition and the deletion it was matched to takes that
deletion over; a deletion that arrives between an acquisition and a later deletion it was matched to replaces it.
Where the events cannot tell (a create whose lockfile was gone or replaced before it could be read), the
release is logged with ``released_by: unknown``, never guessed.

:func:`parse_lockfile_event` parses at the edge, :func:`ignore_reason` says what is not a lockfile change, and
``services.recorder.record_lockfile_change`` records one event through a :class:`LockfileAuditStore` (the state
table), logging the same ``domain.audit`` events as lock items do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tflock_reaper.domain.audit import AcquisitionStore, parse_event
from tflock_reaper.domain.lock import LOCKFILE_SUFFIX, InBucket, LockfileObject, is_lockfile_key, lockfile_scope
from tflock_reaper.domain.records import LockfileEntry

S3_SOURCE = "aws.s3"
OBJECT_CREATED = "Object Created"
OBJECT_DELETED = "Object Deleted"
#: Sequencers are right-padded with zeros to this width to compare (and sort in the state table) as strings.
#: S3's are 18 hexadecimal digits today; a longer one cannot be placed and is treated as absent.
SEQUENCER_WIDTH = 64
_HEX = re.compile(r"[0-9A-Fa-f]+")


# The S3 event's models are built on the first event parsed (defer_build), not at import: cold start.
class _Bucket(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    name: str = Field(min_length=1)


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    key: str = Field(min_length=1)
    etag: str | None = None
    sequencer: str | None = None


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    bucket: _Bucket
    object: _Object
    reason: str | None = None
    deletion_type: str | None = Field(default=None, alias="deletion-type")


class _S3Event(BaseModel):
    """An S3 event as EventBridge delivers it (only the fields the audit uses)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    id: str = Field(min_length=1)
    source: Literal["aws.s3"]
    detail_type: str = Field(alias="detail-type")
    time: AwareDatetime
    detail: _Detail


def is_eventbridge_event(event: dict[str, Any]) -> bool:
    """One EventBridge event (``detail-type`` and ``source``), as opposed to a batch of stream ``Records``."""
    return "Records" not in event and "detail-type" in event and "source" in event


def sequencer_position(sequencer: str | None) -> str | None:
    """The sequencer as a fixed-width string whose order is S3's order of the events of one key (right-padded
    with zeros, as S3 documents); None when there is none or it is not a hexadecimal string that fits."""
    if sequencer is None or len(sequencer) > SEQUENCER_WIDTH or not _HEX.fullmatch(sequencer):
        return None
    return sequencer.upper().ljust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class LockfileChange(InBucket):
    """One S3 event about an object, parsed at the edge."""

    detail_type: str
    bucket: str
    key: str
    etag: str | None
    server_time: datetime
    event_id: str
    reason: str | None = None
    deletion_type: str | None = None
    sequencer: str | None = None

    @property
    def scope(self) -> str:
        """Where the state table keeps this lockfile's records (a lockfile-only lock's scope: its bucket)."""
        return lockfile_scope(self.bucket)

    @property
    def position(self) -> str | None:
        return sequencer_position(self.sequencer)


def parse_lockfile_event(event: dict[str, Any]) -> LockfileChange:
    parsed = parse_event(_S3Event, event, "an S3 event from EventBridge")
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
        sequencer=detail.object.sequencer,
    )


def batch_order(change: LockfileChange) -> tuple[str, str]:
    """Sort key for the events of one batch: per object, in S3's order (events without a sequencer first)."""
    return change.location, change.position or ""


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


class LockfileAuditStore(AcquisitionStore, Protocol):
    """What the audit of lockfiles records: acquisitions and releases, and every S3 event of a lockfile key."""

    def record_lockfile_event(self, scope: str, lock_path: str, entry: LockfileEntry) -> tuple[bool, LockfileEntry]:
        """Keep ``entry`` unless its position is kept already: (written, the entry kept)."""
        ...

    def lockfile_neighbours(
        self, scope: str, lock_path: str, position: str
    ) -> tuple[LockfileEntry | None, LockfileEntry | None]:
        """The entries of ``lock_path`` right before and right after ``position``."""
        ...

    def revoke_release(self, scope: str, lock_path: str, lock_id: str, position: str) -> bool:
        """Forget the release recorded from the deletion at ``position``, if that is the one recorded."""
        ...


ReadLockfile = Callable[[str, str], LockfileObject | None]
"""GetObject of (bucket, key): the object, or None when it is gone."""
