"""Holder checks: is the run that took a lock still going?

A check answers ``running``, ``not_running`` or ``unknown`` with evidence a human can read. Only
``not_running`` ever allows a reap; any doubt is ``unknown``. This module holds the interface and the
two policy-declared answers (``assume: gone`` and ``assume: unknown``); checks that ask a CI system
plug in through :func:`build_holder_check`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tflock_reaper.lock import LockRecord
from tflock_reaper.policy import HolderSpec


class HolderState(StrEnum):
    RUNNING = "running"
    NOT_RUNNING = "not_running"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class HolderStatus:
    state: HolderState
    evidence: str
    check: str


class HolderCheck(Protocol):
    """Answers whether the holder of ``lock`` is still running. Must never raise: doubt is ``unknown``."""

    @property
    def name(self) -> str: ...

    def status(self, lock: LockRecord, now: datetime) -> HolderStatus: ...


@dataclass(frozen=True)
class AssumeGone:
    """The policy vouches that holders of matching locks are gone once the lock is past ``reap_after``."""

    name: str = "assume: gone"

    def status(self, lock: LockRecord, now: datetime) -> HolderStatus:
        return HolderStatus(HolderState.NOT_RUNNING, "the policy assumes the holder is gone", self.name)


@dataclass(frozen=True)
class AssumeUnknown:
    """No way to tell: the safe default. Never allows a reap."""

    name: str = "assume: unknown"

    def status(self, lock: LockRecord, now: datetime) -> HolderStatus:
        return HolderStatus(
            HolderState.UNKNOWN,
            "no holder check is configured for this lock (holder: {assume: unknown}), so it is never reaped",
            self.name,
        )


def build_holder_check(spec: HolderSpec) -> HolderCheck:
    if spec.assume == "gone":
        return AssumeGone()
    return AssumeUnknown()
