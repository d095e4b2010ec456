"""Incremental sweeps and their reconciliation, on moto and on dynalite: the real LockTable and StateTable, the sweep
service and a Reconciler whose audit health a test sets (tests/integration/test_audit_health.py reads the real
signals).

What must hold in both kinds of sweep: a lock is judged, and deleted, only from the item read from the lock table in
that sweep; a lock the stream never reported is found by the next full sweep; an open-set entry whose lock is gone
is closed, nothing deleted.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import digest_item, lock_item
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.domain.reconcile import AuditHealth
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.services.reconcile import Reconciler
from tflock_reaper.services.sweep import sweep

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = parse_policy(
    "mode: enforce\nmax_reaps_per_sweep: 50\n"
    "defaults: {warn_after: 30m, reap_after: 2h, min_observed: 10m, holder: {assume: gone}}\n"
)
HEALTHY = AuditHealth(consumer=True, failed_records=0, iterator_age=timedelta(seconds=2))


@dataclass
class SetAudit:
    """The audit's health as a test sets it (the real probe is tested against moto on its own)."""

    health_now: AuditHealth = HEALTHY
    asked: list[str | None] = field(default_factory=list)

    def health(self, stream_arn: str | None) -> AuditHealth:
        self.asked.append(stream_arn)
        return self.health_now


@dataclass
class Estate:
    client: Any
    audit: SetAudit = field(default_factory=SetAudit)
    deployment: str = "deploy-1"
    calls: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        def count(event_name: str, **_: Any) -> None:
            self.calls[event_name.rsplit(".", 1)[-1]] += 1

        self.client.meta.events.register("before-call.dynamodb", count)

    def sweep(self, at: datetime, *, mode: str = "enforce") -> SweepReport:
        self.calls.clear()
        state = StateTable(self.client, STATE_TABLE)
        reconciler = Reconciler(store=state, probe=self.audit, deployment=self.deployment)
        return sweep(
            lock_table=LockTable(self.client, LOCK_TABLE),
            state=state,
            policy=POLICY,
            mode=mode,  # type: ignore[arg-type]
            clock=lambda: at,
            reconciler=reconciler,
        )

    def scope(self) -> str:
        return str(self.client.describe_table(TableName=LOCK_TABLE)["Table"]["TableArn"])

    def held_ids(self) -> set[str]:
        return {held.lock_id for held in StateTable(self.client, STATE_TABLE).held(self.scope())}


@pytest.fixture
def estate(any_dynamodb: Any) -> Estate:
    # The Counter registration is per client: a fresh client per test (any_dynamodb makes one).
    return Estate(any_dynamodb)


def _record(item: dict[str, Any], scope_arn: str) -> LockRecord:
    record = classify_item(item, NOW, table=LOCK_TABLE, table_arn=scope_arn)
    assert isinstance(record, LockRecord)
    return record


def _kind(report: SweepReport) -> tuple[str, str]:
    (read,) = report.reads
    return read.kind.value, read.reason


def test_the_first_sweep_is_full_then_sweeps_read_only_the_held_locks(estate: Estate) -> None:
    held = [lock_item(f"tf-state/app{n}.tfstate", created=NOW - timedelta(minutes=5)) for n in range(3)]
    put(estate.client, *held, *(digest_item(f"tf-state/app{n}.tfstate") for n in range(250)))

    first = estate.sweep(NOW)
    assert _kind(first)[0] == "full"
    assert "first sweep" in _kind(first)[1]
    assert first.sweep_kind.value == "full"
    assert estate.calls["Scan"] >= 1

    second = estate.sweep(NOW + timedelta(minutes=1))
    assert second.sweep_kind.value == "incremental"
    assert "the audit is healthy" in second.sweep_reasons[0]
    assert estate.calls["Scan"] == 0
    assert estate.calls["BatchGetItem"] == 1  # 3 held locks: one request for the lock table (state reads: Query)
    assert {entry.lock.lock_path for entry in second.locks} == {f"tf-state/app{n}.tfstate" for n in range(3)}
    assert second.digests == 0  # digests are never read by an incremental sweep
    assert second.to_dict()["sweep_kind"] == "incremental"
    assert estate.audit.asked  # the audit's health was asked, with the table's stream (None here: no stream)


