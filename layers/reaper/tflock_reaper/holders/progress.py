"""Signs of life in the state itself: Terraform writes the state (and its ``-md5`` digest) at most every 20 s
while an apply makes progress. A digest write after the lock was taken, and recent, means the holder is alive.

No recent write is only weak evidence (a plan, or an apply waiting for a slow resource, writes nothing), so
the policy refuses this check on its own: combined with a CI check, it can veto a reap but not cause one.
"""

from __future__ import annotations

from datetime import datetime

from tflock_reaper.durations import format_duration
from tflock_reaper.holder import HolderState, HolderStatus
from tflock_reaper.lock import LockRecord
from tflock_reaper.policy import StateProgressCheck
from tflock_reaper.state import StateStore


class StateProgress:
    name = "state_progress"

    def __init__(self, settings: StateProgressCheck, state: StateStore) -> None:
        self._within = settings.within
        self._state = state
        self._cache: dict[str, datetime | None] = {}

    def _last_write(self, state_path: str) -> datetime | None:
        if state_path not in self._cache:
            self._cache[state_path] = self._state.last_persisted(state_path)
        return self._cache[state_path]

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        written = self._last_write(lock.lock_path)
        window = format_duration(self._within)
        if written is not None and written >= lock.info.created and now - written <= self._within:
            ago = format_duration(now - written)
            return HolderStatus(
                HolderState.RUNNING, f"the state was written {ago} ago, after the lock was taken", self.name
            )
        if written is None:
            seen = "no write of this state was seen on the stream"
        else:
            seen = f"the last write of this state was {format_duration(now - written)} ago"
        return HolderStatus(HolderState.NOT_RUNNING, f"{seen}: no sign of progress within {window}", self.name)
