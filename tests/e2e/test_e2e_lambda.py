"""The scheduled sweeper Lambda handler, invoked in-process with the scheduled event from events/, against
the moto server: it reaps a SIGKILLed apply's lock in enforce mode, and only reports it in dry-run mode."""

from __future__ import annotations

import importlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fakes import FakeLambdaContext
from tables import create_state_table
from tflab import Backend, TerraformWorkspace, policy_yaml, wait_until_older_than
from tflab.reaper import REPO_ROOT
from tflab.server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY
from tflock_reaper.entrypoints.settings import get_settings

pytestmark = pytest.mark.e2e

SCHEDULE_EVENT = REPO_ROOT / "events" / "sweeper_schedule.json"
NAMESPACE = "TflockReaperE2E"


@pytest.fixture
def state_table(backend: Backend) -> Iterator[str]:
    """The reaper's own table, as template.yaml declares it: pk/sk strings, TTL on expires_at."""
    name = f"reaper-state-{uuid.uuid4().hex[:10]}"
    dynamodb = backend.server.client("dynamodb")
    create_state_table(dynamodb, name)
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"}
    )
    yield name
    dynamodb.delete_table(TableName=name)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch, backend: Backend, state_table: str) -> Iterator[None]:
    """The function's environment (template.yaml's variables), pointed at the moto server."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "POWERTOOLS_", "LOCK_TABLE", "STATE_TABLE", "REAPER_", "POLICY_")):
            monkeypatch.delenv(name)
    env = {
        "AWS_ENDPOINT_URL": backend.server.endpoint,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_SERVICE_NAME": "tflock-reaper",
        "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        "LOCK_TABLE_NAME": backend.table,
        "STATE_TABLE_NAME": state_table,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def handler(lambda_env: None, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    module = importlib.import_module("sweeper_handler")
    # Metrics read their namespace when the module is first imported, perhaps before this test's env.
    monkeypatch.setattr(module.metrics, "namespace", NAMESPACE)
    return module


def _emf_metrics(stdout: str) -> dict[str, Any]:
    """Metric values from the Embedded Metric Format lines Powertools printed."""
    values: dict[str, Any] = {}
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == NAMESPACE
            for metric in directive["Metrics"]:
                values[metric["Name"]] = blob[metric["Name"]]
    return values


def _state_items(backend: Backend, state_table: str, lock_path: str) -> list[dict[str, Any]]:
    """The state table's records of ``lock_path`` (its keys are digests: found by the readable attribute)."""
    items = backend.server.client("dynamodb").scan(TableName=state_table, ConsistentRead=True)["Items"]
    return [item for item in items if item.get("lock_path", {}).get("S") == lock_path]


@pytest.mark.parametrize("mode", ["enforce", "dry-run"])
def test_scheduled_sweep_reaps_a_killed_apply_lock_only_in_enforce_mode(  # noqa: PLR0917 - fixtures
    mode: str,
    handler: ModuleType,
    workspace: TerraformWorkspace,
    backend: Backend,
    state_table: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a stale lock left by a SIGKILLed apply, and the function configured with an enforcing policy
    stale = workspace.leave_stale_lock()
    assert "Error acquiring the state lock" in workspace.plan(lock_timeout="2s").output
    items_before = backend.all_items()
    digest_before = workspace.digest_item()
    policy = tmp_path / "policy.yaml"
    # (No stream audit here: the reap waits until the sweeper itself has seen the lock for reap_after, 2 s.)
    policy.write_text(policy_yaml((f"{backend.bucket}/*", "gone"), trust_holder_clock=False))
    monkeypatch.setenv("POLICY_PATH", str(policy))
    monkeypatch.setenv("REAPER_MODE", mode)
    wait_until_older_than(stale, 2)
    event = json.loads(SCHEDULE_EVENT.read_text())

    # When EventBridge invokes it: first it sees the lock (its Created, the holder's clock, does not count)...
    first = handler.lambda_handler(event, FakeLambdaContext())
    assert (first["summary"]["blocked"], first["summary"]["reaped"], first["summary"]["would_reap"]) == (1, 0, 0)
    assert workspace.lock_item() is not None
    # ...then, reap_after after its first sighting, again
    time.sleep(2.2)
    capsys.readouterr()
    result = handler.lambda_handler(event, FakeLambdaContext())

    # Then
    stdout = capsys.readouterr().out
    metrics = _emf_metrics(stdout)
    [state] = _state_items(backend, state_table, workspace.lock_path)
    assert state["lock_id"]["S"] == stale.id
    assert "first_seen" in state
    assert result["mode"] == mode
    assert result["summary"]["locks"] == 1
    assert result["summary"]["stale"] == 1
    if mode == "enforce":
        assert result["summary"]["reaped"] == 1
        assert metrics["LocksReaped"] in (1, 1.0, [1], [1.0])
        assert state["reap_status"]["S"] == "reaped"
        assert state["reaped_item"]["M"] == {"LockID": {"S": workspace.lock_path}, "Info": {"S": stale.raw_info}}
        assert workspace.lock_item() is None
        assert workspace.digest_item() == digest_before
        assert backend.all_items() == [i for i in items_before if i["LockID"]["S"] != workspace.lock_path]
        plan = workspace.plan(lock_timeout="2s")
        assert plan.returncode == 0, plan.output
    else:
        assert result["summary"]["reaped"] == 0
        assert result["summary"]["would_reap"] == 1
        assert metrics["LocksReaped"] in (0, 0.0, [0], [0.0])
        assert "reap_status" not in state
        assert backend.all_items() == items_before
