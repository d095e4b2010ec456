"""template.yaml keeps the lock history (issue 17.2): the state table's history-by-day index, what it projects, who may
Query it, and how long each acquisition's record is kept (HistoryRetentionDays, read by both functions' Settings)."""

from __future__ import annotations

from typing import Any

import pytest
from cfn_template import deploy, deployed_statements, load_template
from pydantic import ValidationError
from tflock_reaper.adapters.state_table import HISTORY_INDEX, HISTORY_KEY, HISTORY_PROJECTION
from tflock_reaper.entrypoints.settings import Settings

STREAM = "arn:aws:dynamodb:eu-west-1:111111111111:table/terraform-locks/stream/2026-01-15T09:30:00.123"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _indexes(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["IndexName"]: i for i in template["Resources"]["StateTable"]["Properties"]["GlobalSecondaryIndexes"]}


def test_the_history_index_lists_a_days_acquisitions_in_order(template):
    assert (HISTORY_INDEX, HISTORY_KEY) == ("history-by-day", "history_day")  # the names the package queries
    history = _indexes(template)[HISTORY_INDEX]
    assert history["KeySchema"] == [
        {"AttributeName": HISTORY_KEY, "KeyType": "HASH"},
        {"AttributeName": "acquired_at", "KeyType": "RANGE"},
    ]
    definitions = template["Resources"]["StateTable"]["Properties"]["AttributeDefinitions"]
    types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
    assert (types["history_day"], types["acquired_at"]) == ("S", "S")


def test_the_history_index_projects_exactly_what_the_history_reads(template):
    """A Query of an INCLUDE index returns only what it projects: the package's list and the index's must be equal
    (and a GSI's projection cannot change without deleting and creating it again)."""
    projection = _indexes(template)["history-by-day"]["Projection"]
    assert projection["ProjectionType"] == "INCLUDE"
    assert projection["NonKeyAttributes"] == list(HISTORY_PROJECTION)


def test_one_index_more_than_the_last_release_and_the_legacy_one_kept(template):
    """CloudFormation creates or deletes one index per table update: this release adds history-by-day only."""
    assert set(_indexes(template)) == {"held-locks", "open-locks", "history-by-day"}
    # DynamoDB's limit: at most 100 projected non-key attributes over all of a table's indexes.
    projected = {a for i in _indexes(template).values() for a in i["Projection"].get("NonKeyAttributes", [])}
    assert len(projected) <= 100


def test_the_sweeper_may_query_the_history_where_it_queries_the_open_set():
    statement = deployed_statements(deploy(), "SweeperRole")["StateTableReadWrite"]
    assert "dynamodb:Query" in statement["Action"]
    assert statement["Resource"] == [
        "StateTable.Arn",
        "StateTable.Arn/index/held-locks",
        "StateTable.Arn/index/history-by-day",
    ]


def test_history_retention_days_is_a_bounded_parameter(template):
    parameter = template["Parameters"]["HistoryRetentionDays"]
    assert parameter["Type"] == "Number"
    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (90, 1, 3650)
    assert "TTL" in parameter["Description"]


@pytest.mark.parametrize("function", ["SweeperFunction", "StreamFunction"])
def test_history_retention_days_reaches_both_functions(function):
    deployment = deploy({"LockTableStreamArns": STREAM, "HistoryRetentionDays": "400"})
    env = deployment.resources[function]["Properties"]["Environment"]["Variables"]
    assert env["HISTORY_RETENTION_DAYS"] == "400"
    assert Settings.model_validate({**env, "STATE_BUCKETS": "b"}).history_retention_days == 400


def test_the_settings_read_it_with_the_parameters_default_and_bounds(template):
    parameter = template["Parameters"]["HistoryRetentionDays"]
    assert Settings.model_validate({"LOCK_TABLE_NAMES": "t-locks"}).history_retention_days == parameter["Default"]
    for accepted in (parameter["MinValue"], parameter["MaxValue"]):
        settings = Settings.model_validate({"LOCK_TABLE_NAMES": "t-locks", "HISTORY_RETENTION_DAYS": str(accepted)})
        assert settings.history_retention_days == accepted
    for refused in (parameter["MinValue"] - 1, parameter["MaxValue"] + 1):
        with pytest.raises(ValidationError, match="HISTORY_RETENTION_DAYS"):
            Settings.model_validate({"LOCK_TABLE_NAMES": "t-locks", "HISTORY_RETENTION_DAYS": str(refused)})
