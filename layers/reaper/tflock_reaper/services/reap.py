"""The reap: record the intent, then delete exactly the lock that was judged (each side of a dual backend conditional
on what was read: the raw ``Info`` for an item, the ETag for a lockfile), then record what happened. Whatever was
deleted is logged in full."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tflock_reaper.domain.decision import (
    Outcome,
    Verdict,
)
from tflock_reaper.domain.errors import AwsAccessError
from tflock_reaper.domain.lock import (
    DynamoItem,
    LockRecord,
    lockfile_item,
)
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.ports import LockfileSource, LockSource

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Targets:
    """Where the sweep's locks live: the lock tables, the lockfile buckets, or both."""

    tables: Sequence[LockSource]
    lockfiles: LockfileSource | None

    def table_of(self, lock: LockRecord) -> LockSource:
        """The table the lock was read from, by its ARN (the name when unknown): a LockID and Info held in two
        tables are two locks, each deleted from its own table."""
        for table in self.tables:
            if (table.arn, table.name) == (lock.table_arn, lock.table):
                return table
        raise AwsAccessError(f"{lock.lock_path!r} was not read from any of the lock tables swept")


@dataclass(frozen=True)
class _Deletion:
    deleted: list[DynamoItem]
    """Everything this reap deleted, each in full (a dual backend: the lockfile's record, then the lock item)."""
    notes: list[str]
    found: DynamoItem | None = None
    """Not deleted: the lock item found instead, when known."""
    left: str | None = None
    """A dual backend's side that was not deleted, and why (the other side was)."""


def reap(
    lock: LockRecord,
    verdict: Verdict,
    targets: Targets,
    state: StateStore,
    clock: Callable[[], datetime],
    *,
    by: str = "sweep",
) -> tuple[Outcome, list[str], DynamoItem | None]:
    try:
        state.begin_reap(lock, clock(), verdict.reasons, by)
    except AwsAccessError as err:
        logger.error("reap not attempted", extra={"lock_path": lock.lock_path, "error": str(err)})
        return Outcome.FAILED, [f"could not record the reap before deleting ({err}): nothing deleted"], None
    try:
        result = _delete(lock, targets)
    except AwsAccessError as err:
        logger.error("reap failed", extra={"lock_path": lock.lock_path, "error": str(err)})
        _best_effort(lambda: state.end_reap(lock, Outcome.FAILED.value, clock(), None), "cannot record", lock)
        return Outcome.FAILED, [f"delete failed: {err}"], None

    if result.deleted:
        # Whatever was deleted is reaped, even when a dual backend's other side could not be: logged in full,
        # alerted as reaped, with what was left and why.
        outcome = Outcome.REAPED
        logger.warning(
            "lock reaped",
            extra={
                **_lock_fields(lock),
                "who": lock.info.who,
                "operation": lock.info.operation,
                "deleted_item": result.deleted[-1],
                "deleted_items": result.deleted,
                "left": result.left,
                "follow_up": "a reaped apply may have left state partly written: run terraform plan and review",
            },
        )
    else:
        outcome = Outcome.CHANGED
        logger.info(
            "lock changed meanwhile",
            extra={
                **_lock_fields(lock),
                "notes": result.notes,
                "current_item": result.found,
            },
        )
    final = result.deleted[-1] if result.deleted else result.found
    _best_effort(lambda: state.end_reap(lock, outcome.value, clock(), final), "cannot record reap", lock)
    return outcome, result.notes, result.deleted[-1] if result.deleted else None


def _lock_fields(lock: LockRecord) -> dict[str, object]:
    """Which lock a reap's log line is about: its path, ID, table and backend."""
    return {"lock_path": lock.lock_path, "lock_id": lock.lock_id, "lock_table": lock.table, "backend": lock.backend}


def _delete(lock: LockRecord, targets: Targets) -> _Deletion:
    """Each side conditional on what was judged, the lockfile first (Terraform takes it first). A lockfile that
    changed stops the reap there: the lock item is left alone. Whether each side may be deleted at all was
    decided before (see :func:`tflock_reaper.domain.decision.decide`): nothing here deletes one side of a lock whose
    other side is known to be undeletable."""
    if lock.lockfile is None:
        return _delete_item(lock, targets, [], [])
    if targets.lockfiles is None:  # pragma: no cover - lockfile locks come only from a lockfile source
        raise AwsAccessError("no lockfile source to delete from")
    where = f"s3://{lock.lockfile.location}"
    deletion = targets.lockfiles.delete_if_unchanged(lock.lockfile)
    if not deletion.deleted:
        notes = [f"not deleted: the lockfile {where} changed after it was read ({deletion.reason})"]
        if lock.in_table:
            notes.append("the DynamoDB lock item was left alone")
        return _Deletion(deleted=[], notes=notes)
    notes = [f"lockfile {where} deleted, conditional on the ETag judged ({lock.lockfile.etag})"]
    deleted = [lockfile_item(lock.lockfile)]
    if not lock.in_table:
        return _Deletion(deleted=deleted, notes=notes)
    try:
        return _delete_item(lock, targets, notes, deleted)
    except AwsAccessError as err:
        left = f"the DynamoDB lock item {lock.lock_path!r} was not deleted: {err}"
        return _Deletion(deleted=deleted, notes=[*notes, f"{left}: release it by hand"], left=left)


def _delete_item(lock: LockRecord, targets: Targets, notes: list[str], deleted: list[DynamoItem]) -> _Deletion:
    result = targets.table_of(lock).delete_if_unchanged(lock.lock_path, lock.raw_info)
    dual = lock.lockfile is not None
    if not result.deleted:
        side = "the DynamoDB lock item" if dual else "the lock"
        why = f"{side} was released or re-acquired after it was read"
        notes.append(f"not deleted: {why}")
        return _Deletion(deleted=deleted, notes=notes, found=result.item, left=why if deleted else None)
    notes.append(("DynamoDB lock item " if dual else "") + "deleted, conditional on the exact Info judged")
    return _Deletion(deleted=[*deleted, result.item or lock.item], notes=notes)


def _best_effort(action: Callable[[], None], message: str, lock: LockRecord) -> None:
    """State writes after the decision must not stop the sweep; they are logged for follow-up."""
    try:
        action()
    except AwsAccessError as err:
        logger.error(message, extra={"lock_path": lock.lock_path, "error": str(err)})
