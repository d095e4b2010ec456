"""The sweep's time for outbound requests (issue 13: hangs), through the sweeper handler against moto.

A holder endpoint and a Slack webhook that both drip their answers a byte every 2 s: before, the first holder check
alone took 36 s, and a Lambda with 40 s left ran into its time reserve, or its timeout, with reaps and the state
record still to do. Now every request ends by its deadline and all of them by the sweep's budget (the remaining
time less the reserve and a margin), so the sweep returns with its reserve whole, its state recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from drip_server import DripServer
from factories import lock_item
from fakes import FakeLambdaContext
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.services.sweep import TIME_RESERVE_SECONDS

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sweeper_schedule.json").read_text())
SLACK_SECRET = "tflock-reaper/slack-webhook"
SLACK_PATH = "/services/T0000/B0000/XXXXSECRETXXXX"
POLICY = """\
mode: enforce
channels:
  slack: {{type: slack, webhook: {{secret: {slack_secret}}}}}
defaults:
  warn_after: 30m
  reap_after: 2h
  min_observed: 0s
  trust_holder_clock: true
  notify: {{channels: [slack]}}
rules:
  - match: "tf-state/app/*"
    holder: {{http: {{url: "{holder}/holder/{{lock_id}}"}}}}
"""


@dataclass
class ClockedContext(FakeLambdaContext):
    """A Lambda context whose remaining time runs down with the wall clock from ``remaining_ms``."""

    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms - int((time.monotonic() - self.started) * 1000)


@pytest.fixture
def dripping(dynamodb: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[DripServer, DripServer]]:
    """A holder endpoint and a Slack webhook (its URL in Secrets Manager) that both drip, and the handler's env."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    holder, slack = DripServer("body", interval=2.0).start(), DripServer("body", body=b"ok" * 20).start()
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=SLACK_SECRET, SecretString=slack.url(SLACK_PATH)
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(slack_secret=SLACK_SECRET, holder=holder.url("")))
    for name, value in {
        "LOCK_TABLE_NAME": LOCK_TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "REAPER_MODE": "enforce",
        "POWERTOOLS_SERVICE_NAME": "tflock-reaper",
        "POWERTOOLS_METRICS_NAMESPACE": "TflockReaper",
    }.items():
        monkeypatch.setenv(name, value)
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    yield holder, slack
    get_settings.cache_clear()
    holder.stop()
    slack.stop()


def test_a_sweep_against_dripping_endpoints_returns_with_its_time_reserve_whole(dynamodb, dripping):
    holder, slack = dripping
    created = datetime.now(UTC) - timedelta(hours=5)
    locks = [lock_item(f"tf-state/app/{name}.tfstate", created=created) for name in ("a", "b", "c", "d")]
    put(dynamodb, *locks)
    import sweeper_handler  # noqa: PLC0415 - imported once the environment is set, as Lambda does

    context = ClockedContext(remaining_ms=40_000)  # 40 s left: 15 s for outbound requests
    result = sweeper_handler.lambda_handler(EVENT, context)
    left = context.get_remaining_time_in_millis() / 1000

    assert left >= TIME_RESERVE_SECONDS  # before: the first holder check alone took 36 s of the 40
    assert result["summary"]["locks"] == 4
    assert result["summary"]["deferred"] == 0
    assert result["summary"]["blocked"] == 4  # every holder unknown: nothing reaped
    assert table_items(dynamodb) == sorted(locks, key=lambda i: str(i["LockID"]))
    # Each endpoint was asked once and cut off: the holder's host is not asked again in the sweep, and the sends
    # after the budget was spent failed without a request.
    assert len(holder.requests) == 1
    assert len(slack.requests) == 1
    # The sweep still recorded what it saw: the next one measures min_observed from this one.
    seen = [i for i in table_items(dynamodb, STATE_TABLE) if i["sk"]["S"].startswith("ID#") and "first_seen" in i]
    assert len(seen) == 4
