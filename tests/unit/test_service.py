"""Given a lock table (in memory) and a policy, a sweep judges every lock and reaps only what it may."""

from datetime import timedelta

import pytest
from factories import NOW, digest_item, lock_item
from fakes import FakeLockTable
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.sweep import TIME_RESERVE_SECONDS, HolderChecks, explain, resolve_mode, sweep

POLICY = parse_policy(
    """
mode: enforce
max_reaps_per_sweep: 2
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/gone/*"
    holder: {assume: gone}
"""
)
POLICY_TEXT_NO_LIMIT = """
mode: enforce
max_reaps_per_sweep: 10
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}
"""
STALE = lock_item("tf-state/gone/a.tfstate", created=NOW - timedelta(hours=5))
LIVE_UNKNOWN = lock_item("tf-state/other/b.tfstate", created=NOW - timedelta(hours=5))
FRESH = lock_item("tf-state/gone/c.tfstate", created=NOW - timedelta(minutes=1))


def _sweep(table, *, mode="enforce", state=None, policy=POLICY, holders=None):
    return sweep(
        lock_table=table,
        state=state or MemoryStateStore(),
        policy=policy,
        mode=mode,
        clock=lambda: NOW,
        holders=holders,
    )


def test_enforce_reaps_only_the_lock_whose_holder_is_gone():
    table = FakeLockTable([STALE, LIVE_UNKNOWN, FRESH, digest_item("tf-state/gone/a.tfstate")])
    report = _sweep(table)
    outcomes = {r.lock.lock_path: r.outcome for r in report.locks}
    assert outcomes == {
        "tf-state/gone/a.tfstate": Outcome.REAPED,
        "tf-state/other/b.tfstate": Outcome.BLOCKED,
        "tf-state/gone/c.tfstate": Outcome.KEPT,
    }
    assert table.deletes == ["tf-state/gone/a.tfstate"]
    assert "tf-state/gone/a.tfstate-md5" in table.items
    assert report.digests == 1


def test_dry_run_deletes_nothing():
    table = FakeLockTable([STALE])
    report = _sweep(table, mode="dry-run")
    assert report.locks[0].outcome is Outcome.WOULD_REAP
    assert table.deletes == []


def test_enforce_needs_both_keys():
    table = FakeLockTable([STALE])
    report = _sweep(table, policy=parse_policy("mode: dry-run\ndefaults: {min_observed: 0s, trust_holder_clock: true}"))
    assert report.mode == "dry-run"
    assert "policy says mode: dry-run" in report.notes[0]
    assert table.deletes == []
    assert resolve_mode(POLICY, "dry-run") == ("dry-run", None)


def test_a_lock_reacquired_between_read_and_delete_is_left_alone():
    table = FakeLockTable([STALE])
    replacement = lock_item("tf-state/gone/a.tfstate", created=NOW)

    def reacquire(path):
        table.items[path] = replacement

    table.before_delete = reacquire
    report = _sweep(table)
    assert report.locks[0].outcome is Outcome.CHANGED
    assert table.items["tf-state/gone/a.tfstate"] is replacement


def test_a_lock_released_between_read_and_delete_is_changed_not_an_error():
    table = FakeLockTable([STALE])
    table.before_delete = table.items.pop
    report = _sweep(table)
    assert report.locks[0].outcome is Outcome.CHANGED


def test_circuit_breaker_reaps_none_and_finishes_the_sweep():
    items = [lock_item(f"tf-state/gone/{n}.tfstate", created=NOW - timedelta(hours=5)) for n in range(3)]
    table = FakeLockTable(items)
    report = _sweep(table)
    assert report.breaker is not None
    assert [r.outcome for r in report.locks] == [Outcome.BLOCKED] * 3
    assert table.deletes == []
    assert all(report.breaker in r.reasons for r in report.locks)


def test_malformed_items_are_reported_and_never_deleted():
    bad = {"LockID": {"S": "tf-state/gone/bad.tfstate"}, "Info": {"S": "{oops"}}
    table = FakeLockTable([bad, STALE])
    report = _sweep(table)
    assert [s.lock_id for s in report.skipped] == ["tf-state/gone/bad.tfstate"]
    assert "tf-state/gone/bad.tfstate" in table.items
    assert report.summary()["skipped"] == 1


