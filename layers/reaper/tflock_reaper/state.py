"""The reaper's own memory: when it first saw each lock, whom it warned, and every reap it made.

``StateStore`` is the interface the sweep uses; :class:`MemoryStateStore` serves one CLI run (first seen =
this run), :class:`tflock_reaper.dal.state_table.StateTable` the deployed reaper.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from tflock_reaper.lock import DynamoItem, LockRecord

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


class StateStore(Protocol):
    def observe(self, locks: Sequence[LockRecord], now: datetime) -> dict[LockKey, LockState]:
        """The state of each lock; ``now`` is the first-seen time of locks not seen before. A store may defer
        recording that until :meth:`settle`."""
        ...

    def settle(self, warned: Iterable[LockRecord], now: datetime) -> None:
        """End of a sweep: record what :meth:`observe` deferred, and ``now`` as the warning time of ``warned``
        (kept from the first warning)."""
        ...

    def mark_alerted(self, lock: LockRecord, channels: str) -> None:
        """Remember (once) the channels alerted about this lock, as JSON, so its release can be announced."""
        ...

    def begin_reap(self, lock: LockRecord, now: datetime, reasons: Sequence[str]) -> None:
        """Record the intent (with the full item) before deleting: if this fails, nothing is deleted."""
        ...

    def end_reap(self, lock: LockRecord, outcome: str, now: datetime, item: DynamoItem | None) -> None: ...

    def last_persisted(self, scope: str, state_path: str) -> datetime | None:
        """The server time of the last digest write of this state (in the lock table ``scope``) seen on the
        stream, if any."""
        ...


@dataclass
class MemoryStateStore:
    """State for a single run: every lock is first seen now, so only ``min_observed: 0s`` lets one be reaped."""

    states: dict[LockKey, LockState] = field(default_factory=dict)
    reaps: dict[LockKey, dict[str, object]] = field(default_factory=dict)
    alerted: dict[LockKey, str] = field(default_factory=dict)
    persisted: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def observe(self, locks: Sequence[LockRecord], now: datetime) -> dict[LockKey, LockState]:
        for lock in locks:
            self.states.setdefault(lock_key(lock), LockState(first_seen=now))
        return {lock_key(lock): self.states[lock_key(lock)] for lock in locks}

    def settle(self, warned: Iterable[LockRecord], now: datetime) -> None:
        for lock in warned:
            key = lock_key(lock)
            self.states[key] = replace(self.states[key], warned_at=self.states[key].warned_at or now)

    def mark_alerted(self, lock: LockRecord, channels: str) -> None:
        self.alerted.setdefault(lock_key(lock), channels)

    def begin_reap(self, lock: LockRecord, now: datetime, reasons: Sequence[str]) -> None:
        self.reaps[lock_key(lock)] = {"status": "pending", "started_at": now, "item": lock.item}

    def last_persisted(self, scope: str, state_path: str) -> datetime | None:
        return self.persisted.get((scope, state_path))

    def end_reap(self, lock: LockRecord, outcome: str, now: datetime, item: DynamoItem | None) -> None:
        self.reaps[lock_key(lock)].update(status=outcome, finished_at=now, final_item=item)
