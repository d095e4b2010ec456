"""The reaper's own memory: when it first saw each lock, whom it warned, and every reap it made.

``StateStore`` is the interface the sweep uses; :class:`MemoryStateStore` serves one CLI run (first seen =
this run), :class:`tflock_reaper.adapters.state_table.StateTable` the deployed reaper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from tflock_reaper.domain.holds import Hold
from tflock_reaper.domain.lock import DynamoItem, LockRecord

LockKey = tuple[str, str, str]
"""(scope, lock path, lock ID): one acquisition of one state's lock in one lock table (or bucket). The scope (the
table's ARN, see :attr:`LockRecord.scope`) matters: two tables, or two accounts, may hold the same LockID and ID."""


def lock_key(lock: LockRecord) -> LockKey:
    return (lock.scope, lock.lock_path, lock.lock_id)


@dataclass(frozen=True)
class LockState:
    first_seen: datetime
    acquired_at: datetime | None = None
    """Server-side acquisition time (from the lock table's stream), when known."""
    warned_at: datetime | None = None
    holds: tuple[Hold, ...] = ()
    """What people said of this acquisition from the Slack app (snoozed, claimed): see ``domain.holds``."""


@dataclass(frozen=True)
class HeldLock:
    """One entry of the open set: a lock acquisition the audit (or an earlier sweep) recorded and whose release is
    not recorded. It says which lock item to read, nothing more: a lock is judged only from what is read."""

    scope: str
    lock_path: str
    lock_id: str


class StateStore(Protocol):
    def held(self, scope: str) -> Sequence[HeldLock]:
        """The open set of one lock table (or bucket), as of this call. :meth:`observe` then matches it against the
        locks read: an entry whose lock was not found is recorded as released by :meth:`settle`."""
        ...

    def observe(self, locks: Sequence[LockRecord], now: datetime) -> dict[LockKey, LockState]:
        """The state of each lock; ``now`` is the first-seen time of locks not seen before. A store may defer
        recording that until :meth:`settle`."""
        ...

    def settle(self, warned: Iterable[LockRecord], now: datetime, blocked: Iterable[LockRecord] = ()) -> None:
        """End of a sweep: record what :meth:`observe` deferred, and ``now`` as the warning time of ``warned``
        (kept from the first warning) and as the time the reap of ``blocked`` was first blocked (the history)."""
        ...

    def mark_alerted(self, lock: LockRecord, channels: str) -> None:
        """Remember (once) the channels alerted about this lock, as JSON, so its release can be announced."""
        ...

    def begin_reap(self, lock: LockRecord, now: datetime, reasons: Sequence[str], by: str = "sweep") -> None:
        """Record the intent (with the full item, and ``by``: ``sweep`` or ``unlock by <user@host>``) before
        deleting: if this fails, nothing is deleted."""
        ...

    def end_reap(self, lock: LockRecord, outcome: str, now: datetime, item: DynamoItem | None) -> None: ...

    def last_persisted(self, scope: str, state_path: str) -> datetime | None:
        """The server time of the last digest write of this state (in the lock table ``scope``) seen on the
        stream, if any."""
        ...
