"""Integration fixtures: moto's in-process AWS with the Terraform lock table and the reaper's state table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from alert_stack import AlertStack, start_alert_stack
from dynalite_server import Dynalite, start_dynalite
from moto import mock_aws
from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, create_state_table


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
    # Emptied, not deleted: dynalite finishes a DeleteTable on a timer, which could remove a table made anew.
    existing = set(client.list_tables()["TableNames"])
    for name, create in ((LOCK_TABLE, create_lock_table), (STATE_TABLE, create_state_table)):
        if name not in existing:
            create(client)
            continue
        keys = [a["AttributeName"] for a in client.describe_table(TableName=name)["Table"]["KeySchema"]]
        for page in client.get_paginator("scan").paginate(TableName=name, ConsistentRead=True):
            for item in page["Items"]:
                client.delete_item(TableName=name, Key={key: item[key] for key in keys})
    for name in existing - {LOCK_TABLE, STATE_TABLE}:
        client.delete_table(TableName=name)
    yield client


@pytest.fixture
def alerts(dynamodb: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[AlertStack]:
    """The alert channels (loopback Slack and PagerDuty, SNS to SQS, secrets) and a policy routing to all three."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    stack = start_alert_stack(tmp_path)
    yield stack
    stack.stop()
