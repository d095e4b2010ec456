"""The stream function's service: record each lock change once, say what to log, and decide what is retried.

Two sources, one audit: the records of a lock table's stream (:func:`audit_stream_record`) and the S3 events of
lockfiles (:func:`audit_lockfile_events`) give the same ``domain.audit`` events, logged and counted through an
:class:`AuditLog`. Writes are idempotent and conditional, so a redelivered record records nothing twice: a change
already recorded logs and counts nothing.

What is retried: a record that can never be processed is logged and counted, never raised; a store failure raises,
so that only that record (or S3 event) is retried; so does a channel's retryable failure to send a ``resolved``
(:class:`ResolvedNotSentError`): its release is recorded already, so the retry only sends what was not sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from tflock_reaper.domain import lockfile_audit
from tflock_reaper.domain.audit import (
    Acquired,
    AuditEvent,
    AuditStore,
    EventKind,
    Ignored,
    Persisted,
    Released,
    StreamChange,
    UnreadableRecordError,
    acquired_event,
    ignored_event,
    interpret,
    parse_record,
    released_by,
    released_event,
)
from tflock_reaper.domain.lock import LockfileObject, LockRecord, SkippedItem, classify_lockfile
from tflock_reaper.domain.records import LockfileEntry, ReleaseRecord

if TYPE_CHECKING:
    from tflock_reaper.domain.notification import Notification
    from tflock_reaper.services.dispatch import DispatchResult

logger = logging.getLogger(__name__)


class AuditLog(Protocol):
    """Where the audit goes: the function's structured log lines and metrics."""

    def publish(self, event: AuditEvent) -> None:
        """One log line for the event, and its count."""
        ...

    def unreadable(self, reason: str) -> None:
        """One log line for a record that can never be processed (not even its lock is known), and its count."""
        ...

    def count(self, metric: str, value: int) -> None: ...


Announce = Callable[["Notification", str], "DispatchResult"]
"""Sends a ``resolved`` notification to the channels of a snapshot (JSON, see ``alerting.channel_snapshot``)."""


class ResolvedNotSentError(RuntimeError):
    """A channel failed in a way a retry can fix: fail this record so that it is retried (the release is
    recorded already, so the retry only sends what was not sent)."""


def audit_stream_record(record: dict[str, Any], store: AuditStore, announce: Announce, log: AuditLog) -> None:
    """One record of a lock table's stream: recorded once, logged, and its ``resolved`` announced. Raises only
    for what a retry can fix: the store's failures and :class:`ResolvedNotSentError`."""
    try:
        change = parse_record(record)
    except UnreadableRecordError as err:
        log.unreadable(str(err))  # malformed: retrying cannot help
        return
    recorded = record_change(change, store)
    if recorded is None:
        logger.debug("already recorded", extra={"lock_path": change.lock_path, "sequence": change.sequence_number})
        return
    if recorded.event is not None:
        log.publish(recorded.event)
    _announce_resolved(recorded, announce, log)


def _announce_resolved(recorded: Recorded, announce: Announce, log: AuditLog) -> None:
    if recorded.resolved is None or recorded.channels is None:
        return
    lock_path = recorded.resolved.lock_path
    try:
        result = announce(recorded.resolved, recorded.channels)
    except Exception:
        # Not a channel's answer (e.g. unreadable channel settings): a retry would fail the same way.
        logger.exception("resolved notification failed", extra={"lock_path": lock_path})
        log.count("NotificationFailures", 1)
        return
    log.count("NotificationsSent", len(result.sent))
    if result.failed:
        log.count("NotificationFailures", len(result.failed))
        retryable = [r.channel for r in result.failed if r.retryable]
        if retryable:
            raise ResolvedNotSentError(f"resolved for {lock_path} not sent on {', '.join(retryable)}: will retry")


