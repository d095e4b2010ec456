"""The state_progress holder check: a recent write of the state is a sign of life, whatever the holder's clock says.

It may only ever err toward ``running``: a write within the window counts even when the lock's ``Created`` (the
holder's clock) dates the lock after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from factories import NOW, lock_item
from tflock_reaper.adapters.holders.progress import StateProgress
from tflock_reaper.domain.liveness import HolderState
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import StateProgressCheck

PATH = "tf-state/prod/network/terraform.tfstate"


def _lock(created: datetime) -> LockRecord:
    record = classify_item(lock_item(PATH, created=created), None)
    assert isinstance(record, LockRecord)
    return record


@dataclass(frozen=True)
class _LastWrite:
    """A state store that has seen one digest write (or none), whichever state it is asked about."""

    at: datetime | None

    def last_persisted(self, *_where: str) -> datetime | None:
        return self.at


def _check(written: datetime | None) -> StateProgress:
    return StateProgress(StateProgressCheck(within=timedelta(minutes=10)), _LastWrite(written))


def test_a_fast_holder_clock_does_not_hide_a_recent_write():
    # Given a lock taken 12 minutes ago by a host whose clock runs 10 minutes fast (Created: 2 minutes ago), first
    # seen by the reaper 11 minutes ago, and an apply that wrote the state 3 minutes ago
    created, first_seen, written = NOW - timedelta(minutes=2), NOW - timedelta(minutes=11), NOW - timedelta(minutes=3)

    # When the check is asked
    status = _check(written).status(_lock(created), NOW, first_seen)

    # Then the write counts (judged by Created, it came "before the lock" and the answer was not_running)
    assert status.state is HolderState.RUNNING
    assert status.evidence == "the state was written 3m ago, within 10m (after the lock was taken)"


def test_a_recent_write_that_may_predate_the_lock_still_counts():
    status = _check(NOW - timedelta(minutes=4)).status(
        _lock(NOW - timedelta(minutes=1)), NOW, NOW - timedelta(minutes=2)
    )
    assert status.state is HolderState.RUNNING
    assert "perhaps before the lock was taken, which cannot be told: counted as progress" in status.evidence


@pytest.mark.parametrize(
    ("written", "seen"),
    [
        (None, "no write of this state was seen on the stream"),
        (NOW - timedelta(minutes=11), "the last write of this state was 11m ago"),
    ],
)
def test_no_write_within_the_window_is_no_sign_of_progress(written, seen):
    status = _check(written).status(_lock(NOW - timedelta(hours=3)), NOW, NOW - timedelta(hours=3))
    assert status.state is HolderState.NOT_RUNNING
    assert status.evidence == f"{seen}: no sign of progress within 10m"