def test_a_reconciliation_is_due_every_reconcile_every_and_after_a_deployment(estate: Estate) -> None:
    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    assert _kind(estate.sweep(NOW))[0] == "full"
    assert _kind(estate.sweep(NOW + timedelta(minutes=59)))[0] == "incremental"
    due = estate.sweep(NOW + timedelta(minutes=60))
    assert _kind(due) == ("full", "reconciliation due: last full sweep 1h ago (every 1h)")
    assert _kind(estate.sweep(NOW + timedelta(minutes=61)))[0] == "incremental"

    estate.deployment = "deploy-2"
    assert _kind(estate.sweep(NOW + timedelta(minutes=62))) == (
        "full",
        "first sweep since a deployment (code or configuration changed)",
    )
    assert _kind(estate.sweep(NOW + timedelta(minutes=63)))[0] == "incremental"


@pytest.mark.parametrize(
    ("health", "reason"),
    [
        (AuditHealth(consumer=False, failed_records=0, iterator_age=None), "no enabled stream consumer"),
        (AuditHealth(consumer=True, failed_records=0, iterator_age=timedelta(minutes=7)), "the audit lags"),
        (AuditHealth(consumer=True, failed_records=None, iterator_age=None), "failure queue cannot be read"),
        (AuditHealth(consumer=True, failed_records=2, iterator_age=None), "2 new message(s)"),
        (AuditHealth(False, None, None, problem="AccessDeniedException"), "cannot be read: AccessDeniedException"),
    ],
)
def test_an_audit_in_doubt_makes_the_sweep_full(estate: Estate, health: AuditHealth, reason: str) -> None:
    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    estate.sweep(NOW)
    estate.audit.health_now = health
    kind, why = _kind(estate.sweep(NOW + timedelta(minutes=1)))
    assert kind == "full"
    assert reason in why


def test_failures_already_reconciled_do_not_keep_every_sweep_full(estate: Estate) -> None:
    """Messages in the failure queue before a full sweep were made good by it: only new ones force the next."""
    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    estate.audit.health_now = AuditHealth(consumer=True, failed_records=3, iterator_age=None)
    assert _kind(estate.sweep(NOW))[0] == "full"
    assert _kind(estate.sweep(NOW + timedelta(minutes=1)))[0] == "incremental"
    estate.audit.health_now = AuditHealth(consumer=True, failed_records=4, iterator_age=None)
    assert "1 new message(s)" in _kind(estate.sweep(NOW + timedelta(minutes=2)))[1]
    assert _kind(estate.sweep(NOW + timedelta(minutes=3)))[0] == "incremental"


def test_a_lock_the_stream_never_reported_is_found_by_the_next_reconciliation_and_reaped_only_from_a_fresh_read(
    estate: Estate,
) -> None:
    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    estate.sweep(NOW)  # full: the open set is established
    # A lock whose stream record was lost: in the lock table, not in the open set. Long held by its own clock.
    lost = lock_item("tf-state/lost.tfstate", created=NOW - timedelta(hours=9))
    put(estate.client, lost)

    for minute in (1, 30, 59):
        report = estate.sweep(NOW + timedelta(minutes=minute))
        assert report.sweep_kind.value == "incremental"
        assert "tf-state/lost.tfstate" not in {entry.lock.lock_path for entry in report.locks}

    found = estate.sweep(NOW + timedelta(minutes=60))
    assert found.sweep_kind.value == "full"
    (entry,) = [e for e in found.locks if e.lock.lock_path == "tf-state/lost.tfstate"]
    # 9 h old by its holder's clock, so stale at once; but first seen now: min_observed (10m) and the server-side
    # reap age count from here, so it is not reaped yet.
    assert entry.outcome.value == "blocked"
    assert "tf-state/lost.tfstate" in {i["LockID"]["S"] for i in table_items(estate.client)}
    assert _record(lost, estate.scope()).lock_id in estate.held_ids()  # in the open set from now on

    for minute in (61, 120):
        assert estate.sweep(NOW + timedelta(minutes=minute)).sweep_kind.value in ("incremental", "full")
    reaped = estate.sweep(NOW + timedelta(minutes=60 + 121))
    (entry,) = [e for e in reaped.locks if e.lock.lock_path == "tf-state/lost.tfstate"]
    assert entry.outcome.value == "reaped"
    assert entry.deleted_item == lost
    assert "tf-state/lost.tfstate" not in {i["LockID"]["S"] for i in table_items(estate.client)}


