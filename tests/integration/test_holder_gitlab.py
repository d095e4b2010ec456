"""The GitLab CI holder check against a loopback server answering as GitLab's REST API documents it."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from ci_api import gitlab_pipeline, gitlab_pipelines_reply
from factories import NOW, lock_item
from fakes import FakeLockTable
from http_stub import Reply, StubServer
from moto import mock_aws
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.channels.factory import secret_resolver
from tflock_reaper.adapters.holders import make_providers
from tflock_reaper.adapters.holders.gitlab import GitLabPipelines, GitLabSession
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import GitLabCheck, SecretRef, parse_policy
from tflock_reaper.services.sweep import HolderChecks, sweep

TOKEN = "glpat-T0KENT0KENT0KENT0KEN"
TOKEN_SECRET = "tflock-reaper/gitlab-token"
PROJECT = "platform/infra"
PROJECT_ID = 4242
PIPELINES = "/gitlab/api/v4/projects/platform%2Finfra/pipelines"  # a self-managed instance under /gitlab
PATH = "tf-state/prod/network/terraform.tfstate"
CREATED = NOW - timedelta(hours=3)
RUNNER_HOST = f"runner-t3x_AbC1-project-{PROJECT_ID}-concurrent-0"
#: How the evidence states the acquisition bound when it is CREATED.
ACQUISITION = f"the lock's acquisition (at the latest {CREATED:%Y-%m-%dT%H:%M:%SZ}, +5m clock slack)"


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = StubServer().start()
    yield server
    server.stop()


@pytest.fixture
def no_token_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert TOKEN not in "\n".join(r.getMessage() for r in caplog.get_records("call"))


def lock(path: str = PATH, *, who: str = "root@build-vm-3", created=CREATED) -> LockRecord:
    record = classify_item(lock_item(path, who=who, created=created), None)
    assert isinstance(record, LockRecord)
    return record


def check(
    server: StubServer, *, project: str = PROJECT, session=None, token=lambda: TOKEN, **options
) -> GitLabPipelines:
    settings = GitLabCheck(project=project, url=server.url("/gitlab/"), token=SecretRef(secret=TOKEN_SECRET))
    return GitLabPipelines(settings, token, session=session, **{"timeout": 2.0, **options})


def pipeline(pipeline_id: int, status: str, created, **kwargs):
    return gitlab_pipeline(pipeline_id, status=status, created=created, project_id=PROJECT_ID, **kwargs)


# -- running / not running --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "unfinished", ["created", "pending", "preparing", "running", "waiting_for_resource", "scheduled", "canceling"]
)
def test_a_pipeline_not_finished_and_created_before_the_lock_means_running(gitlab, unfinished, no_token_logged):
    gitlab.route(
        PIPELINES,
        gitlab_pipelines_reply(
            pipeline(88012, unfinished, CREATED - timedelta(minutes=4), ref="main"),
            pipeline(88011, "success", CREATED - timedelta(hours=1)),
        ),
    )
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.RUNNING,
        f"pipeline #12 (id 88012, {unfinished}, ref 'main') created "
        f"{(CREATED - timedelta(minutes=4)).strftime('%Y-%m-%dT%H:%M:%SZ')} of {PROJECT}: not finished, created by "
        f"{ACQUISITION}",
        "gitlab",
    )


def test_the_pipelines_request_is_the_documented_one_with_the_token_in_the_header_only(gitlab):
    gitlab.route(PIPELINES, gitlab_pipelines_reply())
    check(gitlab).status(lock(), NOW, CREATED)
    (request,) = gitlab.requests
    assert (request.method, request.route) == ("GET", PIPELINES)  # the path URL-encoded: platform%2Finfra
    assert request.query == {"per_page": ["100"], "order_by": ["id"], "sort": ["desc"]}
    assert request.headers["PRIVATE-TOKEN"] == TOKEN
    assert TOKEN not in request.path


def test_a_numeric_project_id_is_used_as_is(gitlab):
    gitlab.route(f"/gitlab/api/v4/projects/{PROJECT_ID}/pipelines", gitlab_pipelines_reply())
    status = check(gitlab, project=str(PROJECT_ID)).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert len(gitlab.requests) == 1


@pytest.mark.parametrize("final", ["success", "failed", "canceled", "skipped", "manual"])
def test_only_finished_pipelines_on_the_last_page_mean_not_running(gitlab, final):
    gitlab.route(
        PIPELINES,
        gitlab_pipelines_reply(*(pipeline(88000 + i, final, CREATED - timedelta(hours=i)) for i in (1, 2))),
    )
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.NOT_RUNNING,
        f"no pipeline of {PROJECT} created by {ACQUISITION} is unfinished (checked 2 recent pipelines)",
        "gitlab",
    )


def test_a_pipeline_created_after_the_lock_is_not_its_holder(gitlab):
    gitlab.route(
        PIPELINES,
        gitlab_pipelines_reply(
            pipeline(88021, "running", CREATED + timedelta(minutes=30)),
            pipeline(88020, "canceled", CREATED - timedelta(minutes=10)),
        ),
    )
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert "1 pipeline(s) created after the lock cannot hold it" in status.evidence


def test_slow_holder_clock_does_not_exclude_the_holding_run(gitlab):
    # Given a lock taken 12 minutes ago by a pipeline created 13 minutes ago, on a host whose clock runs 3 hours
    # slow: Created says 3h12m ago. The reaper first saw the lock 10 minutes ago.
    created = NOW - timedelta(hours=3, minutes=12)
    first_seen = NOW - timedelta(minutes=10)
    started = NOW - timedelta(minutes=13)
    gitlab.route(
        PIPELINES,
        gitlab_pipelines_reply(
            pipeline(88025, "running", started), pipeline(88024, "success", NOW - timedelta(hours=4))
        ),
    )

    # When the check is asked with the server-side bound (not Created)
    status = check(gitlab).status(lock(created=created), NOW, first_seen)

    # Then the pipeline that holds the lock is running (judged by Created, it came "after the lock": not_running)
    assert status == HolderStatus(
        HolderState.RUNNING,
        f"pipeline #25 (id 88025, running, ref 'main') created {started:%Y-%m-%dT%H:%M:%SZ} of {PROJECT}: not "
        f"finished, created by the lock's acquisition (at the latest {first_seen:%Y-%m-%dT%H:%M:%SZ}, +5m clock "
        "slack)",
        "gitlab",
    )


def test_more_pipelines_than_one_page_without_an_unfinished_one_is_unknown(gitlab):
    page = [pipeline(88100 + i, "success", CREATED - timedelta(hours=i)) for i in range(100)]
    gitlab.route(PIPELINES, gitlab_pipelines_reply(*page, next_page="2"))
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence == (
        f"the 100 most recent pipelines of {PROJECT} show none unfinished that was created by {ACQUISITION}, "
        "but GitLab has more and an older pipeline may still be going"
    )


def test_without_paging_headers_a_full_page_is_not_complete(gitlab):
    page = [pipeline(88200 + i, "success", CREATED - timedelta(hours=i)) for i in range(100)]
    reply = gitlab_pipelines_reply(*page)
    gitlab.route(PIPELINES, Reply(200, reply.body, {"Content-Type": "application/json"}))
    assert check(gitlab).status(lock(), NOW, CREATED).state is HolderState.UNKNOWN


# -- precision: GitLab runner build hosts -----------------------------------------------------------------------
def test_a_runner_host_of_this_project_is_named_in_the_evidence(gitlab):
    gitlab.route(PIPELINES, gitlab_pipelines_reply(pipeline(88030, "failed", CREATED - timedelta(minutes=5))))
    status = check(gitlab).status(lock(who=f"root@{RUNNER_HOST}"), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert status.evidence.endswith(
        f"(checked 1 recent pipelines); the lock's host '{RUNNER_HOST}' is a GitLab runner build host of this "
        f"project ({PROJECT_ID}), which the API cannot tie to one pipeline"
    )


def test_a_kubernetes_runner_pod_of_this_project_matches_too(gitlab):
    by_id = f"/gitlab/api/v4/projects/{PROJECT_ID}/pipelines"
    gitlab.route(by_id, gitlab_pipelines_reply(pipeline(88031, "running", CREATED - timedelta(minutes=5))))
    status = check(gitlab, project=str(PROJECT_ID)).status(lock(who=f"@{RUNNER_HOST}-x7k2p"), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert f"build host of this project ({PROJECT_ID})" in status.evidence


def test_a_runner_host_of_another_project_is_unknown(gitlab):
    # Given this project's pipelines are all finished, but the lock was taken on a build host of project 77
    gitlab.route(PIPELINES, gitlab_pipelines_reply(pipeline(88040, "success", CREATED - timedelta(minutes=5))))
    status = check(gitlab).status(lock(who="root@runner-zz9ZZ9zz-project-77-concurrent-3"), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.UNKNOWN,
        "the lock's host 'runner-zz9ZZ9zz-project-77-concurrent-3' is a GitLab runner build host of project 77, "
        f"not of {PROJECT} (project {PROJECT_ID}): the lock was taken by another project's job, which this check "
        "cannot see",
        "gitlab",
    )


def test_a_runner_host_cannot_be_matched_to_a_project_known_only_by_path_without_pipelines(gitlab):
    gitlab.route(PIPELINES, gitlab_pipelines_reply())
    status = check(gitlab).status(lock(who=f"root@{RUNNER_HOST}"), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert f"whether that is {PROJECT} cannot be told" in status.evidence


# -- failures are unknown ---------------------------------------------------------------------------------------
def test_a_hanging_gitlab_times_out_within_bounds_and_is_not_asked_again(gitlab, no_token_logged):
    gitlab.route(PIPELINES, Reply(hang=30))
    session = GitLabSession()
    started = time.monotonic()
    status = check(gitlab, session=session, timeout=0.3, max_attempts=2).status(lock(), NOW, CREATED)
    assert 0.6 <= time.monotonic() - started < 3
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(f"GitLab did not answer for the pipelines of {PROJECT}: no answer after 2")
    other = check(gitlab, session=session, project="platform/dns").status(lock(), NOW, CREATED)
    assert other.state is HolderState.UNKNOWN
    assert "earlier in this sweep" in other.evidence
    assert len(gitlab.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        Reply(429, "Retry later\n", {"Retry-After": "60", "RateLimit-Remaining": "0", "RateLimit-Limit": "2000"}),
        Reply(403, '{"message": "403 Forbidden"}', {"RateLimit-Remaining": "0"}),
    ],
    ids=["429", "403-remaining-0"],
)
def test_a_rate_limit_is_unknown_at_once_and_the_sweep_stops_asking_gitlab(gitlab, reply):
    gitlab.route(PIPELINES, reply)
    session = GitLabSession()
    started = time.monotonic()
    status = check(gitlab, session=session).status(lock(), NOW, CREATED)
    assert time.monotonic() - started < 1
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(f"GitLab rate limit reached (HTTP {reply.status}")
    again = check(gitlab, session=session, project="platform/dns").status(lock(), NOW, CREATED)
    assert again.state is HolderState.UNKNOWN
    assert len(gitlab.requests) == 1


def test_the_last_allowed_request_is_used_and_then_gitlab_is_left_alone(gitlab):
    gitlab.route(PIPELINES, gitlab_pipelines_reply(RateLimit_Remaining="0"))
    session = GitLabSession()
    assert check(gitlab, session=session).status(lock(), NOW, CREATED).state is HolderState.NOT_RUNNING
    other = check(gitlab, session=session, project="platform/dns").status(lock(), NOW, CREATED)
    assert other.state is HolderState.UNKNOWN
    assert "GitLab's rate limit was used up earlier in this sweep" in other.evidence
    assert len(gitlab.requests) == 1


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(401, '{"message": "401 Unauthorized"}'), "GitLab rejected the token (HTTP 401: 401 Unauthorized)"),
        (Reply(403, '{"message": "403 Forbidden"}'), "GitLab denied access to the pipelines of platform/infra"),
        (Reply(404, '{"message": "404 Project Not Found"}'), "GitLab found no the pipelines of platform/infra (HTTP"),
        (Reply(500, "oops"), "GitLab answered HTTP 500 for the pipelines of platform/infra: oops"),
        (Reply(200, "<html>maintenance</html>"), "GitLab's answer is not the documented JSON"),
        (Reply(200, '{"message": "not a list"}'), "GitLab's answer is not the documented JSON"),
        (Reply(200, '[{"id": 1, "created_at": "2026-11-26T09:00:00Z"}]'), "GitLab's answer is not the documented JSON"),
    ],
    ids=["401", "403", "404", "500", "html", "object", "no-status"],
)
def test_errors_and_malformed_answers_are_unknown_and_never_show_the_token(gitlab, reply, why, no_token_logged):
    gitlab.route(PIPELINES, reply)
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(why), status.evidence
    assert TOKEN not in status.evidence


def test_a_token_echoed_in_an_error_is_redacted(gitlab):
    gitlab.route(PIPELINES, Reply(400, f'{{"message": {{"error": "invalid token {TOKEN}"}}}}'))
    status = check(gitlab).status(lock(), NOW, CREATED)
    assert status.evidence == (
        f"GitLab answered HTTP 400 for the pipelines of {PROJECT}: {{'error': 'invalid token <redacted>'}}"
    )


def test_an_unreadable_token_is_unknown_and_gitlab_is_not_asked(gitlab):
    status = check(gitlab, token=lambda: "  ").status(lock(), NOW, CREATED)
    assert status == HolderStatus(HolderState.UNKNOWN, "the GitLab token is empty", "gitlab")
    assert gitlab.requests == []


# -- wired as the sweep wires it --------------------------------------------------------------------------------
POLICY = """
mode: enforce
max_reaps_per_sweep: 10
defaults: {{warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}}
rules:
  - match: "tf-state/prod/*"
    holder: {{gitlab: {{project: {project}, url: "{url}", token: {{secret: {secret}}}}}}}
  - match: "tf-state/*"
    who: "^deploy@"
    holder:
      gitlab: {{project: {project}, url: "{url}", token: {{secret: {secret}}}}}
      state_progress: {{within: 10m}}