def audit_lockfile_events(
    events: Sequence[dict[str, Any]],
    store: lockfile_audit.LockfileAuditStore,
    read: lockfile_audit.ReadLockfile,
    log: AuditLog,
) -> None:
    """S3 events of lockfiles from EventBridge, recorded per object in S3's order (sequencer) and logged. Raises
    only for the store's failures (and the read's, but for a vanished object): the invocation is retried, and what
    was recorded before the failure is recorded once."""
    changes: list[lockfile_audit.LockfileChange] = []
    for event in events:
        try:
            changes.append(lockfile_audit.parse_lockfile_event(event))
        except UnreadableRecordError as err:
            log.unreadable(str(err))
    for change in sorted(changes, key=lockfile_audit.batch_order):
        recorded = record_lockfile_change(change, store, read)
        if not recorded:
            logger.debug("already recorded", extra={"lock_path": change.lock_path, "event_id": change.event_id})
        for audit_event in recorded:
            log.publish(audit_event)


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
        if meaning.unreadable and change.table_arn:
            # Incremental sweeps read the acquisitions the stream records; this is none: the next sweep reads all.
            store.request_full(
                change.table_arn, f"an unreadable lock was written at {meaning.lock_path}", change.server_time
            )
        return ignored_event(meaning.lock_path, change.server_time, meaning.reason)
    if isinstance(meaning, Acquired):
        if not store.record_acquired(meaning.lock, change.server_time, change.sequence_number):
            return None
        return acquired_event(meaning.lock, change.server_time)
    if isinstance(meaning, Persisted):
        if not store.record_persisted(change.table_arn, meaning.state_path, change.server_time, change.sequence_number):
            return None
        return AuditEvent(EventKind.STATE_PERSISTED, meaning.state_path, change.server_time)
    if meaning.lock is None:
        return _released(change, meaning, None)
    lock = meaning.lock
    record = store.record_released(lock, change.server_time, change.sequence_number, principal=change.principal)
    event = _released(change, meaning, record)
    resolved = _resolved(event, meaning.lock, record, change.table)
    if not record.first and resolved is None:
        return None
    # A redelivered release logs nothing again, but its ``resolved`` is offered again: the ledger sends it once,
    # and a send that failed (so that the record was retried) gets its second chance.
    return Recorded(event if record.first else None, resolved, record.alert_channels)


def _released(change: StreamChange, meaning: Released, record: ReleaseRecord | None) -> AuditEvent:
    """Held time runs from the server's acquisition time when recorded, else from the holder's ``Created``."""
    lock = meaning.lock
    since = (record.acquired_at if record else None) or (lock.info.created if lock else None)
    by = released_by(change.server_time, lock, record, change.principal)
    return released_event(meaning.lock_path, change.server_time, lock, since=since, by=by, record=record)


def _resolved(event: AuditEvent, lock: LockRecord, record: ReleaseRecord, table: str) -> Notification | None:
    """Alerted locks get a ``resolved`` when released; a reap was announced (and resolved) by the sweeper."""
    if not record.alert_channels or event.released_by == "tflock-reaper":
        return None
    held = int(event.held_seconds or 0)
    # Imported here: only the release of a lock that was alerted about builds a notification (cold start).
    from tflock_reaper.domain.durations import format_duration  # noqa: PLC0415
    from tflock_reaper.domain.notification import Notification, NotificationKind  # noqa: PLC0415

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
        return [_ignored(change, reason)]
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


def _entry_lock(change: lockfile_audit.LockfileChange, entry: LockfileEntry) -> LockRecord | None:
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
            return [_ignored(change, unread)]
        return (
            [acquired_event(lock, change.server_time)]
            if store.record_acquired(lock, change.server_time, change.event_id)
            else []
        )
    body = lock.raw_info if lock else None
    entry = LockfileEntry(position, "created", change.server_time, change.event_id, change.sequencer or "", body)
    written, kept = store.record_lockfile_event(change.scope, change.lock_path, entry)
    if kept.kind != "created":
        return [_ignored(change, f"sequencer {change.sequencer} is that of a deletion of the same key")]
    # A redelivery goes by what the first delivery read: the lockfile may be gone by now.
    lock = _entry_lock(change, kept)
    events: list[AuditEvent] = []
    if lock is None:
        if written:
            events.append(_ignored(change, unread or "lockfile not read when its create event was first handled"))
    elif store.record_acquired(lock, kept.server_time, kept.event_id):
        events.append(acquired_event(lock, change.server_time))
    before, after = store.lockfile_neighbours(change.scope, change.lock_path, position)
    if after is not None and after.kind == "deleted":
        events += _released_later(change, store, created=kept, lock=lock, before=before, deleted=after)
    return events


