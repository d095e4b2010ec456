"""Signs of life in the state itself: Terraform writes the state (and its ``-md5`` digest) at most every 20 s
while an apply makes progress. A recent digest write means the holder may be alive.

Any write within the window counts, even one that may predate the lock: this check may only ever err toward
``running``. Whether a write came after the acquisition could only be told from a lower bound on the acquisition
time, and there is none from the server (``acquired_by`` is an upper bound; the lock's ``Created`` comes from the
holder's clock, and a clock running fast would date the acquisition after a write that in fact followed it).
A write before the lock only delays the reap by ``within`` at most.

No recent write is only weak evidence (a plan, or an apply waiting for a slow resource, writes nothing), so
the policy refuses this check on its own: combined with a CI check, it can veto a reap but not cause one.
"""

from __future__ import annotations

from datetime import datetime

from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.policy import StateProgressCheck


class StateProgress:
    name = "state_progress"

    def __init__(self, settings: StateProgressCheck, state: StateStore) -> None:
        self._within = settings.within
        self._state = state
        self._cache: dict[tuple[str, str], datetime | None] = {}

    def _last_write(self, lock: LockRecord) -> datetime | None:
        """The state's digest lives in the lock's own table: the write is looked up there (its scope)."""
        key = (lock.scope, lock.lock_path)
        if key not in self._cache:
            self._cache[key] = self._state.last_persisted(*key)
        return self._cache[key]

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        written = self._last_write(lock)
        window = format_duration(self._within)
        if written is not None and now - written <= self._within:
            ago = format_duration(now - written)
            when = (
                "after the lock was taken"
                if written > acquired_by
                else "perhaps before the lock was taken, which cannot be told: counted as progress"
            )
            return HolderStatus(
                HolderState.RUNNING, f"the state was written {ago} ago, within {window} ({when})", self.name
            )
        if written is None:
            seen = "no write of this state was seen on the stream"
        else:
            seen = f"the last write of this state was {format_duration(now - written)} ago"
        return HolderStatus(HolderState.NOT_RUNNING, f"{seen}: no sign of progress within {window}", self.name)