def test_an_open_set_entry_whose_lock_is_released_is_closed_and_nothing_is_deleted(estate: Estate) -> None:
    old = lock_item("tf-state/a.tfstate", created=NOW - timedelta(hours=5))
    put(estate.client, old)
    estate.sweep(NOW)
    # Released by Terraform; the stream's record of it not processed yet (or lost).
    estate.client.delete_item(TableName=LOCK_TABLE, Key={"LockID": old["LockID"]})
    assert estate.held_ids() == {_record(old, estate.scope()).lock_id}

    report = estate.sweep(NOW + timedelta(minutes=30))
    assert report.sweep_kind.value == "incremental"
    assert report.locks == []
    assert report.reads[0].held == 1
    assert report.reads[0].items == 0
    assert estate.calls["DeleteItem"] == 0
    assert estate.held_ids() == set()  # recorded as released: out of the open set
    (record,) = [i for i in table_items(estate.client, STATE_TABLE) if i.get("lock_path", {}).get("S")]
    assert record["gone_at"] == {"S": (NOW + timedelta(minutes=30)).isoformat()}


def test_a_path_reacquired_under_an_unreported_id_is_judged_from_the_read_and_the_next_sweep_is_full(
    estate: Estate,
) -> None:
    first = lock_item("tf-state/a.tfstate", created=NOW - timedelta(hours=5))
    put(estate.client, first)
    estate.sweep(NOW)
    # Released and taken again by another run; the stream has reported neither (lagging, or lost records).
    second = lock_item("tf-state/a.tfstate", created=NOW + timedelta(minutes=1), who="ci@runner-2")
    put(estate.client, second)

    report = estate.sweep(NOW + timedelta(minutes=2))
    assert report.sweep_kind.value == "incremental"
    (entry,) = report.locks
    assert entry.lock.item == second  # judged from what was read, not from the open set's copy
    assert entry.outcome.value == "kept"
    assert estate.calls["DeleteItem"] == 0

    after = estate.sweep(NOW + timedelta(minutes=3))
    kind, why = _kind(after)
    assert kind == "full"
    assert "a full read was requested" in why
    assert "not reported by the stream" in why
    assert _record(second, estate.scope()).lock_id in why
    assert _kind(estate.sweep(NOW + timedelta(minutes=4)))[0] == "incremental"


def test_an_incremental_read_that_fails_falls_back_to_a_full_read(estate: Estate) -> None:
    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    estate.sweep(NOW)

    def refuse(**_: Any) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        raise ClientError({"Error": {"Code": "ValidationException", "Message": "refused"}}, "BatchGetItem")

    estate.client.meta.events.register("before-call.dynamodb.BatchGetItem", refuse)
    try:
        report = estate.sweep(NOW + timedelta(minutes=1))
    finally:
        estate.client.meta.events.unregister("before-call.dynamodb.BatchGetItem", refuse)
    kind, why = _kind(report)
    assert kind == "full"
    assert "the incremental read failed" in why
    assert [entry.lock.lock_path for entry in report.locks] == ["tf-state/a.tfstate"]


def test_more_than_a_hundred_held_locks_are_read_a_hundred_to_a_request(estate: Estate) -> None:
    put(estate.client, *(lock_item(f"tf-state/s{n:03d}.tfstate", created=NOW) for n in range(250)))
    estate.sweep(NOW, mode="dry-run")
    report = estate.sweep(NOW + timedelta(minutes=1), mode="dry-run")
    assert report.sweep_kind.value == "incremental"
    assert len(report.locks) == 250
    assert estate.calls["BatchGetItem"] == 3
    assert estate.calls["Scan"] == 0


