"""In-memory stand-ins of the reaper's stores, for one process: the CLI without a state table, and the tests. Same
semantics as the DynamoDB adapters (``state_table.py``, ``notification_ledger.py``); nothing survives the run."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from tflock_reaper.domain.lock import DynamoItem, LockRecord
from tflock_reaper.domain.memory import HeldLock, LockKey, LockState, lock_key
from tflock_reaper.domain.notification import DedupKey


@dataclass
class MemoryStateStore:
    """State for a single run: every lock is first seen now, so only ``min_observed: 0s`` lets one be reaped."""

    states: dict[LockKey, LockState] = field(default_factory=dict)
    reaps: dict[LockKey, dict[str, object]] = field(default_factory=dict)
    alerted: dict[LockKey, str] = field(default_factory=dict)
    persisted: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def held(self, scope: str) -> list[HeldLock]:
        """A single run has no audit: its open set is empty (its sweeps read every item)."""
        return []

    def observe(self, locks: Sequence[LockRecord], now: datetime) -> dict[LockKey, LockState]:
        for lock in locks:
            self.states.setdefault(lock_key(lock), LockState(first_seen=now))
        return {lock_key(lock): self.states[lock_key(lock)] for lock in locks}

    def settle(self, warned: Iterable[LockRecord], now: datetime, blocked: Iterable[LockRecord] = ()) -> None:
        for lock in warned:
            key = lock_key(lock)
            self.states[key] = replace(self.states[key], warned_at=self.states[key].warned_at or now)

    def mark_alerted(self, lock: LockRecord, channels: str) -> None:
        self.alerted.setdefault(lock_key(lock), channels)

    def begin_reap(self, lock: LockRecord, now: datetime, reasons: Sequence[str], by: str = "sweep") -> None:
        self.reaps[lock_key(lock)] = {"status": "pending", "started_at": now, "item": lock.item, "by": by}

    def last_persisted(self, scope: str, state_path: str) -> datetime | None:
        return self.persisted.get((scope, state_path))

    def end_reap(self, lock: LockRecord, outcome: str, now: datetime, item: DynamoItem | None) -> None:
        self.reaps[lock_key(lock)].update(status=outcome, finished_at=now, final_item=item)


@dataclass
class MemoryLedger:
    """A ledger for one process (the CLI, tests): nothing survives the run."""

    entries: dict[tuple[str, str], str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def claim(self, channel: str, key: DedupKey) -> bool:
        with self._lock:
            if (channel, str(key)) in self.entries:
                return False
            self.entries[(channel, str(key))] = "sending"
            return True

    def complete(self, channel: str, key: DedupKey) -> None:
        with self._lock:
            self.entries[(channel, str(key))] = "sent"

    def release(self, channel: str, key: DedupKey) -> None:
        with self._lock:
            if self.entries.get((channel, str(key))) == "sending":
                del self.entries[(channel, str(key))]

    def sent(self) -> list[tuple[str, str]]:
        """(channel, dedup key) of every completed send, in order."""
        return [k for k, status in self.entries.items() if status == "sent"]
