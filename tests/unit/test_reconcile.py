"""Which read a sweep makes of a lock table: full unless every check says the audit is sound."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tflock_reaper.domain.reconcile import AuditHealth, ReconcileRecord, SweepKind, cheaper_to_scan, plan_read

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HEALTHY = AuditHealth(consumer=True, failed_records=0, iterator_age=timedelta(seconds=3))
RECONCILED = ReconcileRecord(last_full_at=NOW - timedelta(minutes=10), deployment="d1", failed_records=0)


def _plan(health: AuditHealth | None = HEALTHY, record: ReconcileRecord = RECONCILED, **kwargs: object) -> tuple:
    plan = plan_read(health=health, record=record, deployment="d1", now=NOW, **kwargs)  # type: ignore[arg-type]
    return plan.kind, plan.reason


def test_a_healthy_audit_and_a_recent_reconciliation_read_incrementally() -> None:
    assert _plan() == (SweepKind.INCREMENTAL, "the audit is healthy; last full sweep 10m ago (every 1h)")


@pytest.mark.parametrize(
    ("health", "record", "reason"),
    [
        (None, RECONCILED, "no audit"),
        (HEALTHY, ReconcileRecord(), "first sweep of this table"),
        (HEALTHY, ReconcileRecord(NOW, "d0"), "first sweep since a deployment"),
        (HEALTHY, ReconcileRecord(NOW, "d1", 0, "lock x at p read but not reported"), "requested: lock x at p"),
        (AuditHealth(True, 0, None, problem="AccessDenied"), RECONCILED, "cannot be read: AccessDenied"),
        (AuditHealth(False, 0, None), RECONCILED, "no enabled stream consumer"),
        (AuditHealth(True, None, None), RECONCILED, "failure queue cannot be read"),
        (AuditHealth(True, 5, None), ReconcileRecord(NOW, "d1", 4), "1 new message(s)"),
        (AuditHealth(True, 0, timedelta(minutes=2, seconds=1)), RECONCILED, "iterator age 2m"),
        (HEALTHY, ReconcileRecord(NOW - timedelta(hours=1), "d1"), "reconciliation due: last full sweep 1h ago"),
    ],
)
def test_every_doubt_makes_the_read_full(health: AuditHealth | None, record: ReconcileRecord, reason: str) -> None:
    kind, why = _plan(health, record)
    assert kind is SweepKind.FULL
    assert reason in why


def test_the_bounds_are_inclusive_on_the_safe_side() -> None:
    assert _plan(AuditHealth(True, 0, timedelta(minutes=2)))[0] is SweepKind.INCREMENTAL
    assert _plan(AuditHealth(True, 3, None), ReconcileRecord(NOW, "d1", 3))[0] is SweepKind.INCREMENTAL
    just_due = ReconcileRecord(NOW - timedelta(minutes=15), "d1")
    assert _plan(record=just_due, reconcile_every=timedelta(minutes=15))[0] is SweepKind.FULL
    assert _plan(record=just_due, reconcile_every=timedelta(minutes=16))[0] is SweepKind.INCREMENTAL


def test_a_scan_is_chosen_when_the_open_set_would_cost_more_read_units() -> None:
    # 40 KB of table: a Scan reads 10 units; each held lock read alone costs one.
    assert cheaper_to_scan(9, 40 * 1024) is None
    assert cheaper_to_scan(10, 40 * 1024) == (
        "reading the open set's 10 locks one by one costs more read units than a Scan of the table (about 10)"
    )
    assert cheaper_to_scan(10_000, 0) is None  # the size is not known (yet): no reason either way