def test_an_estate_mostly_held_is_read_in_full_as_that_costs_fewer_read_units(
    estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(estate.client, *(lock_item(f"tf-state/s{n}.tfstate", created=NOW) for n in range(5)))
    estate.sweep(NOW, mode="dry-run")
    # DynamoDB publishes TableSizeBytes about every six hours (moto reports 0): 16 KB, a Scan of 4 read units.
    monkeypatch.setattr(LockTable, "size_bytes", lambda self: 16 * 1024)
    report = estate.sweep(NOW + timedelta(minutes=1), mode="dry-run")
    assert _kind(report) == (
        "full",
        "reading the open set's 5 locks one by one costs more read units than a Scan of the table (about 4)",
    )
    assert estate.calls["Scan"] >= 1
    assert estate.calls["BatchGetItem"] == 0
    monkeypatch.setattr(LockTable, "size_bytes", lambda self: 24 * 1024)
    assert _kind(estate.sweep(NOW + timedelta(minutes=2), mode="dry-run"))[0] == "incremental"


def test_an_incremental_sweep_logs_the_verdicts_of_stale_locks_and_a_full_one_of_every_lock(
    estate: Estate, caplog: pytest.LogCaptureFixture
) -> None:
    put(
        estate.client,
        lock_item("tf-state/fresh.tfstate", created=NOW),
        lock_item("tf-state/stale.tfstate", created=NOW - timedelta(hours=1)),
        *(digest_item(f"tf-state/s{n}.tfstate") for n in range(100)),
    )

    def verdicts() -> list[str]:
        lines = [r for r in caplog.records if r.getMessage() == "lock verdict" and r.levelno >= logging.INFO]
        return sorted(str(r.lock_path) for r in lines)  # type: ignore[attr-defined]

    caplog.set_level(logging.INFO, logger="tflock_reaper")
    assert estate.sweep(NOW, mode="dry-run").sweep_kind.value == "full"
    assert verdicts() == ["tf-state/fresh.tfstate", "tf-state/stale.tfstate"]
    caplog.clear()
    report = estate.sweep(NOW + timedelta(minutes=1), mode="dry-run")
    assert report.sweep_kind.value == "incremental"
    assert len(report.locks) == 2  # both judged and reported (--json, metrics): only the log line is spared
    assert verdicts() == ["tf-state/stale.tfstate"]


def test_an_unreadable_lock_written_makes_the_next_sweep_full_so_it_is_alerted_at_once(estate: Estate) -> None:
    """The stream function cannot record an unreadable lock as an acquisition, so incremental sweeps would not read
    it: it asks for a full sweep instead, and the next sweep finds it."""
    from streams import stream_record  # noqa: PLC0415
    from tflock_reaper.domain.audit import parse_record  # noqa: PLC0415
    from tflock_reaper.services.recorder import record_change  # noqa: PLC0415

    put(estate.client, lock_item("tf-state/a.tfstate", created=NOW))
    estate.sweep(NOW)
    assert _kind(estate.sweep(NOW + timedelta(minutes=1)))[0] == "incremental"
    garbage = {"LockID": {"S": "tf-state/b.tfstate"}, "Info": {"S": "{not json"}}
    put(estate.client, garbage)
    record = stream_record("INSERT", new=garbage, at=NOW + timedelta(minutes=1, seconds=10))
    record["eventSourceARN"] = f"{estate.scope()}/stream/2026-12-02T00:00:00.000"
    record_change(parse_record(record), StateTable(estate.client, STATE_TABLE))

    report = estate.sweep(NOW + timedelta(minutes=2))
    assert _kind(report) == ("full", "a full read was requested: an unreadable lock was written at tf-state/b.tfstate")
    assert [item.lock_id for item in report.unreadable] == ["tf-state/b.tfstate"]
    assert _kind(estate.sweep(NOW + timedelta(minutes=3)))[0] == "incremental"  # the request was met


def test_a_request_made_while_a_full_sweep_runs_is_kept_for_the_next(estate: Estate) -> None:
    store = StateTable(estate.client, STATE_TABLE)
    scope = estate.scope()
    store.request_full(scope, "before", NOW - timedelta(seconds=5))
    store.record_full(scope, NOW, deployment="deploy-1", failed_records=0)
    assert store.reconcile_record(scope).requested is None  # made before the sweep began: met by it
    store.request_full(scope, "during", NOW + timedelta(seconds=5))
    store.record_full(scope, NOW, deployment="deploy-1", failed_records=0)
    record = store.reconcile_record(scope)
    assert (record.requested, record.last_full_at) == ("during", NOW)
