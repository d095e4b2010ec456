"""The CodeBuild and CodePipeline holder checks against moto (finished runs, missing targets, the sweep's call
count) and botocore's Stubber on real clients (runs in progress, start times, throttling, denied access): see
aws_ci_stack for what moto 5.2.5 can and cannot represent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from aws_ci_stack import CallCounter, create_codebuild_project, create_pipeline
from botocore.config import Config
from botocore.stub import Stubber
from factories import NOW, lock_item
from moto import mock_aws
from tables import LOCK_TABLE, put
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.holders.aws_ci import (
    BUILD_FINISHED,
    CLOCK_SLACK,
    IAM_ACTIONS,
    MAX_BUILD_LIFETIME,
    CodeBuildProject,
    CodePipelineExecutions,
    codebuild_provider,
)
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import CodeBuildCheck, CodePipelineCheck, parse_policy
from tflock_reaper.entrypoints.wiring import holder_checks
from tflock_reaper.services.sweep import sweep

CREATED = NOW - timedelta(hours=3)
#: When the holding run of the slow-clock tests started: 13 minutes ago (the lock was taken 12 minutes ago).
SLOW_START = NOW - timedelta(minutes=13)
PROJECT = "infra-apply"
PIPELINE = "infra"


def _lock(path: str = "tf-state/dev/app.tfstate", created: datetime = CREATED) -> LockRecord:
    record = classify_item(lock_item(path, created=created, who="root@ip-10-0-1-17"), None)
    assert isinstance(record, LockRecord)
    return record


def _build(number: int, status: str | None, started: datetime | None) -> dict[str, Any]:
    """A build as ``BatchGetBuilds`` returns it; without ``buildStatus`` when ``status`` is None."""
    build: dict[str, Any] = {"id": f"{PROJECT}:{number:08d}-uuid", "buildNumber": number}
    if status is not None:
        build["buildStatus"] = status
    if started is not None:
        build["startTime"] = started
    return build


@pytest.fixture
def codebuild(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("codebuild", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def codepipeline(aws_env: None) -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("codepipeline", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _stub_builds(stubber: Stubber, builds: list[dict[str, Any]], *, next_token: str | None = None) -> None:
    # An empty list breaks the model's minimum length of 1: a project without builds has no ids at all.
    listed: dict[str, Any] = {"ids": [b["id"] for b in builds]} if builds else {}
    if next_token:
        listed["nextToken"] = next_token
    # Exactly these parameters: in particular no sortOrder (the default order is newest first).
    stubber.add_response("list_builds_for_project", listed, {"projectName": PROJECT})
    if builds:
        stubber.add_response("batch_get_builds", {"builds": builds}, {"ids": [b["id"] for b in builds]})


def _codebuild_check(client: Any) -> CodeBuildProject:
    return CodeBuildProject(CodeBuildCheck(project=PROJECT), lambda: client)


# CodeBuild ---------------------------------------------------------------------------------------------------


def test_a_build_in_progress_since_before_the_lock_is_running(codebuild):
    client, stubber = codebuild
    _stub_builds(
        stubber,
        [
            _build(12, "SUCCEEDED", CREATED + timedelta(hours=1)),
            _build(11, "IN_PROGRESS", CREATED - timedelta(minutes=3)),
            _build(10, "FAILED", CREATED - timedelta(hours=5)),
        ],
    )
    status = _codebuild_check(client).status(_lock(), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert status.check == "codebuild"
    assert f"build {PROJECT}:00000011-uuid of project {PROJECT} is in progress" in status.evidence
    assert "any build of the project counts" in status.evidence


@pytest.mark.parametrize(
    ("started_after_created", "expected"),
    [
        (timedelta(0), HolderState.RUNNING),
        (CLOCK_SLACK - timedelta(seconds=1), HolderState.RUNNING),  # the holder's clock may run behind
        (CLOCK_SLACK + timedelta(seconds=1), HolderState.NOT_RUNNING),
        (timedelta(hours=2), HolderState.NOT_RUNNING),
    ],
)
def test_only_a_build_that_started_by_the_lock_plus_slack_can_be_its_holder(codebuild, started_after_created, expected):
    client, stubber = codebuild
    _stub_builds(stubber, [_build(7, "IN_PROGRESS", CREATED + started_after_created)])
    status = _codebuild_check(client).status(_lock(), NOW, CREATED)
    assert status.state is expected
    if expected is HolderState.NOT_RUNNING:
        assert "1 build(s) started after the lock was taken are not finished, not its holder" in status.evidence
        assert f"{PROJECT}:00000007-uuid" in status.evidence


def test_slow_holder_clock_does_not_exclude_the_holding_run(codebuild):
    # Given a lock taken 12 minutes ago by a build started 13 minutes ago, in a container whose clock runs 3 hours
    # slow: Created says 3h12m ago. The reaper first saw the lock 10 minutes ago.
    created, first_seen, started = NOW - timedelta(hours=3, minutes=12), NOW - timedelta(minutes=10), SLOW_START
    client, stubber = codebuild
    _stub_builds(stubber, [_build(21, "IN_PROGRESS", started), _build(20, "SUCCEEDED", NOW - timedelta(hours=4))])

    # When the check is asked with the server-side bound (not Created)
    status = _codebuild_check(client).status(_lock(created=created), NOW, first_seen)

    # Then the build that holds the lock is running (judged by Created, it started "after the lock": not_running)
    assert status.state is HolderState.RUNNING
    assert status.evidence.startswith(
        f"build {PROJECT}:00000021-uuid of project {PROJECT} is in progress since {started.isoformat()}, started by "
        f"the lock's acquisition (at the latest {first_seen.isoformat()}, +5m clock slack)"
    )


@pytest.mark.parametrize("status", [None, "QUEUED", "PENDING"])
def test_a_build_status_not_known_to_be_final_counts_as_not_finished(codebuild, status):
    # Given the only build that started before the lock has no status, or one CodeBuild does not document
    client, stubber = codebuild
    _stub_builds(stubber, [_build(8, status, CREATED - timedelta(minutes=2))])
    answer = _codebuild_check(client).status(_lock(), NOW, CREATED)
    # Then it may hold the lock: running, saying the status was not recognised
    assert answer.state is HolderState.RUNNING
    shown = "has no status" if status is None else f"has the unrecognised status {status!r}"
    assert f"build {PROJECT}:00000008-uuid of project {PROJECT} {shown} (counted as not finished) since" in (
        answer.evidence
    )


@pytest.mark.parametrize("status", [None, "QUEUED"])
def test_a_build_not_known_to_be_finished_without_a_start_time_is_unknown(codebuild, status):
    client, stubber = codebuild
    _stub_builds(stubber, [_build(9, status, None)])
    assert _codebuild_check(client).status(_lock(), NOW, CREATED).state is HolderState.UNKNOWN


@pytest.mark.parametrize("status", sorted(BUILD_FINISHED))
def test_every_documented_final_build_status_means_finished(codebuild, status):
    client, stubber = codebuild
    _stub_builds(stubber, [_build(4, status, CREATED - timedelta(minutes=2))])
    assert _codebuild_check(client).status(_lock(), NOW, CREATED).state is HolderState.NOT_RUNNING


def test_finished_builds_mean_not_running(aws_env):
    with mock_aws():
        client = boto3.client("codebuild", region_name="us-east-1")
        create_codebuild_project(client, PROJECT)
        for _ in range(3):
            client.start_build(projectName=PROJECT)
        now = datetime.now(UTC)
        status = _codebuild_check(client).status(_lock(created=now), now, now)
    assert status.state is HolderState.NOT_RUNNING
    assert f"no build of project {PROJECT} started by the lock's acquisition (at the latest " in status.evidence
    assert ", +5m clock slack) is unfinished" in status.evidence
    assert "read all 3 build(s)" in status.evidence


def test_a_project_without_builds_is_not_running_and_costs_one_call(codebuild):
    client, stubber = codebuild
    _stub_builds(stubber, [])  # no BatchGetBuilds: the stubber fails on any call not queued
    assert _codebuild_check(client).status(_lock(), NOW, CREATED).state is HolderState.NOT_RUNNING


@pytest.mark.parametrize(
    ("operation", "code", "message"),
    [
        ("list_builds_for_project", "ThrottlingException", "Rate exceeded"),
        ("list_builds_for_project", "AccessDeniedException", "not authorized to perform: codebuild:ListBuilds"),
        ("batch_get_builds", "AccessDeniedException", "not authorized to perform: codebuild:BatchGetBuilds"),
    ],
)
def test_a_failed_read_is_unknown_with_its_reason(codebuild, operation, code, message):
    client, stubber = codebuild
    if operation == "batch_get_builds":
        stubber.add_response("list_builds_for_project", {"ids": [f"{PROJECT}:1"]}, {"projectName": PROJECT})
    stubber.add_client_error(operation, service_error_code=code, service_message=message, http_status_code=400)
    status = _codebuild_check(client).status(_lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence == f"cannot read the builds of project {PROJECT}: {code}: {message}"


def test_an_unreachable_endpoint_is_unknown(aws_env):
    client = boto3.client(
        "codebuild",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    status = _codebuild_check(client).status(_lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert "EndpointConnectionError" in status.evidence


def test_missing_credentials_are_unknown(aws_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # A session of its own: boto3's default session may hold credentials resolved by an earlier test.
    client = boto3.Session(region_name="us-east-1").client("codepipeline")
    answer = CodePipelineExecutions(CodePipelineCheck(pipeline=PIPELINE), lambda: client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.UNKNOWN
    assert answer.evidence == (
        f"cannot read the executions of pipeline {PIPELINE}: NoCredentialsError: Unable to locate credentials"
    )


def test_a_failed_read_is_remembered_for_the_sweep(codebuild):
    client, stubber = codebuild
    calls = CallCounter(client)
    stubber.add_client_error("list_builds_for_project", service_error_code="ThrottlingException")
    check = _codebuild_check(client)
    answers = [check.status(_lock(f"tf-state/dev/{n}.tfstate"), NOW, CREATED).state for n in range(4)]
    assert answers == [HolderState.UNKNOWN] * 4
    assert calls.total("ListBuildsForProject") == 1


def test_builds_listed_but_not_returned_are_unknown(codebuild):
    client, stubber = codebuild
    stubber.add_response("list_builds_for_project", {"ids": [f"{PROJECT}:a", f"{PROJECT}:b"]}, {"projectName": PROJECT})
    stubber.add_response(
        "batch_get_builds",
        {"builds": [_build(2, "SUCCEEDED", CREATED)], "buildsNotFound": [f"{PROJECT}:b"]},
        {"ids": [f"{PROJECT}:a", f"{PROJECT}:b"]},
    )
    status = _codebuild_check(client).status(_lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert f"{PROJECT}:b" in status.evidence


def test_an_in_progress_build_without_a_start_time_is_unknown(codebuild):
    client, stubber = codebuild
    _stub_builds(stubber, [_build(3, "IN_PROGRESS", None)])
    assert _codebuild_check(client).status(_lock(), NOW, CREATED).state is HolderState.UNKNOWN


@pytest.mark.parametrize(
    ("oldest_listed", "created", "expected"),
    [
        # Older, unlisted builds may have started before the lock and still be running.
        (NOW - timedelta(hours=2), CREATED, HolderState.UNKNOWN),
        (NOW - MAX_BUILD_LIFETIME + timedelta(minutes=1), CREATED, HolderState.UNKNOWN),
        # Every unlisted build started longer ago than a build can live: all have ended.
        (NOW - MAX_BUILD_LIFETIME - timedelta(minutes=1), CREATED, HolderState.NOT_RUNNING),
        # A lock older than a build can live: its holder's build has ended, whatever the listing misses.
        (
            NOW - timedelta(hours=2),
            NOW - MAX_BUILD_LIFETIME - CLOCK_SLACK - timedelta(minutes=1),
            HolderState.NOT_RUNNING,
        ),
    ],
)
def test_a_truncated_listing_proves_nothing_unless_older_builds_must_have_ended(
    codebuild, oldest_listed, created, expected
):
    client, stubber = codebuild
    _stub_builds(
        stubber,
        [_build(500, "SUCCEEDED", NOW - timedelta(minutes=30)), _build(401, "FAILED", oldest_listed)],
        next_token="page-2",
    )
    status = _codebuild_check(client).status(_lock(created=created), NOW, created)
    assert status.state is expected
    if expected is HolderState.UNKNOWN:
        assert "an older build may still be in progress" in status.evidence
    else:
        assert "read the 2 newest builds, older ones have ended by their timeouts" in status.evidence


def test_checks_built_by_one_provider_share_one_read_per_project(codebuild):
    client, stubber = codebuild
    calls = CallCounter(client)
    _stub_builds(stubber, [_build(1, "SUCCEEDED", CREATED)])
    build = codebuild_provider(lambda: client)
    first, second = build(CodeBuildCheck(project=PROJECT)), build(CodeBuildCheck(project=PROJECT))
    assert (
        first.status(_lock(), NOW, CREATED).state
        is second.status(_lock(), NOW, CREATED).state
        is HolderState.NOT_RUNNING
    )
    assert calls.total("ListBuildsForProject") == calls.total("BatchGetBuilds") == 1


def test_the_client_is_made_on_first_use_only(codebuild):
    made: list[int] = []
    client, stubber = codebuild

    def factory() -> Any:
        made.append(1)
        return client

    build = codebuild_provider(factory)
    check = build(CodeBuildCheck(project=PROJECT))
    assert made == []
    _stub_builds(stubber, [])
    check.status(_lock(), NOW, CREATED)
    assert made == [1]


# CodePipeline ------------------------------------------------------------------------------------------------


def _execution(n: int, status: str | None, started: datetime | None) -> dict[str, Any]:
    summary: dict[str, Any] = {"pipelineExecutionId": f"exec-{n}"}
    if status is not None:
        summary["status"] = status
    if started is not None:
        summary["startTime"] = started
    return summary


def _stub_executions(stubber: Stubber, executions: list[dict[str, Any]], *, next_token: str | None = None) -> None:
    response: dict[str, Any] = {"pipelineExecutionSummaries": executions}
    if next_token:
        response["nextToken"] = next_token
    stubber.add_response("list_pipeline_executions", response, {"pipelineName": PIPELINE, "maxResults": 100})


def _pipeline_check(client: Any) -> CodePipelineExecutions:
    return CodePipelineExecutions(CodePipelineCheck(pipeline=PIPELINE), lambda: client)


@pytest.mark.parametrize("status", ["InProgress", "Stopping"])
def test_an_execution_in_progress_since_before_the_lock_is_running(codepipeline, status):
    client, stubber = codepipeline
    _stub_executions(
        stubber,
        [_execution(9, "Failed", CREATED + timedelta(hours=1)), _execution(8, status, CREATED - timedelta(minutes=20))],
    )
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.RUNNING
    assert answer.check == "codepipeline"
    assert f"execution exec-8 of pipeline {PIPELINE} is {status}" in answer.evidence


@pytest.mark.parametrize("status", ["Succeeded", "Failed", "Stopped", "Superseded", "Cancelled"])
def test_finished_executions_mean_not_running(codepipeline, status):
    client, stubber = codepipeline
    _stub_executions(
        stubber, [_execution(2, status, CREATED - timedelta(minutes=20)), _execution(1, "Succeeded", None)]
    )
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.NOT_RUNNING
    assert "read all 2 execution(s) in its history" in answer.evidence


def test_slow_holder_clock_does_not_exclude_the_holding_execution(codepipeline):
    # Given a lock taken 12 minutes ago by an execution started 13 minutes ago, from a build whose clock runs 3
    # hours slow: Created says 3h12m ago. The reaper first saw the lock 10 minutes ago.
    created, first_seen, started = NOW - timedelta(hours=3, minutes=12), NOW - timedelta(minutes=10), SLOW_START
    client, stubber = codepipeline
    _stub_executions(stubber, [_execution(7, "InProgress", started), _execution(6, "Succeeded", CREATED)])

    # When the check is asked with the server-side bound (not Created)
    answer = _pipeline_check(client).status(_lock(created=created), NOW, first_seen)

    # Then the execution that holds the lock is running (judged by Created, it started "after the lock")
    assert answer == HolderStatus(
        HolderState.RUNNING,
        f"execution exec-7 of pipeline {PIPELINE} is InProgress since {started.isoformat()}, started by the lock's "
        f"acquisition (at the latest {first_seen.isoformat()}, +5m clock slack)",
        "codepipeline",
    )


@pytest.mark.parametrize("status", [None, "Queued", "PendingApproval"])
def test_an_execution_status_not_known_to_be_final_counts_as_not_finished(codepipeline, status):
    client, stubber = codepipeline
    _stub_executions(stubber, [_execution(3, status, CREATED - timedelta(minutes=2))])
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.RUNNING
    shown = "has no status" if status is None else f"has the unrecognised status {status!r}"
    assert answer.evidence.startswith(f"execution exec-3 of pipeline {PIPELINE} {shown} (counted as not finished)")


def test_an_execution_not_known_to_be_finished_without_a_start_time_is_unknown(codepipeline):
    client, stubber = codepipeline
    _stub_executions(stubber, [_execution(4, None, None)])
    assert _pipeline_check(client).status(_lock(), NOW, CREATED).state is HolderState.UNKNOWN


def test_an_execution_started_after_the_lock_is_not_its_holder(codepipeline):
    client, stubber = codepipeline
    _stub_executions(stubber, [_execution(5, "InProgress", CREATED + timedelta(hours=1))])
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.NOT_RUNNING
    assert (
        "1 execution(s) started after the lock was taken are not finished, not its holder (exec-5)" in answer.evidence
    )


def test_a_truncated_execution_history_is_unknown(codepipeline):
    client, stubber = codepipeline
    _stub_executions(stubber, [_execution(300, "Succeeded", NOW - timedelta(minutes=5))], next_token="more")
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.UNKNOWN
    assert "an older execution may still be in progress" in answer.evidence


def test_a_throttled_pipeline_read_is_unknown(codepipeline):
    client, stubber = codepipeline
    stubber.add_client_error(
        "list_pipeline_executions", service_error_code="ThrottlingException", service_message="Rate exceeded"
    )
    answer = _pipeline_check(client).status(_lock(), NOW, CREATED)
    assert answer.state is HolderState.UNKNOWN
    assert answer.evidence == f"cannot read the executions of pipeline {PIPELINE}: ThrottlingException: Rate exceeded"


def test_a_succeeded_pipeline_in_moto_is_not_running_and_a_missing_one_unknown(aws_env):
    with mock_aws():
        client = boto3.client("codepipeline", region_name="us-east-1")
        create_pipeline(boto3.client("iam", region_name="us-east-1"), client, PIPELINE)
        client.start_pipeline_execution(name=PIPELINE)
        now = datetime.now(UTC)
        answer = _pipeline_check(client).status(_lock(created=now), now, now)
        missing = CodePipelineExecutions(CodePipelineCheck(pipeline="nope"), lambda: client).status(
            _lock(), now, CREATED
        )
    assert answer.state is HolderState.NOT_RUNNING
    assert "read all 1 execution(s)" in answer.evidence
    assert missing.state is HolderState.UNKNOWN
    assert "PipelineNotFoundException" in missing.evidence


# The sweep ---------------------------------------------------------------------------------------------------

SWEEP_POLICY = """\
max_reaps_per_sweep: 20
defaults: {warn_after: 30m, reap_after: 1h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/a/*"
    holder: {codebuild: {project: infra-apply}}
  - match: "tf-state/b/*"
    holder: {codebuild: {project: infra-apply}, state_progress: {within: 10m}}
  - match: "tf-state/c/*"
    holder: {codebuild: {project: network}, codepipeline: {pipeline: infra}}
  - match: "tf-state/d/*"
    holder: {codepipeline: {pipeline: infra}}
"""


def test_a_sweep_reads_each_project_and_pipeline_once_whatever_the_number_of_locks(dynamodb):
    codebuild = boto3.client("codebuild", region_name="us-east-1")
    for project in (PROJECT, "network"):
        create_codebuild_project(codebuild, project)
        codebuild.start_build(projectName=project)
    create_pipeline(
        boto3.client("iam", region_name="us-east-1"), boto3.client("codepipeline", region_name="us-east-1"), PIPELINE
    )
    created = datetime.now(UTC) - timedelta(hours=3)
    paths = [f"tf-state/{group}/{n}.tfstate" for group in "abcd" for n in range(3)]
    put(dynamodb, *(lock_item(path, created=created) for path in paths))

    clients = AwsClients(region="us-east-1")
    builds, pipelines = CallCounter(clients.client("codebuild")), CallCounter(clients.client("codepipeline"))
    state = MemoryStateStore()
    report = sweep(
        lock_table=LockTable(clients.dynamodb(), LOCK_TABLE),
        state=state,
        policy=parse_policy(SWEEP_POLICY),
        mode="dry-run",
        holders=holder_checks(clients, state),
    )

    assert len(report.locks) == 12
    assert {r.verdict.holder.state for r in report.locks if r.verdict.holder} == {HolderState.NOT_RUNNING}
    assert [r.outcome.value for r in report.locks] == ["would-reap"] * 12
    assert builds.calls[("ListBuildsForProject", PROJECT)] == 1
    assert builds.calls[("ListBuildsForProject", "network")] == 1
    assert builds.total("ListBuildsForProject") == 2
    assert builds.total("BatchGetBuilds") == 2
    assert pipelines.calls[("ListPipelineExecutions", PIPELINE)] == 1
    assert sum(pipelines.calls.values()) == 1
    # Exactly the calls the template's IAM statements allow (tests/unit/test_template_holder_iam.py).
    assert {f"codebuild:{op}" for op, _ in builds.calls} == set(IAM_ACTIONS["codebuild"])
    assert {f"codepipeline:{op}" for op, _ in pipelines.calls} == set(IAM_ACTIONS["codepipeline"])
