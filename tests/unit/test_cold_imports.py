"""A handler module's import is the function's cold start (issue 16): it imports what every invocation uses, and
not what only some invocations do (a channel, a holder check, the regex engine, the YAML parser, ...), and it
builds no pydantic model (each is built on its first use: ``defer_build``).

``scripts/bench_coldstart.py`` measures the time against ``import boto3``; these tests pin down what is imported,
each in a fresh interpreter (this one has imported everything), so that the laziness cannot silently regress.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Imported only by the invocations that use them, by neither handler at import.
NEVER_AT_IMPORT = (
    # notification channels: built when a sweep alerts, or a release is announced
    "tflock_reaper.adapters.channels.slack",
    "tflock_reaper.adapters.channels.sns",
    "tflock_reaper.adapters.channels.pagerduty",
    "tflock_reaper.adapters.channels.webhook",
    "tflock_reaper.adapters.channels.slack_app",
    "tflock_reaper.adapters.slack_messages",
    "slack_sdk",
    # holder checks: built when the policy asks for one
    "tflock_reaper.adapters.holders.aws_ci",
    "tflock_reaper.adapters.holders.base",
    "tflock_reaper.adapters.holders.github",
    "tflock_reaper.adapters.holders.gitlab",
    "tflock_reaper.adapters.holders.http",
    "tflock_reaper.adapters.holders.web",
    "tflock_reaper.adapters.outbound",
    # sending a notification, reading a secret or a policy from SSM
    "tflock_reaper.services.dispatch",
    "aws_lambda_powertools.utilities.parameters",
    # the policy's regular expressions (rules[].who) and its YAML
    "re2",
    "yaml",
    # the CLI's
    "tflock_reaper.entrypoints.cli",
    "tflock_reaper.adapters.memory",
)

#: The stream function's batches never judge a lock, alert, or read a lockfile.
STREAM_NEVER_AT_IMPORT = (
    *NEVER_AT_IMPORT,
    "tflock_reaper.entrypoints.wiring",
    "tflock_reaper.domain.policy",
    "tflock_reaper.domain.notification",
    "tflock_reaper.adapters.channels.factory",
    "tflock_reaper.adapters.holders",
    "tflock_reaper.adapters.lockfiles",
    "tflock_reaper.services.sweep",
    # Powertools' batch utility loads its parser models when pydantic is imported before it: the handler imports
    # it first, and passes no model.
    "aws_lambda_powertools.utilities.parser",
)

#: The interactions function's import: only what checks a request's headers; its signature (slack_sdk, whose package
#: imports its Web API client), the press (services, policy, wiring) and the secret only for requests that need them.
INTERACTIONS_NEVER_AT_IMPORT = (
    *NEVER_AT_IMPORT,
    "slack_sdk",
    "tflock_reaper.entrypoints.wiring",
    "tflock_reaper.domain.policy",
    "tflock_reaper.services.interactions",
    "tflock_reaper.services.sweep",
    "tflock_reaper.adapters.state_table",
    "tflock_reaper.adapters.lockfiles",
    "tflock_reaper.adapters.channels.factory",
)

_REPORT = """
import json, sys
import {module}
from pydantic import BaseModel

def subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from subclasses(sub)

built = sorted(
    f"{{c.__module__}}.{{c.__qualname__}}"
    for c in subclasses(BaseModel)
    if c.__module__.startswith("tflock_reaper") and c.__pydantic_complete__
)
print(json.dumps({{"modules": sorted(sys.modules), "built": built}}))
"""


def _import_in_a_fresh_interpreter(module: str, function_dir: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "POWERTOOLS_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "layers" / "reaper"), str(ROOT / "functions" / function_dir)]),
        AWS_DEFAULT_REGION="us-east-1",
        POWERTOOLS_SERVICE_NAME="tflock-reaper",
        POWERTOOLS_METRICS_NAMESPACE="TflockReaper",
    )
    done = subprocess.run(
        [sys.executable, "-c", _REPORT.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    report: dict[str, list[str]] = json.loads(done.stdout)
    return report


@pytest.fixture(scope="module")
def sweeper() -> dict[str, list[str]]:
    return _import_in_a_fresh_interpreter("sweeper_handler", "sweeper")


@pytest.fixture(scope="module")
def stream() -> dict[str, list[str]]:
    return _import_in_a_fresh_interpreter("stream_handler", "stream")


@pytest.fixture(scope="module")
def interactions() -> dict[str, list[str]]:
    return _import_in_a_fresh_interpreter("interactions_handler", "interactions")


def test_the_interactions_handler_imports_only_what_checks_a_request(interactions):
    imported = set(interactions["modules"])
    assert "tflock_reaper.adapters.slack_interactions" in imported  # what every request runs is there
    assert sorted(imported.intersection(INTERACTIONS_NEVER_AT_IMPORT)) == []
    assert interactions["built"] == []


def test_the_sweeper_imports_no_channel_holder_check_regex_engine_or_yaml(sweeper):
    imported = set(sweeper["modules"])
    assert "tflock_reaper.services.sweep" in imported  # what every sweep runs is there
    assert sorted(imported.intersection(NEVER_AT_IMPORT)) == []


def test_the_stream_handler_imports_nothing_of_the_sweep_nor_of_lockfiles(stream):
    imported = set(stream["modules"])
    assert "tflock_reaper.services.recorder" in imported  # what every batch runs is there
    assert sorted(imported.intersection(STREAM_NEVER_AT_IMPORT)) == []


def test_neither_handler_builds_a_model_at_import(sweeper, stream):
    assert sweeper["built"] == []
    assert stream["built"] == []