"""


def _sweep(server: StubServer, locks: list[dict]):
    clients = AwsClients(region="us-east-1")
    policy = parse_policy(POLICY.format(project=PROJECT, url=server.url("/gitlab"), secret=TOKEN_SECRET))
    state = MemoryStateStore()
    table = FakeLockTable(locks)
    providers = make_providers(clients=clients, secrets=secret_resolver(clients), state=state)
    report = sweep(
        lock_table=table,
        state=state,
        policy=policy,
        mode="enforce",
        clock=lambda: NOW,
        holders=HolderChecks(providers=providers),
    )
    return report, table


def test_one_query_per_project_whatever_the_number_of_locks_and_rules(gitlab, aws_env):
    with mock_aws():
        # Given the token in Secrets Manager and 6 stale locks under two rules asking about one project
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
        gitlab.route(PIPELINES, gitlab_pipelines_reply(pipeline(88500, "success", CREATED - timedelta(hours=1))))
        locks = [lock_item(f"tf-state/prod/app{i}.tfstate", created=CREATED) for i in range(3)]
        locks += [lock_item(f"tf-state/dev/app{i}.tfstate", created=CREATED, who="deploy@ci") for i in range(3)]

        # When one sweep judges them all
        report, table = _sweep(gitlab, locks)

    # Then GitLab was asked once, with the token from Secrets Manager, and every lock was reaped on its answer
    assert len(gitlab.requests) == 1
    assert gitlab.requests[0].headers["PRIVATE-TOKEN"] == TOKEN
    assert {r.outcome for r in report.locks} == {Outcome.REAPED}
    assert len(table.deletes) == 6


def test_a_missing_token_secret_is_unknown_and_blocks_the_reap(gitlab, aws_env):
    gitlab.route(PIPELINES, gitlab_pipelines_reply())
    with mock_aws():
        report, table = _sweep(gitlab, [lock_item("tf-state/prod/app.tfstate", created=CREATED)])
    [entry] = report.locks
    assert entry.outcome is Outcome.BLOCKED
    assert table.deletes == []
    assert entry.verdict.holder is not None
    assert entry.verdict.holder.evidence.startswith(f"cannot read the GitLab token (secret {TOKEN_SECRET}: ")
    assert gitlab.requests == []
