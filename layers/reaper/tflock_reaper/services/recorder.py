"""The stream function's service: record each lock-table change once, and say what to log.

Writes are idempotent and conditional, so a redelivered batch records nothing twice: a change already
recorded returns ``None`` (nothing to log or count). A store failure raises, so that only that record is
retried; a record that can never be processed is an ``item_ignored`` event, never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from tflock_reaper.domain import lockfile_audit
from tflock_reaper.domain.audit import (
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
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.lock import LockfileObject, LockRecord, SkippedItem, classify_lockfile
from tflock_reaper.domain.notification import Notification, NotificationKind


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


# -- lockfiles (S3 events) ------------------------------------------------------------------------------------
def record_lockfile_change(
    change: lockfile_audit.LockfileChange, store: lockfile_audit.LockfileAuditStore, read: lockfile_audit.ReadLockfile
) -> list[AuditEvent]:
    """Record one S3 lockfile event; what to log (nothing when it was recorded already).

    Only the store raises (and the read, for anything but a vanished object): the invocation is retried, and
    what was recorded before the failure is recorded once.
    """
    reason = lockfile_audit.ignore_reason(change)
    if reason is not None:
        return [lockfile_audit.ignored_event(change, reason)]
    if change.detail_type == lockfile_audit.OBJECT_CREATED:
        return _record_created(change, store, read)
    return _record_deleted(change, store)


def _read_body(
    change: lockfile_audit.LockfileChange, read: lockfile_audit.ReadLockfile
) -> tuple[LockRecord | None, str]:
    """The lock this create wrote, or None and why it cannot be known."""
    obj = read(change.bucket, change.key)
    if obj is None:
        return None, "lockfile gone before it could be read (released already)"
    if change.etag and not lockfile_audit.same_etag(obj.etag, change.etag):
        return None, "lockfile replaced since the event (another acquisition)"
    # The skew check is the sweeper's business: the audit records what happened, skewed clocks included.
    lock = classify_lockfile(obj, None)
    if isinstance(lock, SkippedItem):
        return None, lock.reason
    return lock, ""


def _entry_lock(change: lockfile_audit.LockfileChange, entry: lockfile_audit.LockfileEntry) -> LockRecord | None:
    """The lock of a kept create, from the body read when it was first handled."""
    if entry.kind != "created" or entry.body is None:
        return None
    obj = LockfileObject(change.bucket, change.key, entry.body.encode(), change.etag or "", entry.server_time)
    lock = classify_lockfile(obj, None)
    return lock if isinstance(lock, LockRecord) else None


def _record_created(
    change: lockfile_audit.LockfileChange, store: lockfile_audit.LockfileAuditStore, read: lockfile_audit.ReadLockfile
) -> list[AuditEvent]:
    lock, unread = _read_body(change, read)
    position = change.position
    if position is None:
        # Cannot be placed among the key's events: recorded as before, its deletion will be "unknown".
        if lock is None:
            return [lockfile_audit.ignored_event(change, unread)]
        return (
            [lockfile_audit.acquired_event(change, lock)]
            if store.record_acquired(lock, change.server_time, change.event_id)
            else []
        )
    body = lock.raw_info if lock else None
    entry = lockfile_audit.LockfileEntry(
        position, "created", change.server_time, change.event_id, change.sequencer or "", body
    )
    written, kept = store.record_lockfile_event(change.scope, change.lock_path, entry)
    if kept.kind != "created":
        return [
            lockfile_audit.ignored_event(change, f"sequencer {change.sequencer} is that of a deletion of the same key")
        ]
    # A redelivery goes by what the first delivery read: the lockfile may be gone by now.
    lock = _entry_lock(change, kept)
    events: list[AuditEvent] = []
    if lock is None:
        if written:
            events.append(
                lockfile_audit.ignored_event(
                    change, unread or "lockfile not read when its create event was first handled"
                )
            )
    elif store.record_acquired(lock, kept.server_time, kept.event_id):
        events.append(lockfile_audit.acquired_event(change, lock))
    before, after = store.lockfile_neighbours(change.scope, change.lock_path, position)
    if after is not None and after.kind == "deleted":
        events += _released_later(change, store, created=kept, lock=lock, before=before, deleted=after)
    return events


def _released_later(
    change: lockfile_audit.LockfileChange,
    store: lockfile_audit.LockfileAuditStore,
    *,
    created: lockfile_audit.LockfileEntry,
    lock: LockRecord | None,
    before: lockfile_audit.LockfileEntry | None,
    deleted: lockfile_audit.LockfileEntry,
) -> list[AuditEvent]:
    """This create arrived after the deletion right after it, which ends this acquisition. If that deletion had
    been matched to the create before this one, the match was wrong: the earlier acquisition ended before this."""
    earlier = _entry_lock(change, before) if before is not None else None
    revoked = earlier is not None and store.revoke_release(
        change.scope, change.lock_path, earlier.lock_id, deleted.position
    )
    note = f"this deletion was first taken for the release of {earlier.lock_id}" if revoked and earlier else None
    if lock is not None:
        return _release(change, store, created=created, lock=lock, deleted=deleted, note=note)
    if note is None:
        return []  # logged as "unknown" when it arrived
    return [lockfile_audit.release_event(change, deleted, None, None, None, reason=f"{note}; {_UNREAD_BETWEEN}")]


_UNREAD_BETWEEN = "an acquisition whose lockfile was not read came in between: which one it released is unknown"


def _record_deleted(
    change: lockfile_audit.LockfileChange, store: lockfile_audit.LockfileAuditStore
) -> list[AuditEvent]:
    position = change.position
    if position is None:
        return [
            lockfile_audit.release_event(
                change, None, None, None, None, reason="no sequencer: cannot tell which acquisition"
            )
        ]
    entry = lockfile_audit.LockfileEntry(
        position, "deleted", change.server_time, change.event_id, change.sequencer or ""
    )
    written, kept = store.record_lockfile_event(change.scope, change.lock_path, entry)
    if kept.kind != "deleted":
        return [
            lockfile_audit.ignored_event(change, f"sequencer {change.sequencer} is that of a create of the same key")
        ]
    before, after = store.lockfile_neighbours(change.scope, change.lock_path, position)
    lock = _entry_lock(change, before) if before is not None else None
    if before is None or lock is None:
        # No readable create right before this deletion: never guess which acquisition it ended.
        if not written:
            return []
        return [lockfile_audit.release_event(change, kept, None, None, None, reason=_unmatched(before))]
    note = None
    if after is not None and after.kind == "deleted":
        note = f"a deletion at {after.server_time.isoformat()} came after it: that one ended a later acquisition"
    return _release(change, store, created=before, lock=lock, deleted=kept, note=note)


def _unmatched(before: lockfile_audit.LockfileEntry | None) -> str:
    if before is None:
        return "no create event of this lockfile before this deletion (not delivered yet, or lost)"
    if before.kind == "deleted":
        return "the event before this deletion is another deletion: the create between them has not arrived"
    return "the create before this deletion was seen, but its lockfile could not be read"


def _release(
    change: lockfile_audit.LockfileChange,
    store: lockfile_audit.LockfileAuditStore,
    *,
    created: lockfile_audit.LockfileEntry,
    lock: LockRecord,
    deleted: lockfile_audit.LockfileEntry,
    note: str | None,
) -> list[AuditEvent]:
    record = store.record_released(
        change.scope, change.lock_path, lock.lock_id, deleted.server_time, deleted.event_id, position=deleted.position
    )
    if not record.first:
        return []  # this very release recorded before, or the lock item's (dual backend): logged then
    return [lockfile_audit.release_event(change, deleted, lock, created, record, reason=note)]
