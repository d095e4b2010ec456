"""The race test (issue 8, point 1), bounded for the suite: Terraform-like workers take, hold, release and
abandon locks on a pool of states while two overlapping sweepers reap in enforce mode with the most aggressive
policy, asking the workers' registry over loopback HTTP who is alive. ``make soak`` runs the same race longer.

The lab (``tests/racelab.py``) says why it runs on in-process moto made atomic per request. The last two tests
prove that its audits bite: a reaper that trusts no holder check, or deletes without its condition, is caught.
"""

from __future__ import annotations

import pytest
import racelab
from racelab import RaceConfig, run_race
from tflock_reaper.adapters.lock_table import DeleteResult, LockTable

#: The bounded run: about 1,000 lifetimes in 20-25 s here; the time bound keeps a loaded machine under 40 s.
BOUNDED = RaceConfig(lifetimes=1000, seconds=25.0)
#: Enough lifetimes for the race to mean something even on a slow machine that hits the time bound.
MIN_LIFETIMES = 300


@pytest.fixture
def race_env(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("incremental", [False, True], ids=["full sweeps", "incremental sweeps"])
def test_no_live_lock_is_ever_deleted_and_every_abandoned_lock_is_reaped(
    race_env: None, capsys: pytest.CaptureFixture[str], incremental: bool
) -> None:
    # Given workers locking like Terraform, some dying holding their lock, and sweeps running all along (with the
    # audit: incremental sweeps reconciled every 8 s, the stream losing 5% of its records)
    # When the race has run (then a final sweep after the workers stopped)
    # With the audit, a holder whose clock is 3 h slow is never reaped once the stream recorded its acquisition (its
    # Created and the server's time disagree: the clock-skew gate), so the final check that every abandoned lock is
    # reaped holds only without it; slow clocks are raced with full sweeps (and below).
    skews = {"clock_skews": (0.0, 240.0)} if incremental else {}
    figures = run_race(RaceConfig(**{**BOUNDED.__dict__, "incremental": incremental, **skews}))
    with capsys.disabled():
        print("\n" + figures.text())

    # Then nothing crashed, and the race was run and raced: holders found alive, locks changed under a sweep
    assert figures.errors == []
    assert figures.lifetimes >= MIN_LIFETIMES
    assert figures.abandoned > 0
    assert figures.holder_answers["running"] > 0
    assert figures.outcomes["changed"] > 0
    assert figures.spared_live > 0  # a judged lock released and re-taken before the delete: the condition held
    assert figures.holder_answers["404 (no such run)"] == 0
    # And no live holder lost its lock, no DeleteItem aimed at a live holder or a digest, every sweep saw every
    # digest, the digests hold what the workers wrote, and the reaped locks are exactly the abandoned ones
    assert figures.violations == []
    assert figures.reaped == figures.abandoned
    assert figures.left_in_table == []
    assert figures.released + figures.abandoned == figures.lifetimes
    if incremental:
        assert figures.sweeps["with the state table, incremental"] > 0
        assert figures.sweeps["with the state table, full"] > 2  # reconciliations, and the final sweeps
        assert figures.stream_lost > 0


SHORT = RaceConfig(lifetimes=150, seconds=8.0, workers=8, paths=8, long_hold_rate=0.3)


def test_the_audits_catch_a_reaper_that_does_not_ask_the_holder(race_env: None) -> None:
    # Given a policy that vouches every holder is gone (so live locks are reaped too)
    figures = run_race(RaceConfig(**{**SHORT.__dict__, "policy_override": "{assume: gone}"}))

    # Then the workers and the delete audit report live locks lost
    assert figures.errors == []
    assert any("was lost: at release" in v for v in figures.violations)
    assert any("DeleteItem sent for" in v and "whose holder is held" in v for v in figures.violations)


class UnconditionalDelete(LockTable):
    """A reaper that deletes whatever holds the path now (as Terraform's own unlock does), not the lock it judged."""

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> DeleteResult:
        response = self._client.delete_item(
            TableName=self.name, Key={"LockID": {"S": lock_path}}, ReturnValues="ALL_OLD"
        )
        return DeleteResult(deleted=True, item=response.get("Attributes"))


def test_the_audits_catch_a_delete_without_its_condition(race_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a reaper whose delete ignores the Info it judged: a lock released and re-taken between its read and
    # its delete (the registry says the first holder is not running) takes the new holder's lock with it
    monkeypatch.setattr(racelab, "LockTable", UnconditionalDelete)
    figures = run_race(SHORT)

    # Then a live holder finds its lock lost, or a lock of another holder shows up as reaped
    assert figures.errors == []
    assert any("was lost: at release" in v or "reaped" in v for v in figures.violations), figures.violations


#: Holders whose clocks run 3 h slow or 4 min fast, a policy that vouches every holder is gone: only the reap gate's
#: age keeps live locks, and reap_after is far above the longest hold (0.05 s), so no live lock may be reaped.
SKEWED = RaceConfig(
    **{
        **SHORT.__dict__,
        "policy_override": "{assume: gone}",
        "clock_skews": (-3 * 3600.0, 240.0, 0.0),
        "reap_after": 3.0,
        "long_hold_seconds": 0.05,
    }
)


def test_holders_with_slow_or_fast_clocks_never_lose_a_live_lock(race_env: None) -> None:
    """Issue 13.1: a slow clock's Created makes a fresh lock look hours old. The reap gate measures from the reaper's
    own sighting instead, so even a policy that assumes every holder gone reaps no live lock, and still reaps every
    abandoned one once it has seen it for reap_after."""
    figures = run_race(SKEWED)

    assert figures.errors == []
    assert figures.lifetimes >= 50
    assert figures.abandoned > 0
    assert figures.violations == []
    assert figures.reaped == figures.abandoned
    assert figures.left_in_table == []
