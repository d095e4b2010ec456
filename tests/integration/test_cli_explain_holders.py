"""``tflock-reaper explain`` shows each holder check's answer and evidence (text and ``--json``), against moto."""

import io
import itertools
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
  - match: "tf-state/gh/*"
    holder: {github: {repo: acme/infra, token: {secret: tflock-reaper/github-token}}}
  - match: "tf-state/legacy/*"
"""


def _explain(policy: str, path: str, *extra: str) -> str:
    out = io.StringIO()
    assert main(["explain", "--table", "tf-locks", "--policy", policy, path, *extra], out=out) == EXIT_OK
    return out.getvalue()


def _holder_section(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("Holder:") + 1
    section = list(itertools.takewhile(lambda line: line.startswith("  "), lines[start:]))
    assert section, text
    return section


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
        "  assume: not_running: the policy assumes the holder is gone"
    ]
    checks = json.loads(_explain(policy, "tf-state/sandbox/app.tfstate", "--json"))["holder"]["checks"]
    assert checks == [{"check": "assume", "state": "not_running", "evidence": "the policy assumes the holder is gone"}]
    young = _explain(policy, "tf-state/dev/young.tfstate")
    assert _holder_section(young) == ["  not asked: holder checks run only for locks past reap_after"]
    assert json.loads(_explain(policy, "tf-state/dev/young.tfstate", "--json"))["holder"] is None


# -- messages that say what to do (issue 15.7) ---------------------------------------------------------------------
NOT_CONFIGURED = "no holder check is configured for this lock (holder: {assume: unknown}), so it is never reaped"


def test_the_default_holder_answer_is_said_once(dynamodb, policy):
    """Not ``assume: unknown: unknown: ...``: the check's name is its kind, the answer comes once, after it."""
    _stale(dynamodb, "tf-state/legacy/app.tfstate")
    text = _explain(policy, "tf-state/legacy/app.tfstate")
    assert _holder_section(text) == [f"  assume: unknown: {NOT_CONFIGURED}"]
    assert f"  - holder liveness unknown: {NOT_CONFIGURED} [assume]" in text.splitlines()


@pytest.mark.parametrize("path", ["tf-state/legacy/a.tfstate", "tf-state/sandbox/a.tfstate", "tf-state/gh/a.tfstate"])
def test_no_line_says_a_check_or_an_answer_twice_in_a_row(dynamodb, policy, path):
    _stale(dynamodb, path)
    for line in _explain(policy, path).splitlines():
        words = [word.strip() for word in line.split(":")]
        assert not [a for a, b in itertools.pairwise(words) if a and a == b], line


def test_a_token_that_cannot_be_read_names_the_secret_and_the_aws_error(dynamodb, policy):
    """Secrets Manager has no such secret: the check is ``unknown``, saying which secret and AWS's error (GitHub is
    never asked)."""
    _stale(dynamodb, "tf-state/gh/app.tfstate")
    text = _explain(policy, "tf-state/gh/app.tfstate")
    assert "Verdict   warn -> blocked" in text
    assert _holder_section(text) == [
        (
            "  github: unknown: cannot read the GitHub token (secret tflock-reaper/github-token: "
            "ResourceNotFoundException: Secrets Manager can't find the specified secret.)"
        )
    ]
