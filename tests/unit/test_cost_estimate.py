"""scripts/cost_estimate.py: the per-sweep read units and the month's runs it prices, checked by hand."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
cost = runpy.run_path(str(ROOT / "scripts" / "cost_estimate.py"))
Estate = cost["Estate"]


def test_an_incremental_sweep_reads_the_record_the_open_set_and_one_unit_per_held_lock():
    estate = Estate(50_000, 0.01, 5.0)
    sweep = cost["incremental_sweep"](estate)
    # GetItem 1 + Query ceil(500 x 385 / 4096) / 2 = 47 / 2 + BatchGetItem 500 x 1: what `make bench` counts too.
    assert sweep.read_units == pytest.approx(1 + 23.5 + 500)
    assert sweep.write_units == 0
    assert sweep.health_reads == 1


def test_a_full_sweep_scans_every_item_once_per_4_kb():
    estate = Estate(50_000, 0.01, 5.0)
    # 50,000 digests of 110 bytes and 500 locks of 270: 5,635,000 bytes, 1,376 units of 4 KB.
    assert cost["full_sweep"](estate, audit=False).read_units == pytest.approx(1_376 + 23.5)
    reconciling = cost["full_sweep"](estate, audit=True)
    assert reconciling.read_units == pytest.approx(1_376 + 23.5 + 1)
    assert reconciling.write_units == 1


def test_the_month_has_an_hourly_reconciliation_among_its_minute_sweeps_and_two_schedule_calls_per_lock():
    estate = Estate(1_000, 0.01, 5.0)
    today5, today1, incremental, scheduler = cost["schedules"](estate, reconcile_minutes=60, stale_share=0.02)
    assert (today5.invocations, today1.invocations, incremental.invocations) == (8_640, 43_200, 43_200)
    assert [count for count, _ in incremental.sweeps] == [42_480, 720]
    assert estate.acquisitions == pytest.approx(10 / 5 * 43_200)  # Little's law: held / minutes held, a minute
    assert scheduler.schedule_calls == pytest.approx(2 * estate.acquisitions)
    assert scheduler.schedule_invocations == pytest.approx(estate.acquisitions * 0.02 * 2)
    assert scheduler.scheduler == pytest.approx(scheduler.schedule_invocations / 1e6)


def test_an_incremental_sweep_logs_the_verdicts_of_its_stale_locks_only():
    estate = Estate(50_000, 0.01, 5.0)
    quiet = cost["incremental_sweep"](estate, stale_held=0.2)
    full = cost["full_sweep"](estate, audit=True)
    verdict, own = cost["VERDICT_LOG_BYTES"], cost["SWEEP_LOG_BYTES"]
    assert quiet.log_bytes == 100 * verdict + own  # 500 held, a fifth of them stale
    assert full.log_bytes == 500 * verdict + own
