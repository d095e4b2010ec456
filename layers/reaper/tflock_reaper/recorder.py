"""The stream function's service: record each lock-table change once, and say what to log.

Writes are idempotent and conditional, so a redelivered batch records nothing twice: a change already
recorded returns ``None`` (nothing to log or count). A store failure raises, so that only that record is
retried; a record that can never be processed is an ``item_ignored`` event, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tflock_reaper import lockfile_audit
from tflock_reaper.audit import (
    Acquired,
    AuditEvent,
    EventKind,
    Ignored,
    Persisted,
    ReleaseRecord,
    StreamChange,
    interpret,
    lock_event,
    release_event,
)
from tflock_reaper.durations import format_duration
from tflock_reaper.lock import LockfileObject, LockRecord, SkippedItem, classify_lockfile
from tflock_reaper.lockfile_audit import (
    OBJECT_CREATED,
    Acquisition,
    AlreadyReleased,
    LockfileChange,
    choose_release,
    ignore_reason,
    ignored_event,
    same_etag,
)
from tflock_reaper.notify.events import Notification, NotificationKind


class AuditStore(Protocol):
    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        """False when this acquisition was already recorded."""
        ...

    def record_released(self, lock_path: str, lock_id: str, server_time: datetime, sequence: str) -> ReleaseRecord:
        """The acquisition's record; ``first`` is False when this release was already recorded."""
        ...

    def record_persisted(self, state_path: str, server_time: datetime, sequence: str) -> bool:
        """False when this (or a later) digest write was already recorded."""
        ...


class LockfileAuditStore(AuditStore, Protocol):
    def acquisitions(self, lock_path: str) -> list[Acquisition]:
        """Every acquisition recorded for ``lock_path``, released or not."""
        ...


ReadLockfile = Callable[[str, str], LockfileObject | None]
"""GetObject of (bucket, key): the object, or None when it is gone."""


@dataclass(frozen=True)
class Recorded:
    event: AuditEvent | None
    """What to log and count; None for a release recorded before (a redelivery): only ``resolved`` is retried."""
    resolved: Notification | None = None
    """A ``resolved`` notification for the channels that were alerted about this lock, if any were."""
    channels: str | None = None


def record_change(change: StreamChange, store: AuditStore) -> Recorded | None:
    """Record one change; None when it was already recorded (nothing to log, count or send)."""
    event = _record(change, store)
    if event is None or isinstance(event, Recorded):
        return event
    return Recorded(event)


def _record(change: StreamChange, store: AuditStore) -> AuditEvent | Recorded | None:
    meaning = interpret(change)
    if isinstance(meaning, Ignored):
        return AuditEvent(EventKind.ITEM_IGNORED, meaning.lock_path, change.server_time, reason=meaning.reason)
    if isinstance(meaning, Acquired):
        if not store.record_acquired(meaning.lock, change.server_time, change.sequence_number):
            return None
        return lock_event(EventKind.LOCK_ACQUIRED, change, meaning.lock)
    if isinstance(meaning, Persisted):
        if not store.record_persisted(meaning.state_path, change.server_time, change.sequence_number):
            return None
        return AuditEvent(EventKind.STATE_PERSISTED, meaning.state_path, change.server_time)
    if meaning.lock is None:
        return release_event(change, meaning, None)
    record = store.record_released(meaning.lock_path, meaning.lock.lock_id, change.server_time, change.sequence_number)
    event = release_event(change, meaning, record)
    resolved = _resolved(event, meaning.lock, record, change.table)
    if not record.first and resolved is None:
        return None
    # A redelivered release logs nothing again, but its ``resolved`` is offered again: the ledger sends it once,
    # and a send that failed (so that the record was retried) gets its second chance.
    return Recorded(event if record.first else None, resolved, record.alert_channels)


def _resolved(event: AuditEvent, lock: LockRecord, record: ReleaseRecord, table: str) -> Notification | None:
    """Alerted locks get a ``resolved`` when released; a reap was announced (and resolved) by the sweeper."""
    if not record.alert_channels or event.released_by == "tflock-reaper":
        return None
    held = int(event.held_seconds or 0)
    return Notification.for_lock(
        NotificationKind.RESOLVED,
        lock,
        table=table,
        age_seconds=held,
        verdict="released",
        outcome="released",
        reasons=(f"released by {event.released_by} after {format_duration(timedelta(seconds=held))}",),
        rule="(released: no rule applies)",
    )


def record_lockfile_change(change: LockfileChange, store: LockfileAuditStore, read: ReadLockfile) -> AuditEvent | None:
    """Record one S3 lockfile event; None when it was already recorded (nothing to log or count).

    Only the store raises (and the read, for anything but a vanished object): the invocation is retried.
    """
    reason = ignore_reason(change)
    if reason is not None:
        return ignored_event(change, reason)
    if change.detail_type == OBJECT_CREATED:
        return _record_lockfile_acquired(change, store, read)
    chosen = choose_release(change, store.acquisitions(change.lock_path))
    if isinstance(chosen, AlreadyReleased):
        return None
    if chosen is None:
        return lockfile_audit.release_event(change, None, None)
    record = store.record_released(change.lock_path, chosen.lock_id, change.server_time, change.event_id)
    if not record.first:
        return None
    return lockfile_audit.release_event(change, chosen, record)


def _record_lockfile_acquired(change: LockfileChange, store: AuditStore, read: ReadLockfile) -> AuditEvent | None:
    obj = read(change.bucket, change.key)
    if obj is None:
        return ignored_event(change, "lockfile gone before it could be read (released already)")
    if change.etag and not same_etag(obj.etag, change.etag):
        # A later acquisition's file: its own event records it, with its own server time.
        return ignored_event(change, "lockfile replaced since the event (another acquisition)")
    # The skew check is the sweeper's business: the audit records what happened, skewed clocks included.
    lock = classify_lockfile(obj, None)
    if isinstance(lock, SkippedItem):
        return ignored_event(change, lock.reason)
    if not store.record_acquired(lock, change.server_time, change.event_id):
        return None
    return lockfile_audit.acquired_event(change, lock)
