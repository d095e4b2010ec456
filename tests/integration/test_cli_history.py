"""``tflock-reaper history``, ``backtest`` and ``suggest`` against moto, through ``main()`` with real argv: the
history the stream function records, summed up; a candidate policy replayed (``--fail-on wrongful`` gates CI); a
suggested policy written and checked."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from factories import lock_item
from tables import STATE_TABLE
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import load_policy
from tflock_reaper.entrypoints.cli import EXIT_CONFIG, EXIT_FAIL_ON, EXIT_OK, main

NOW = datetime.now(UTC).replace(microsecond=0)
TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks"
CANDIDATE = "defaults: {warn_after: 10m, reap_after: 30m, min_observed: 0s, holder: {assume: gone}}\n"
DEPLOYED = "defaults: {warn_after: 30m, reap_after: 4h, holder: {assume: gone}}\n"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _lock(path: str, n: int, operation: str = "OperationTypeApply") -> LockRecord:
    lock = classify_item(
        lock_item(path, lock_id=f"id-{n}", operation=operation, who=f"ci-{n}@runner"),
        NOW,
        table="tf-locks",
        table_arn=TABLE_ARN,
    )
    assert isinstance(lock, LockRecord)
    return lock


@pytest.fixture
def recorded(dynamodb: object) -> StateTable:
    """30 applies of 10 to 39 minutes on tf-state/prod/*, 30 plans of 2 minutes on tf-state/dev/*, an apply its
    holder released after 50 minutes, one force-unlocked after an alert, one reaped, and one held for 3 hours now."""
    store = StateTable(dynamodb, STATE_TABLE)  # type: ignore[arg-type]
    start = NOW - timedelta(days=6)
    n = 0

    def acquire(path: str, at: datetime, hold: timedelta | None, operation: str = "OperationTypeApply") -> LockRecord:
        nonlocal n
        n += 1
        lock = _lock(path, n, operation)
        store.record_acquired(lock, at, str(n))
        if hold is not None:
            store.record_released(lock, at + hold, f"r{n}")
        return lock

    for i in range(30):
        acquire(f"tf-state/prod/s{i}.tfstate", start + timedelta(hours=i), timedelta(minutes=10 + i))
        plan_at = start + timedelta(hours=i, minutes=30)
        acquire(f"tf-state/dev/s{i}.tfstate", plan_at, timedelta(minutes=2), "OperationTypePlan")
    acquire("tf-state/prod/slow.tfstate", start + timedelta(days=1), timedelta(minutes=50))
    forced = acquire("tf-state/prod/forced.tfstate", start + timedelta(days=2), None)
    store.observe([forced], start + timedelta(days=2, minutes=40))
    store.settle([forced], start + timedelta(days=2, minutes=40))
    store.record_released(forced, start + timedelta(days=2, hours=1), "forced")
    reaped = acquire("tf-state/prod/reaped.tfstate", start + timedelta(days=3), None)
    store.begin_reap(reaped, start + timedelta(days=3, hours=4, minutes=5), ["past reap_after"], "sweep")
    store.end_reap(reaped, "reaped", start + timedelta(days=3, hours=4, minutes=5), None)
    store.record_released(reaped, start + timedelta(days=3, hours=4, minutes=5, seconds=1), "reaped")
    acquire("tf-state/prod/held.tfstate", NOW - timedelta(hours=3), None)
    return store


def test_history_sums_up_the_recorded_acquisitions(recorded: StateTable):
    code, out, _ = run("history", "--state-table", STATE_TABLE, "--since", "30d", "--output", "json")
    assert code == EXIT_OK
    report = json.loads(out)
    overall = report["overall"]
    assert overall["count"] == 64
    assert (overall["reaped"], overall["force_unlocked"], overall["held_now"]) == (1, 1, 1)
    assert overall["stale"] == 1
    assert overall["longest_held_now"]["lock_path"] == "tf-state/prod/held.tfstate"
    assert overall["hold_seconds"]["max"] == 4 * 3600 + 5 * 60 + 1
    plans = report["by_operation"]["OperationTypePlan"]
    assert plans["count"] == 30
    assert plans["hold_seconds"] == {"p50": 120.0, "p95": 120.0, "p99": 120.0, "max": 120.0}
    assert sum(b["count"] for b in report["histogram"]) == 64


def test_history_filters_by_glob_and_window_and_draws_the_histogram(recorded: StateTable):
    code, out, _ = run("history", "--state-table", STATE_TABLE, "--since", "5d", "--path", "tf-state/dev/*")
    assert code == EXIT_OK
    assert "History of the last 5d under tf-state/dev/*: 6 acquisitions" in out  # those of the last 5 days
    assert "OperationTypePlan" in out
    assert "OperationTypeApply" not in out
    histogram = out.split("Hold times\n", 1)[1]
    assert "█" in histogram


def test_history_writes_the_html_page(recorded: StateTable, tmp_path: Path):
    page = tmp_path / "history.html"
    policy = tmp_path / "policy.yaml"
    policy.write_text('rules:\n  - match: "tf-state/dev/*"\n    reap_after: 1h\n')
    code, _, err = run("history", "--state-table", STATE_TABLE, "--policy", str(policy), "--html", str(page))
    assert code == EXIT_OK
    assert f"wrote {page}" in err
    html = page.read_text()
    assert html.count('class="chart hold-distribution"') == 2  # one per rule: rules[0] and the defaults
    assert 'class="chart stale-over-time"' in html


def test_backtest_lists_the_wrongful_reaps_and_gates_ci(recorded: StateTable, tmp_path: Path):
    candidate, deployed = tmp_path / "candidate.yaml", tmp_path / "deployed.yaml"
    candidate.write_text(CANDIDATE)
    deployed.write_text(DEPLOYED)
    argv = ["backtest", "--state-table", STATE_TABLE, "--policy", str(candidate), "--deployed", str(deployed)]

    code, out, _ = run(*argv, "--output", "json")
    assert code == EXIT_OK
    report = json.loads(out)
    # Reaped at 30m: the applies held 31 to 39 minutes (9: one released at 30m is gone by then), the slow one, the
    # forced one, the reaped one and the one held now; all but the last two were released by a Terraform principal.
    assert report["candidate"]["reaps"] == 13
    assert report["candidate"]["wrongful_reaps"] == 11
    forced = [w for w in report["candidate"]["wrongful"] if w["lock_path"] == "tf-state/prod/forced.tfstate"]
    assert forced[0]["after_alert"] is True
    # The deployed policy reaps at 4h: only the lock the sweeper did reap (held 4h5m).
    assert (report["deployed"]["reaps"], report["deployed"]["wrongful_reaps"]) == (1, 0)
    code, out, _ = run(*argv, "--fail-on", "wrongful")
    assert code == EXIT_FAIL_ON
    assert "Wrongful reaps of the candidate policy" in out
    assert "tf-state/prod/slow.tfstate" in out
    assert "perhaps a force-unlock" in out

    code, _, _ = run(*argv[:3], "--policy", str(deployed), "--fail-on", "wrongful")
    assert code == EXIT_OK


def test_suggest_writes_a_policy_no_backtest_rejects(recorded: StateTable, tmp_path: Path):
    deployed, written = tmp_path / "deployed.yaml", tmp_path / "suggested.yaml"
    deployed.write_text(DEPLOYED + 'rules:\n  - match: "tf-state/dev/*"\n    warn_after: 5m\n    reap_after: 20m\n')
    code, out, _ = run("suggest", "--state-table", STATE_TABLE, "--deployed", str(deployed), "--write", str(written))
    assert code == EXIT_OK
    # The lock force-unlocked after an hour counts as released by its holder (the stream cannot tell): the safe side.
    assert "p99 hold of OperationTypeApply under every state is 1h over 32 locks released by their holders" in out
    assert "defaults: change warn_after 1h, reap_after 2h" in out
    assert "p99 hold of OperationTypePlan under rules[0] tf-state/dev/* is 2m over 30 locks" in out
    assert "rules[0] tf-state/dev/*: change warn_after 5m, reap_after 15m" in out
    policy = load_policy(written)
    assert policy.rules[0].match == "tf-state/dev/*"
    assert (policy.defaults.warn_after, policy.defaults.reap_after) == (timedelta(hours=1), timedelta(hours=2))
    assert policy.rules[0].reap_after == timedelta(minutes=15)
    data = yaml.safe_load(written.read_text())
    assert set(data) == {"defaults", "rules"}
    code, out, _ = run(
        "backtest", "--state-table", STATE_TABLE, "--policy", str(written), "--fail-on", "wrongful", "--json"
    )
    assert code == EXIT_OK
    assert json.loads(out)["candidate"]["wrongful_reaps"] == 0


def test_a_bad_window_or_policy_is_a_configuration_error(recorded: StateTable, tmp_path: Path):
    code, _, err = run("history", "--state-table", STATE_TABLE, "--since", "0s")
    assert code == EXIT_CONFIG
    assert "--since must be a positive duration" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("defaults:\n  reap_after: soon\n")
    code, _, err = run("backtest", "--state-table", STATE_TABLE, "--policy", str(bad))
    assert code == EXIT_CONFIG
    assert "bad.yaml:2" in err


def test_one_states_history_is_read_from_its_partition(recorded: StateTable, monkeypatch: pytest.MonkeyPatch):
    """A path without wildcards and its table (the fixture's tf-locks): that state's own partition, not the days of
    the history index."""
    from tflock_reaper.adapters import state_table  # noqa: PLC0415

    def no_index(*args: object, **kwargs: object) -> None:
        raise AssertionError("the history index was read")

    argv = ["history", "--state-table", STATE_TABLE, "--table", "tf-locks", "--json"]
    with monkeypatch.context() as patched:
        patched.setattr(state_table.StateTable, "history", no_index)
        code, out, err = run(*argv, "--path", "tf-state/prod/forced.tfstate")
    assert code == EXIT_OK, err
    overall = json.loads(out)["overall"]
    assert (overall["count"], overall["force_unlocked"], overall["stale"]) == (1, 1, 1)
    code, out, _ = run(*argv, "--path", "tf-state/dev/*")
    assert json.loads(out)["overall"]["count"] == 30
    code, out, _ = run("history", "--state-table", STATE_TABLE, "--table", "other-table", "--json")
    assert json.loads(out)["overall"]["count"] == 0
