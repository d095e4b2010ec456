"""template.yaml wires incremental sweeps (issue 16): a sweep a minute, the open set's index with what a sweep reads
from it, the reconciliation's bound, and the audit's health for the sweeper to read, least privilege."""

from __future__ import annotations

from typing import Any

import pytest
from cfn_template import function_statements, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_a_sweep_runs_every_minute_and_a_full_one_at_least_hourly(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    assert parameters["SweepSchedule"]["Default"] == "rate(1 minute)"
    reconcile = parameters["ReconcileEveryMinutes"]
    assert (reconcile["Default"], reconcile["MinValue"], reconcile["MaxValue"]) == (60, 1, 1440)
    env = template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["RECONCILE_EVERY_MINUTES"] == {"!Ref": "ReconcileEveryMinutes"}
    # The layer's version changes with the code: the first sweep after a deployment is full.
    assert env["DEPLOYMENT_ID"] == {"!Ref": "ReaperLayer"}


def test_the_open_set_index_lists_what_an_incremental_sweep_reads(template: dict[str, Any]) -> None:
    indexes = {i["IndexName"]: i for i in template["Resources"]["StateTable"]["Properties"]["GlobalSecondaryIndexes"]}
    held = indexes["held-locks"]
    assert held["KeySchema"] == [{"AttributeName": "held_scope", "KeyType": "HASH"}]
    assert {"lock_path", "lock_id", "first_seen", "acquired_at", "warned_at"} <= set(
        held["Projection"]["NonKeyAttributes"]
    )


def test_the_sweeper_reads_the_audits_health_and_nothing_more(template: dict[str, Any]) -> None:
    # AUDIT_STREAM_MAPPINGS and AuditMappingRead, one mapping per stream: tests/unit/test_template_streams.py.
    env = template["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUDIT_STREAM_MAPPINGS"]["!If"][0] == "HasLockTableStream"
    assert env["AUDIT_FAILURE_QUEUE_URL"] == {"!If": ["HasLockTableStream", {"!Ref": "StreamFailureQueue"}, ""]}
    statements = {s["Sid"]: s for s in function_statements(template, "SweeperFunction")}
    assert statements["AuditMappingRead"]["Action"] == ["lambda:GetEventSourceMapping"]
    assert statements["AuditFailureQueueRead"]["Action"] == ["sqs:GetQueueAttributes"]
    assert statements["AuditFailureQueueRead"]["Resource"] == {"!GetAtt": "StreamFailureQueue.Arn"}
    assert "dynamodb:BatchGetItem" in statements["LockTableRead"]["Action"]
