"""``tflock-reaper explain`` shows each holder check's answer and evidence (text and ``--json``), against moto."""

import io
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from aws_ci_stack import create_codebuild_project
from factories import lock_item
from tables import put
from tflock_reaper.entrypoints.cli import EXIT_OK, main

POLICY = """\
defaults: {warn_after: 30m, reap_after: 1h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/dev/*"
    holder: {codebuild: {project: infra-apply}, state_progress: {within: 10m}}
  - match: "tf-state/prod/*"
    holder: {codebuild: {project: no-such-project}, state_progress: {}}
  - match: "tf-state/sandbox/*"
    holder: {assume: gone}
"""


def _explain(policy: str, path: str, *extra: str) -> str:
    out = io.StringIO()
    assert main(["explain", "--table", "tf-locks", "--policy", policy, path, *extra], out=out) == EXIT_OK
    return out.getvalue()


def _holder_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Holder:") + 1
    return [line for line in lines[start:] if line.startswith("  ")]


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def codebuild(dynamodb):
    client = boto3.client("codebuild", region_name="us-east-1")
    create_codebuild_project(client, "infra-apply")
    client.start_build(projectName="infra-apply")  # moto reports it SUCCEEDED once read
    return client


def _stale(dynamodb, path: str, age: timedelta = timedelta(hours=3)) -> None:
    put(dynamodb, lock_item(path, created=datetime.now(UTC) - age))


def test_explain_prints_every_check_with_its_answer_and_evidence(dynamodb, codebuild, policy):
    _stale(dynamodb, "tf-state/dev/app.tfstate")
    text = _explain(policy, "tf-state/dev/app.tfstate")
    assert "Verdict   reap -> would-reap" in text
    codebuild_line, progress_line = _holder_section(text)
    assert codebuild_line.startswith(
        "  codebuild: not_running: no build of project infra-apply started by the lock's acquisition (at the latest "
    )
    assert "read all 1 build(s)" in codebuild_line
    assert progress_line == (
        "  state_progress: not_running: no write of this state was seen on the stream: no sign of progress within 10m"
    )


def test_explain_json_lists_the_checks(dynamodb, codebuild, policy):
    _stale(dynamodb, "tf-state/dev/app.tfstate")
    holder = json.loads(_explain(policy, "tf-state/dev/app.tfstate", "--json"))["holder"]
    assert holder["state"] == "not_running"
    assert [(c["check"], c["state"]) for c in holder["checks"]] == [
        ("codebuild", "not_running"),
        ("state_progress", "not_running"),
    ]
    assert "no build of project infra-apply" in holder["checks"][0]["evidence"]


def test_explain_shows_which_check_is_in_doubt_and_why(dynamodb, codebuild, policy):
    _stale(dynamodb, "tf-state/prod/app.tfstate")
    text = _explain(policy, "tf-state/prod/app.tfstate")
    assert "Verdict   warn -> blocked" in text
    codebuild_line, progress_line = _holder_section(text)
    assert codebuild_line.startswith(
        "  codebuild: unknown: cannot read the builds of project no-such-project: ResourceNotFoundException"
    )
    assert progress_line.startswith("  state_progress: not_running:")
    checks = json.loads(_explain(policy, "tf-state/prod/app.tfstate", "--json"))["holder"]["checks"]
    assert [c["state"] for c in checks] == ["unknown", "not_running"]


def test_explain_of_a_single_answer_and_of_a_lock_too_young_to_ask(dynamodb, policy):
    _stale(dynamodb, "tf-state/sandbox/app.tfstate")
    _stale(dynamodb, "tf-state/dev/young.tfstate", age=timedelta(minutes=40))
    assert _holder_section(_explain(policy, "tf-state/sandbox/app.tfstate")) == [
        "  assume: gone: not_running: the policy assumes the holder is gone"
    ]
    checks = json.loads(_explain(policy, "tf-state/sandbox/app.tfstate", "--json"))["holder"]["checks"]
    assert checks == [
        {"check": "assume: gone", "state": "not_running", "evidence": "the policy assumes the holder is gone"}
    ]
    young = _explain(policy, "tf-state/dev/young.tfstate")
    assert _holder_section(young) == ["  not asked: holder checks run only for locks past reap_after"]
    assert json.loads(_explain(policy, "tf-state/dev/young.tfstate", "--json"))["holder"] is None