def _released_later(
    change: lockfile_audit.LockfileChange,
    store: lockfile_audit.LockfileAuditStore,
    *,
    created: LockfileEntry,
    lock: LockRecord | None,
    before: LockfileEntry | None,
    deleted: LockfileEntry,
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
    return [_unknown_release(change, deleted, f"{note}; {_UNREAD_BETWEEN}")]


_UNREAD_BETWEEN = "an acquisition whose lockfile was not read came in between: which one it released is unknown"


def _record_deleted(
    change: lockfile_audit.LockfileChange, store: lockfile_audit.LockfileAuditStore
) -> list[AuditEvent]:
    position = change.position
    if position is None:
        return [_unknown_release(change, None, "no sequencer: cannot tell which acquisition")]
    entry = LockfileEntry(position, "deleted", change.server_time, change.event_id, change.sequencer or "")
    written, kept = store.record_lockfile_event(change.scope, change.lock_path, entry)
    if kept.kind != "deleted":
        return [_ignored(change, f"sequencer {change.sequencer} is that of a create of the same key")]
    before, after = store.lockfile_neighbours(change.scope, change.lock_path, position)
    lock = _entry_lock(change, before) if before is not None else None
    if before is None or lock is None:
        # No readable create right before this deletion: never guess which acquisition it ended.
        if not written:
            return []
        return [_unknown_release(change, kept, _unmatched(before))]
    note = None
    if after is not None and after.kind == "deleted":
        note = f"a deletion at {after.server_time.isoformat()} came after it: that one ended a later acquisition"
    return _release(change, store, created=before, lock=lock, deleted=kept, note=note)


def _unmatched(before: LockfileEntry | None) -> str:
    if before is None:
        return "no create event of this lockfile before this deletion (not delivered yet, or lost)"
    if before.kind == "deleted":
        return "the event before this deletion is another deletion: the create between them has not arrived"
    return "the create before this deletion was seen, but its lockfile could not be read"


def _release(
    change: lockfile_audit.LockfileChange,
    store: lockfile_audit.LockfileAuditStore,
    *,
    created: LockfileEntry,
    lock: LockRecord,
    deleted: LockfileEntry,
    note: str | None,
) -> list[AuditEvent]:
    record = store.record_released(lock, deleted.server_time, deleted.event_id, position=deleted.position)
    if not record.first:
        return []  # this very release recorded before, or the lock item's (dual backend): logged then
    # Held time runs from the recorded server time of the acquisition, else from its create event's (the lockfile's
    # Created is the holder's clock); never negative: the deletion comes after its create by sequencer, and two
    # events of the same second may carry times in either order.
    at = deleted.server_time
    since = min(record.acquired_at or created.server_time, at)
    by = released_by(at, lock, record)
    event = released_event(change.lock_path, at, lock, since=since, by=by, reason=note, record=record)
    # Without ``lock_created``, as lockfile releases have always been logged (their body was not kept at first).
    # README promises the same fields as a lock item's release: adding it is a change of its own, not issue 14's.
    return [replace(event, created=None)]


def _ignored(change: lockfile_audit.LockfileChange, reason: str) -> AuditEvent:
    return ignored_event(change.lock_path, change.server_time, reason)


def _unknown_release(change: lockfile_audit.LockfileChange, deleted: LockfileEntry | None, reason: str) -> AuditEvent:
    """A deletion the events cannot match to an acquisition: never guessed."""
    at = deleted.server_time if deleted is not None else change.server_time
    return released_event(change.lock_path, at, None, since=None, by="unknown", reason=reason)