def test_a_failing_delete_is_reported_and_the_sweep_goes_on():
    table = FakeLockTable([STALE, lock_item("tf-state/gone/d.tfstate", created=NOW - timedelta(hours=5))])
    table.fail_deletes = True
    report = _sweep(table)
    assert [r.outcome for r in report.locks] == [Outcome.FAILED, Outcome.FAILED]
    assert report.summary()["failed"] == 2


def test_reap_is_recorded_with_the_full_item_before_and_after():
    table = FakeLockTable([STALE])
    state = MemoryStateStore()
    report = _sweep(table, state=state)
    (record,) = state.reaps.values()
    assert record["item"] == STALE
    assert record["status"] == "reaped"
    assert report.locks[0].state.first_seen == NOW


def test_a_holder_check_that_raises_counts_as_unknown():
    class Exploding:
        name = "exploding"

        def status(self, lock, now, acquired_by):
            raise TimeoutError("CI API timed out")

    table = FakeLockTable([STALE])
    report = _sweep(table, holders=HolderChecks(lambda spec: Exploding()))
    entry = report.locks[0]
    assert entry.outcome is Outcome.BLOCKED
    assert entry.verdict.holder == HolderStatus(
        HolderState.UNKNOWN, "the check failed: TimeoutError: CI API timed out", "exploding"
    )
    assert table.deletes == []


def test_holder_is_asked_only_for_locks_old_enough_to_reap():
    asked = []

    class Recording:
        name = "recording"

        def status(self, lock, now, acquired_by):
            asked.append(lock.lock_path)
            return HolderStatus(HolderState.RUNNING, "busy", self.name)

    table = FakeLockTable([STALE, FRESH])
    _sweep(table, holders=HolderChecks(lambda spec: Recording()))
    assert asked == ["tf-state/gone/a.tfstate"]


def test_warnings_are_recorded_once():
    table = FakeLockTable([lock_item("tf-state/gone/w.tfstate", created=NOW - timedelta(hours=1))])
    state = MemoryStateStore()
    _sweep(table, state=state)
    (first,) = state.states.values()
    assert first.warned_at == NOW


def test_report_json_has_the_documented_fields():
    report = _sweep(FakeLockTable([STALE]), mode="dry-run").to_dict()
    lock = report["locks"][0]
    for key in ("path", "id", "who", "operation", "created", "age_seconds", "action", "outcome", "reasons"):
        assert key in lock
    assert lock["action"] == "reap"
    assert lock["outcome"] == "would-reap"
    assert lock["age_seconds"] == 5 * 3600
    assert report["summary"]["would_reap"] == 1


@pytest.mark.parametrize(("item", "kind"), [(None, type(None)), (digest_item(), "DigestRecord")])
def test_explain_handles_missing_and_digest_items(item, kind):
    result = explain("tf-state/x", item=item, state=MemoryStateStore(), policy=POLICY, clock=lambda: NOW)
    assert type(result).__name__ == (kind if isinstance(kind, str) else "NoneType")


def test_explain_never_acts_and_says_would_reap():
    result = explain("tf-state/gone/a.tfstate", item=STALE, state=MemoryStateStore(), policy=POLICY, clock=lambda: NOW)
    assert result.outcome is Outcome.WOULD_REAP


def test_a_holder_check_that_cannot_be_built_is_unknown_and_the_sweep_goes_on():
    def broken_factory(spec):
        raise RuntimeError("no credentials for the CI API")

    table = FakeLockTable([STALE, lock_item("tf-state/other/x.tfstate", created=NOW - timedelta(minutes=40))])
    report = _sweep(table, holders=HolderChecks(broken_factory))
    stale, other = report.locks
    assert stale.outcome is Outcome.BLOCKED
    assert "could not be set up: RuntimeError: no credentials" in stale.verdict.holder.evidence
    assert other.outcome is Outcome.WARNED
    assert table.deletes == []


class _Countdown:
    """The Lambda's remaining time, going down by ``step`` seconds each time it is read."""

    def __init__(self, start: float, step: float) -> None:
        self.left, self.step = start, step

    def __call__(self) -> float:
        self.left -= self.step
        return self.left


