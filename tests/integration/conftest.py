"""Integration fixtures: moto's in-process AWS with the Terraform lock table and the reaper's state table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from alert_stack import AlertStack, start_alert_stack
from dynalite_server import Dynalite, start_dynalite
from moto import mock_aws
from tables import create_lock_table, create_state_table


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def dynamodb(aws_env: None) -> Iterator[object]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_lock_table(client)
        create_state_table(client)
        yield client


@pytest.fixture(scope="session")
def dynalite() -> Iterator[Dynalite]:
    """One dynalite for the session (tables are made afresh by each test that uses it)."""
    server = start_dynalite()
    yield server
    server.stop()


@pytest.fixture(params=["moto", "dynalite"])
def any_dynamodb(request: pytest.FixtureRequest, aws_env: None) -> Iterator[object]:
    """The lock and state tables on moto, then on dynalite, which enforces DynamoDB's real key and item limits:
    for tests of keys built from lock data (moto accepts keys DynamoDB refuses)."""
    if request.param == "moto":
        yield request.getfixturevalue("dynamodb")
        return
    server: Dynalite = request.getfixturevalue("dynalite")
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=server.endpoint)
    for name in client.list_tables()["TableNames"]:
        client.delete_table(TableName=name)
    # dynalite finishes a delete on a timer: creating the same name before it fires would lose the new table.
    while client.list_tables()["TableNames"]:
        time.sleep(0.01)
    create_lock_table(client)
    create_state_table(client)
    yield client


@pytest.fixture
def alerts(dynamodb: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AlertStack]:
    """The alert channels (loopback Slack and PagerDuty, SNS to SQS, secrets) and a policy routing to all three."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    stack = start_alert_stack(tmp_path)
    yield stack
    stack.stop()
