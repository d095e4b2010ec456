"""The stream function's service: record each lock-table change once, and say what to log.

Writes are idempotent and conditional, so a redelivered batch records nothing twice: a change already
recorded returns ``None`` (nothing to log or count). A store failure raises, so that only that record is
retried; a record that can never be processed is an ``item_ignored`` event, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

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
from tflock_reaper.lock import LockRecord
from tflock_reaper.notify.events import Notification, NotificationKind


class AuditStore(Protocol):
    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        """False when this acquisition was already recorded."""
        ...

    def record_released(
        self, scope: str, lock_path: str, lock_id: str, server_time: datetime, sequence: str
    ) -> ReleaseRecord:
        """The acquisition's record; ``first`` is False when this release was already recorded."""
        ...

    def record_persisted(self, scope: str, state_path: str, server_time: datetime, sequence: str) -> bool:
        """False when this (or a later) digest write was already recorded."""
        ...


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
        if not store.record_persisted(change.table_arn, meaning.state_path, change.server_time, change.sequence_number):
            return None
        return AuditEvent(EventKind.STATE_PERSISTED, meaning.state_path, change.server_time)
    if meaning.lock is None:
        return release_event(change, meaning, None)
    lock = meaning.lock
    record = store.record_released(
        lock.scope, meaning.lock_path, lock.lock_id, change.server_time, change.sequence_number
    )
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