def test_a_sweep_running_out_of_time_stops_acting_reports_the_rest_and_records_what_it_saw():
    stale = [lock_item(f"tf-state/gone/s{i}.tfstate", created=NOW - timedelta(hours=5)) for i in range(6)]
    table = FakeLockTable(stale)
    state = MemoryStateStore()
    policy = parse_policy(POLICY_TEXT_NO_LIMIT)
    # The clock is read before each of 6 judgements and each act: 1 s apart, the reserve is reached at the 3rd act.
    clock = _Countdown(start=TIME_RESERVE_SECONDS + 8, step=1)
    report = sweep(
        lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: NOW, remaining_seconds=clock
    )
    assert [r.outcome for r in report.locks] == [Outcome.REAPED, Outcome.REAPED]
    assert len(table.deletes) == 2
    assert report.deferred == [f"tf-state/gone/s{i}.tfstate" for i in range(2, 6)]
    assert report.summary()["deferred"] == 4
    assert report.to_dict()["deferred"] == report.deferred
    assert len(state.states) == 6  # every lock read is still recorded as seen

    # The next sweep, with time to spare, picks up the rest.
    again = sweep(lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: NOW)
    assert [r.outcome for r in again.locks] == [Outcome.REAPED] * 4
    assert again.deferred == []
    assert len(table.deletes) == 6


def test_a_sweep_out_of_time_before_judging_acts_on_nothing():
    table = FakeLockTable([STALE])
    report = sweep(
        lock_table=table,
        state=MemoryStateStore(),
        policy=POLICY,
        mode="enforce",
        clock=lambda: NOW,
        remaining_seconds=lambda: TIME_RESERVE_SECONDS - 1,
    )
    assert report.locks == []
    assert report.deferred == ["tf-state/gone/a.tfstate"]
    assert table.deletes == []


SLOW_CLOCK_POLICY = """
mode: enforce
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 10m, holder: {assume: gone}}
"""


def test_a_holder_clock_running_slow_never_gets_a_fresh_lock_reaped():
    """Issue 13.1: taken 12 minutes ago by a host whose clock is 3 h behind, no stream time: Created says 3h12m.
    Seen by a sweep 12 minutes ago and again now, it is reported and alerted, never reaped, until the reaper itself
    has seen it for reap_after."""
    table = FakeLockTable([lock_item("tf-state/slow/a.tfstate", created=NOW - timedelta(hours=3, minutes=12))])
    state = MemoryStateStore()
    policy = parse_policy(SLOW_CLOCK_POLICY)
    first_sweep = NOW - timedelta(minutes=12)
    sweep(lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: first_sweep)

    report = sweep(lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: NOW)

    (entry,) = report.locks
    assert entry.outcome is Outcome.BLOCKED
    assert table.deletes == []
    lock = entry.to_dict()
    assert (lock["age_seconds"], lock["age_basis"]) == (3 * 3600 + 12 * 60, "Created, the holder's clock")
    assert (lock["reap_age_seconds"], lock["reap_age_basis"]) == (12 * 60, "first seen by the reaper")

    # Once the reaper has seen it for reap_after, the reap goes ahead (the holder is assumed gone here).
    later = first_sweep + timedelta(hours=2)
    again = sweep(lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: later)
    assert again.locks[0].outcome is Outcome.REAPED


def test_holder_checks_get_the_server_side_bound_not_created():
    bounds = []

    class Recording:
        name = "recording"

        def status(self, lock, now, acquired_by):
            bounds.append(acquired_by)
            return HolderStatus(HolderState.RUNNING, "busy", self.name)

    table = FakeLockTable([lock_item("tf-state/slow/a.tfstate", created=NOW - timedelta(hours=5))])
    state = MemoryStateStore()
    first_seen = NOW - timedelta(hours=3)
    policy = parse_policy(SLOW_CLOCK_POLICY)
    sweep(lock_table=table, state=state, policy=policy, mode="enforce", clock=lambda: first_seen)
    sweep(
        lock_table=table,
        state=state,
        policy=policy,
        mode="enforce",
        clock=lambda: NOW,
        holders=HolderChecks(lambda spec: Recording()),
    )
    assert bounds == [first_seen]
