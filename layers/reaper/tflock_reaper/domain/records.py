"""The state table's records of lock acquisitions, as the stream function and the sweeper read them back: plain
data, in a module of their own so that the state table's adapter does not import the audit's event parsing (cold
start)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

#: The stream's user identity on deletions made by DynamoDB's TTL process.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
#: A ``pending`` reap record (the delete's outcome not yet written) explains a removal this close to it.
REAP_ATTRIBUTION_WINDOW = timedelta(minutes=5)


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
    warned_at: datetime | None = None
    """When the reaper first reported the lock stale, if it did."""
    reaped_by: str | None = None
    """Who asked for its reap, if one was attempted: ``sweep``, or (by hand) ``unlock by <user@host>`` or
    ``slack by <name> (<user ID>)`` (the Slack app's *Reap now*)."""

    def by_hand(self, released_by: str) -> bool:
        """Released by a person: with ``tflock-reaper unlock`` or the Slack app's *Reap now*, or by a Terraform
        principal after the reaper had alerted about the lock (most likely ``terraform force-unlock``: the stream
        cannot tell it from the holder's own unlock)."""
        if released_by == "tflock-reaper":
            return (self.reaped_by or "").startswith(("unlock", "slack"))
        return released_by == "terraform" and self.warned_at is not None


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


def release_author(released_at: datetime, written: str | None, record: ReleaseRecord) -> str:
    """Who released an acquisition, as its state-table record says when read back: the reaper when its reap record
    explains the release (the stream may have recorded the release first, as ``terraform``), else what the stream
    function wrote (``terraform`` or ``ttl``)."""
    if reaped_by_us(released_at, record):
        return "tflock-reaper"
    return written or "unknown"


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


EntryKind = Literal["created", "deleted"]


@dataclass(frozen=True)
class LockfileEntry:
    """One S3 event of a lockfile key, kept by its sequencer position (one per position: a redelivery is the
    same entry). A create keeps the body read when it was first handled, None when it could not be read."""

    position: str
    kind: EntryKind
    server_time: datetime
    event_id: str
    sequencer: str
    body: str | None = None
