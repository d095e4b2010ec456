"""What holds one state's lock now, and whether it is the acquisition a person named: the read and the refusals that
``tflock-reaper unlock`` and the Slack app's *Reap now* share (pure: the tables and buckets are ports).

A person names an acquisition (a lock path and a lock ID); the lock is read again, consistently, from every lock table
given and from the lockfile, and only that acquisition may be released: never a digest key, an item that is not a
lock, a lock that cannot be read, nor another acquisition of the same state. :func:`choose` says which, or why not;
each caller words the refusal its own way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tflock_reaper.domain.lock import (
    DigestRecord,
    DynamoItem,
    LockfileObject,
    LockRecord,
    SkippedItem,
    classify_item,
    classify_lockfile,
    merge_backends,
)


class TableReader(Protocol):
    """One lock table, read by key (consistently). ``arn``: see :class:`tflock_reaper.domain.ports.LockSource`."""

    name: str

    @property
    def arn(self) -> str | None: ...

    def get(self, lock_path: str) -> DynamoItem | None: ...


class LockfileReader(Protocol):
    """The lockfiles of some buckets, read by lock path."""

    name: str

    def get(self, lock_path: str) -> LockfileObject | None: ...


@dataclass
class Found:
    """What is at the lock path: the locks (a dual backend's two sides merged), and anything else."""

    locks: list[LockRecord] = field(default_factory=list)
    others: list[DigestRecord | SkippedItem] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.locks and not self.others


def read(lock_path: str, tables: Sequence[TableReader], lockfiles: LockfileReader | None, now: datetime) -> Found:
    """Everything at ``lock_path``: each table's item and the lockfile, classified (consistent reads; each
    table's ARN is read as the locks' scope). Raises the readers' errors (``AwsAccessError``)."""
    found = Found()
    table_locks: list[LockRecord] = []
    file_locks: list[LockRecord] = []
    for table in tables:
        item = table.get(lock_path)
        if item is None:
            continue
        classified = classify_item(item, now, table=table.name, table_arn=table.arn)
        if isinstance(classified, LockRecord):
            table_locks.append(classified)
        else:
            found.others.append(classified)
    obj = lockfiles.get(lock_path) if lockfiles is not None else None
    parsed = classify_lockfile(obj, now) if obj is not None else None
    if isinstance(parsed, LockRecord):
        file_locks.append(parsed)
    elif parsed is not None:
        found.others.append(parsed)
    found.locks = merge_backends(table_locks, file_locks)
    return found


class Refusal(StrEnum):
    """Why the acquisition named may not be released."""

    AMBIGUOUS = "ambiguous"
    """Held with that ID in several lock tables: say which one."""
    DIGEST_KEY = "digest_key"
    """Its key ends in ``-md5``, as Terraform's digest items' do: never deleted (nor may the stack's role)."""
    NOTHING = "nothing"
    """Nothing at all at the lock path: released."""
    OTHER_ACQUISITION = "other_acquisition"
    """Another acquisition (another ID) holds the state now."""
    NOT_A_LOCK = "not_a_lock"
    """What is there may not be deleted: a digest, an unreadable lock, an item that is not Terraform's."""


class NotTheLockError(Exception):
    """The acquisition named is not there to release: nothing may be deleted. ``found``: what is there instead;
    ``matching``: the locks held with the ID named (several: :attr:`Refusal.AMBIGUOUS`; one: its key is refused)."""

    def __init__(self, refusal: Refusal, found: Found, matching: Sequence[LockRecord] = ()) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal
        self.found = found
        self.matching = list(matching)

    @property
    def unreadable(self) -> list[SkippedItem]:
        """The locks there that cannot be read (nobody may delete those but a person, by hand)."""
        return [other for other in self.found.others if isinstance(other, SkippedItem) and other.unreadable]


def choose(found: Found, lock_id: str, *, prefer: Callable[[LockRecord], bool] | None = None) -> LockRecord:
    """The lock held with ``lock_id``, or :class:`NotTheLockError` saying what is there instead. ``prefer`` narrows
    the same ID held in several tables to the one it accepts (the Slack app knows the table from the acquisition's
    record); without it, or when it does not narrow them to one, that is :attr:`Refusal.AMBIGUOUS`."""
    matching = [lock for lock in found.locks if lock.lock_id == lock_id]
    if len(matching) > 1 and prefer is not None:
        matching = [lock for lock in matching if prefer(lock)] or matching
    if len(matching) > 1:
        raise NotTheLockError(Refusal.AMBIGUOUS, found, matching)
    if matching:
        lock = matching[0]
        if lock.digest_like_key:
            raise NotTheLockError(Refusal.DIGEST_KEY, found, matching)
        return lock
    if found.empty:
        raise NotTheLockError(Refusal.NOTHING, found)
    raise NotTheLockError(Refusal.OTHER_ACQUISITION if found.locks else Refusal.NOT_A_LOCK, found)
