"""One deployment, many lock tables and accounts: the sweeper handler against moto (several tables, a role
assumed in another account, a target that cannot be reached, and a sweep running out of time)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from factories import digest_item, lock_item
from fakes import FakeLambdaContext
from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, table_items
from tflock_reaper.adapters.aws import AwsClients

EVENT: dict[str, Any] = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
OTHER_ACCOUNT = "222222222222"
ROLE_ARN = f"arn:aws:iam::{OTHER_ACCOUNT}:role/tflock-reaper-target"
POLICY = "mode: enforce\ndefaults: {min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}\n"


def _stale(path: str) -> dict[str, Any]:
    return lock_item(path, created=datetime.now(UTC) - timedelta(hours=5))


@pytest.fixture
def handler(dynamodb, monkeypatch, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    for name, value in {
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "REAPER_MODE": "enforce",
        "POWERTOOLS_SERVICE_NAME": "tflock-reaper",
        "POWERTOOLS_METRICS_NAMESPACE": "TflockReaper",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOCK_TABLE_NAME", raising=False)
    import sweeper_handler  # noqa: PLC0415 - imported after the environment is set, as Lambda does
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    yield sweeper_handler.lambda_handler
    get_settings.cache_clear()


@pytest.fixture
def other_account(dynamodb) -> Any:
    """The lock table of another account, seen through the role the reaper assumes there (moto keeps each
    account's resources apart by the credentials' account)."""
    client = AwsClients(region="us-east-1").assume_role(ROLE_ARN).dynamodb()
    create_lock_table(client, "tf-locks-prod")
    return client


def test_several_lock_tables_are_swept_each_lock_deleted_from_its_own_table(handler, dynamodb, monkeypatch):
    create_lock_table(dynamodb, "tf-locks-b")
    dynamodb.put_item(TableName=LOCK_TABLE, Item=_stale("tf-state/a.tfstate"))
    dynamodb.put_item(TableName=LOCK_TABLE, Item=digest_item("tf-state/a.tfstate"))
    dynamodb.put_item(TableName="tf-locks-b", Item=_stale("other-state/b.tfstate"))
    monkeypatch.setenv("LOCK_TABLE_NAMES", f"{LOCK_TABLE},tf-locks-b")

    result = handler(EVENT, FakeLambdaContext())

    assert result["summary"]["reaped"] == 2
    assert result["errors"] == []
    assert table_items(dynamodb) == [digest_item("tf-state/a.tfstate")]
    assert table_items(dynamodb, "tf-locks-b") == []


def test_a_role_in_another_account_is_assumed_and_its_locks_swept_there(handler, dynamodb, other_account, monkeypatch):
    home_lock, prod_lock = _stale("tf-state/home.tfstate"), _stale("prod-state/app.tfstate")
    dynamodb.put_item(TableName=LOCK_TABLE, Item=home_lock)
    other_account.put_item(TableName="tf-locks-prod", Item=prod_lock)
    other_account.put_item(TableName="tf-locks-prod", Item=digest_item("prod-state/app.tfstate"))
    monkeypatch.setenv("LOCK_TABLE_NAMES", LOCK_TABLE)
    monkeypatch.setenv("TARGETS", json.dumps([{"role_arn": ROLE_ARN, "lock_tables": ["tf-locks-prod"]}]))

    result = handler(EVENT, FakeLambdaContext())

    assert result["summary"]["reaped"] == 2
    assert table_items(other_account, "tf-locks-prod") == [digest_item("prod-state/app.tfstate")]
    assert table_items(dynamodb) == []
    # The reap record of the other account's lock is kept in the reaper's own state table, with the full item.
    records = [i for i in table_items(dynamodb, STATE_TABLE) if i.get("reaped_item", {}).get("M") == prod_lock]
    assert len(records) == 1
    # The home account has no table of that name: the lock was not read through the home credentials.
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.describe_table(TableName="tf-locks-prod")


def test_a_target_that_cannot_be_swept_is_reported_and_the_others_are_swept(handler, dynamodb, monkeypatch):
    dynamodb.put_item(TableName=LOCK_TABLE, Item=_stale("tf-state/home.tfstate"))
    monkeypatch.setenv("LOCK_TABLE_NAMES", LOCK_TABLE)
    monkeypatch.setenv("TARGETS", json.dumps([{"role_arn": ROLE_ARN, "lock_tables": ["no-such-table"]}]))

    result = handler(EVENT, FakeLambdaContext())

    assert result["summary"]["reaped"] == 1
    assert result["summary"]["errors"] == 1
    assert result["errors"][0].startswith(f"account {OTHER_ACCOUNT}: cannot describe lock table 'no-such-table'")


def test_when_no_target_can_be_swept_the_invocation_fails(handler, monkeypatch):
    from tflock_reaper.adapters.errors import AwsAccessError  # noqa: PLC0415

    monkeypatch.setenv("LOCK_TABLE_NAMES", "no-such-table")
    with pytest.raises(AwsAccessError, match="this account: cannot describe lock table 'no-such-table'"):
        handler(EVENT, FakeLambdaContext())


class _ShortOfTime(FakeLambdaContext):
    """Remaining time that drops by 5 s each time it is read: 26 s, 21 s (a lock judged), 16 s (within the reserve)."""

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= 5_000
        return self.remaining_ms + 5_000


def test_an_invocation_running_out_of_time_stops_before_acting_and_reports_the_lock_deferred(
    handler, dynamodb, monkeypatch
):
    lock = _stale("tf-state/home.tfstate")
    dynamodb.put_item(TableName=LOCK_TABLE, Item=lock)
    monkeypatch.setenv("LOCK_TABLE_NAMES", LOCK_TABLE)

    result = handler(EVENT, _ShortOfTime(remaining_ms=26_000))

    assert result["summary"]["deferred"] == 1
    assert result["summary"]["reaped"] == 0
    assert table_items(dynamodb) == [lock]
    # What it saw is recorded: the next sweep measures min_observed from this one.
    assert any(i["sk"]["S"].startswith("ID#") and "first_seen" in i for i in table_items(dynamodb, STATE_TABLE))


def test_a_target_not_started_for_lack_of_time_is_reported(handler, dynamodb, monkeypatch):
    monkeypatch.setenv("LOCK_TABLE_NAMES", LOCK_TABLE)
    monkeypatch.setenv("TARGETS", json.dumps([{"role_arn": ROLE_ARN, "lock_tables": ["tf-locks-prod"]}]))

    result = handler(EVENT, _ShortOfTime(remaining_ms=21_000))  # the home account at 21 s, the other at 16 s

    assert result["errors"] == [f"account {OTHER_ACCOUNT}: not swept, the sweep ran out of time"]


def test_targets_are_validated_with_a_clear_message(monkeypatch):
    from pydantic import ValidationError  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import Settings  # noqa: PLC0415

    with pytest.raises(ValidationError, match="give lock_tables, buckets, or both"):
        Settings.model_validate({"TARGETS": json.dumps([{"role_arn": ROLE_ARN}])})
    with pytest.raises(ValidationError, match="role_arn"):
        Settings.model_validate({"TARGETS": json.dumps([{"role_arn": "arn:aws:iam::1:role/x", "buckets": ["b"]}])})
    settings = Settings.model_validate({"LOCK_TABLE_NAME": "tf-locks, tf-locks-b", "SCAN_SEGMENTS": ""})
    assert settings.lock_table_names == ("tf-locks", "tf-locks-b")
    assert settings.scan_segments is None
