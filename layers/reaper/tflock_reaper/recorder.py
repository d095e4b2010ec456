"""The stream function's service: record each lock-table change once, and say what to log.

Writes are idempotent and conditional, so a redelivered batch records nothing twice: a change already
recorded returns ``None`` (nothing to log or count). A store failure raises, so that only that record is
retried; a record that can never be processed is an ``item_ignored`` event, never an exception.
"""

from __future__ import annotations

from datetime import datetime
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
from tflock_reaper.lock import LockRecord


class AuditStore(Protocol):
    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        """False when this acquisition was already recorded."""
        ...

    def record_released(
        self, lock_path: str, lock_id: str, server_time: datetime, sequence: str
    ) -> ReleaseRecord | None:
        """The acquisition's record, or None when this release was already recorded."""
        ...

    def record_persisted(self, state_path: str, server_time: datetime, sequence: str) -> bool:
        """False when this (or a later) digest write was already recorded."""
        ...


def record_change(change: StreamChange, store: AuditStore) -> AuditEvent | None:
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
    record = None
    if meaning.lock is not None:
        record = store.record_released(
            meaning.lock_path, meaning.lock.lock_id, change.server_time, change.sequence_number
        )
        if record is None:
            return None
    return release_event(change, meaning, record)
