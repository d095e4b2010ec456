"""The state table's records of lock acquisitions, as the stream function and the sweeper read them back: plain
data, in a module of their own so that the state table's adapter does not import the audit's event parsing (cold
start)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


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
