"""The GitHub Actions holder check against a loopback server answering as GitHub's REST API documents it.

Every answer is checked for its state *and* its evidence, and every request for what was asked: one listing of
runs per target and sweep, jobs only when the lock's host can change the answer, nothing after a rate limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest
from ci_api import (
    GITHUB_REPO,
    GITHUB_WORKFLOW,
    github_job,
    github_jobs_path,
    github_jobs_reply,
    github_run,
    github_runs_path,
    github_runs_reply,
)
from factories import NOW, lock_item
from fakes import FakeLockTable
from http_stub import Reply, StubServer
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.channels.factory import secret_resolver
from tflock_reaper.adapters.holders import make_providers
from tflock_reaper.adapters.holders.github import GitHubActions, GitHubSession
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import GitHubCheck, SecretRef, parse_policy
from tflock_reaper.services.sweep import HolderChecks, sweep

TOKEN = "ghp_T0KENT0KENT0KENT0KENT0KENT0KEN1234"
TOKEN_SECRET = "tflock-reaper/github-token"
PREFIX = "/api/v3"  # a GitHub Enterprise Server API URL: {host}/api/v3
RUNS = github_runs_path(PREFIX)
PATH = "tf-state/prod/network/terraform.tfstate"
CREATED = NOW - timedelta(hours=3)
HOST = "ci-runner-7"
#: How the evidence states the acquisition bound when it is CREATED.
ACQUISITION = f"the lock's acquisition (at the latest {CREATED:%Y-%m-%dT%H:%M:%SZ}, +5m clock slack)"


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
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


def lock(path: str = PATH, *, who: str = f"runner@{HOST}", created=CREATED) -> LockRecord:
    record = classify_item(lock_item(path, who=who, created=created), None)
    assert isinstance(record, LockRecord)
    return record


def settings(server: StubServer, *, repo: str = GITHUB_REPO, workflow: str | None = GITHUB_WORKFLOW) -> GitHubCheck:
    return GitHubCheck(repo=repo, workflow=workflow, api_url=server.url(PREFIX), token=SecretRef(secret=TOKEN_SECRET))


def check(
    server: StubServer, *, session: GitHubSession | None = None, token=lambda: TOKEN, target=None, **options
) -> GitHubActions:
    options = {"timeout": 2.0, **options}
    return GitHubActions(settings(server, **(target or {})), token, session=session, **options)


def run(run_id: int, status: str, created, **kwargs):
    return github_run(run_id, status=status, created=created, run_number=run_id - 9000, **kwargs)


def assert_secret_free(status: HolderStatus) -> None:
    assert TOKEN not in status.evidence
    assert status.check == "github"


# -- running / not running --------------------------------------------------------------------------------------
@pytest.mark.parametrize("unfinished", ["queued", "in_progress", "waiting", "requested", "pending"])
def test_a_run_not_finished_and_created_before_the_lock_means_running(github, unfinished, no_token_logged):
    # Given a run in that state, created before the lock, among finished ones (the lock's host is no runner)
    github.route(
        RUNS,
        github_runs_reply(
            run(9012, unfinished, CREATED - timedelta(minutes=4)),
            run(9011, "completed", CREATED - timedelta(hours=2), conclusion="success"),
        ),
    )
    github.route(github_jobs_path(9012, PREFIX), github_jobs_reply())

    # When the check is asked
    status = check(github).status(lock(who="root@laptop"), NOW, CREATED)

    # Then it is running, naming the run
    assert status.state is HolderState.RUNNING
    assert status.evidence.startswith(f"run #12 'Terraform' (id 9012, {unfinished}) created ")
    assert f"of {GITHUB_REPO} {GITHUB_WORKFLOW}: not finished, created by {ACQUISITION}" in (status.evidence)
    assert "no job of these runs ran on the lock's host 'laptop'" in status.evidence
    assert_secret_free(status)


def test_the_runs_request_is_the_documented_one_with_the_token_in_the_header_only(github):
    github.route(RUNS, github_runs_reply())
    check(github).status(lock(), NOW, CREATED)
    (request,) = github.requests
    assert (request.method, request.route) == (
        "GET",
        f"{PREFIX}/repos/{GITHUB_REPO}/actions/workflows/terraform.yml/runs",
    )
    assert request.query == {"per_page": ["100"], "exclude_pull_requests": ["true"]}
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Accept"] == "application/vnd.github+json"
    assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert TOKEN not in request.path


def test_without_a_workflow_the_repository_runs_are_listed(github):
    github.route(github_runs_path(PREFIX, workflow=None), github_runs_reply())
    status = check(github, target={"workflow": None}).status(lock(), NOW, CREATED)
    assert [r.route for r in github.requests] == [f"{PREFIX}/repos/{GITHUB_REPO}/actions/runs"]
    assert status.state is HolderState.NOT_RUNNING
    assert status.evidence.startswith(f"no run of {GITHUB_REPO} created by {ACQUISITION} is unfinished")


def test_only_finished_runs_mean_not_running_with_the_number_checked(github, no_token_logged):
    # Given three finished runs, one of which finished after the lock was taken (it may have been the holder)
    github.route(
        RUNS,
        github_runs_reply(
            run(9001, "completed", CREATED - timedelta(hours=1), updated=CREATED + timedelta(hours=1)),
            *(run(9000 + i, "completed", CREATED - timedelta(hours=i), conclusion="failure") for i in (2, 3)),
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.NOT_RUNNING,
        f"no run of {GITHUB_REPO} {GITHUB_WORKFLOW} created by {ACQUISITION} is unfinished (checked 3 recent runs)",
        "github",
    )
    assert [r.route for r in github.requests] == [RUNS]  # nothing to gain from the jobs: none asked


def test_a_run_started_after_the_lock_is_not_its_holder(github):
    # Given the only unfinished run was created 20 minutes after the lock (it may be waiting for it)
    github.route(
        RUNS,
        github_runs_reply(
            run(9020, "in_progress", CREATED + timedelta(minutes=20)),
            run(9019, "completed", CREATED - timedelta(minutes=30), conclusion="cancelled"),
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert status.evidence.endswith("(checked 2 recent runs; 1 run(s) created after the lock cannot hold it)")


def test_a_run_created_within_the_clock_slack_after_the_lock_still_counts(github):
    # The holder's clock may run a little fast: a run GitHub dates 3 minutes after Created may be the holder.
    github.route(RUNS, github_runs_reply(run(9021, "in_progress", CREATED + timedelta(minutes=3))))
    github.route(github_jobs_path(9021, PREFIX), github_jobs_reply())
    assert check(github).status(lock(), NOW, CREATED).state is HolderState.RUNNING


def test_slow_holder_clock_does_not_exclude_the_holding_run(github):
    # Given a lock taken 12 minutes ago by a job on the lock's host, in a run created 13 minutes ago, whose
    # host's clock runs 3 hours slow: Created says 3h12m ago. The reaper first saw the lock 10 minutes ago.
    created = NOW - timedelta(hours=3, minutes=12)
    first_seen = NOW - timedelta(minutes=10)
    github.route(
        RUNS,
        github_runs_reply(
            run(9025, "in_progress", NOW - timedelta(minutes=13)),
            run(9024, "completed", NOW - timedelta(hours=4), conclusion="success"),
        ),
    )
    github.route(
        github_jobs_path(9025, PREFIX),
        github_jobs_reply(
            github_job(5, run_id=9025, runner_name=HOST, status="in_progress", started=NOW - timedelta(minutes=13))
        ),
    )

    # When the check is asked with the server-side bound (not Created)
    status = check(github).status(lock(created=created), NOW, first_seen)

    # Then the run that holds the lock is running (judged by Created, it started "after the lock": not_running)
    assert status == HolderStatus(
        HolderState.RUNNING,
        f"run #25 'Terraform' (id 9025, in_progress) of {GITHUB_REPO} {GITHUB_WORKFLOW} is not finished: its job "
        f"'apply' ran on runner '{HOST}', the lock's host, when the lock was taken",
        "github",
    )


def test_a_status_github_may_add_later_counts_as_running(github):
    github.route(RUNS, github_runs_reply(run(9022, "awaiting_something_new", CREATED - timedelta(minutes=5))))
    github.route(github_jobs_path(9022, PREFIX), github_jobs_reply())
    assert check(github).status(lock(who="@pod"), NOW, CREATED).state is HolderState.RUNNING


# -- completeness -----------------------------------------------------------------------------------------------
def test_a_page_that_does_not_hold_every_run_that_could_still_go_is_unknown(github):
    # Given 100 finished runs of the last days, out of 5000: an older run (up to 35 days) may still be going
    runs = [run(9100 + i, "completed", CREATED - timedelta(hours=i), conclusion="success") for i in range(100)]
    github.route(RUNS, github_runs_reply(*runs, total_count=5000))
    status = check(github).status(lock(who="root@laptop"), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(
        f"the 100 most recent of 5000 runs of {GITHUB_REPO} {GITHUB_WORKFLOW} show none unfinished that was created by "
        f"{ACQUISITION}"
    )
    assert "a run can last 35 days" in status.evidence


def test_a_page_reaching_back_beyond_the_35_day_run_limit_is_complete(github):
    runs = [run(9200, "completed", CREATED - timedelta(hours=1), conclusion="success")]
    runs.append(run(9199, "completed", NOW - timedelta(days=36), conclusion="success"))
    github.route(RUNS, github_runs_reply(*runs, total_count=5000))
    status = check(github).status(lock(who="root@laptop"), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING


# -- precision: the lock's host names the runner ----------------------------------------------------------------
def test_the_host_picks_its_own_run_among_unfinished_ones(github, no_token_logged):
    # Given two unfinished runs; run 9031's apply job runs on the lock's host
    github.route(
        RUNS,
        github_runs_reply(
            run(9032, "in_progress", CREATED - timedelta(minutes=2)),
            run(9031, "in_progress", CREATED - timedelta(minutes=6)),
        ),
    )
    github.route(
        github_jobs_path(9032, PREFIX),
        github_jobs_reply(github_job(1, run_id=9032, runner_name="ci-runner-2", status="in_progress", started=CREATED)),
    )
    github.route(
        github_jobs_path(9031, PREFIX),
        github_jobs_reply(
            github_job(
                2,
                run_id=9031,
                runner_name="ci-runner-1",
                name="plan",
                status="completed",
                conclusion="success",
                started=CREATED - timedelta(minutes=5),
                completed=CREATED - timedelta(minutes=3),
            ),
            github_job(
                3, run_id=9031, runner_name=HOST.upper(), status="in_progress", started=CREATED - timedelta(seconds=20)
            ),
        ),
    )

    status = check(github).status(lock(), NOW, CREATED)

    assert status == HolderStatus(
        HolderState.RUNNING,
        f"run #31 'Terraform' (id 9031, in_progress) of {GITHUB_REPO} {GITHUB_WORKFLOW} is not finished: its job "
        f"'apply' ran on runner '{HOST.upper()}', the lock's host, when the lock was taken",
        "github",
    )
    jobs = [r for r in github.requests if r.route.endswith("/jobs")]
    assert {r.route for r in jobs} == {github_jobs_path(9031, PREFIX), github_jobs_path(9032, PREFIX)}
    assert all(r.query == {"filter": ["all"], "per_page": ["100"]} for r in jobs)


def test_a_finished_run_identified_by_the_host_is_not_running_even_while_another_runs(github):
    # Given run 9041 is in progress on another runner, and the lock's host ran run 9040, which was cancelled
    github.route(
        RUNS,
        github_runs_reply(
            run(9041, "in_progress", CREATED - timedelta(minutes=1)),
            run(
                9040,
                "completed",
                CREATED - timedelta(minutes=9),
                updated=CREATED + timedelta(minutes=40),
                conclusion="cancelled",
            ),
        ),
    )
    github.route(
        github_jobs_path(9041, PREFIX),
        github_jobs_reply(github_job(4, run_id=9041, runner_name="ci-runner-3", status="in_progress", started=CREATED)),
    )
    github.route(
        github_jobs_path(9040, PREFIX),
        github_jobs_reply(
            github_job(
                5,
                run_id=9040,
                runner_name=HOST,
                status="completed",
                conclusion="cancelled",
                started=CREATED - timedelta(minutes=1),
                completed=CREATED + timedelta(minutes=40),
            ),
        ),
    )

    status = check(github).status(lock(), NOW, CREATED)

    assert status.state is HolderState.NOT_RUNNING
    assert status.evidence == (
        f"the lock's host '{HOST}' is runner '{HOST}', which ran job 'apply' of run #40 'Terraform' (id 9040, "
        f"completed) of {GITHUB_REPO} {GITHUB_WORKFLOW} around the lock's acquisition (at the latest "
        f"{CREATED:%Y-%m-%dT%H:%M:%SZ}); that run finished (cancelled) at "
        f"{(CREATED + timedelta(minutes=40)).strftime('%Y-%m-%dT%H:%M:%SZ')}, so the run that took the lock is over; "
        "1 other unfinished run(s) did not run on this host then"
    )


def test_a_host_identified_finished_run_decides_even_when_the_page_is_incomplete(github):
    runs = [run(9300 + i, "completed", CREATED - timedelta(hours=i), conclusion="success") for i in range(1, 100)]
    holder = run(
        9300, "completed", CREATED - timedelta(minutes=2), updated=CREATED + timedelta(minutes=1), conclusion="failure"
    )
    github.route(RUNS, github_runs_reply(holder, *runs, total_count=4000))
    github.route(
        github_jobs_path(9300, PREFIX),
        github_jobs_reply(
            github_job(
                6,
                run_id=9300,
                runner_name=HOST,
                status="completed",
                conclusion="failure",
                started=CREATED - timedelta(minutes=1),
                completed=CREATED + timedelta(minutes=1),
            )
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert "that run finished (failure)" in status.evidence
    # only the run that was going when the lock was taken had its jobs read
    assert [r.route for r in github.requests] == [RUNS, github_jobs_path(9300, PREFIX)]


def test_a_job_that_ran_on_the_host_after_the_lock_does_not_identify_the_holder(github):
    # The runner ran an earlier job at the lock's time? No: its only job started an hour after the lock.
    github.route(
        RUNS,
        github_runs_reply(
            run(9051, "in_progress", CREATED - timedelta(minutes=3)),
            run(
                9050,
                "completed",
                CREATED - timedelta(minutes=10),
                updated=CREATED + timedelta(hours=2),
                conclusion="success",
            ),
        ),
    )
    github.route(
        github_jobs_path(9051, PREFIX),
        github_jobs_reply(github_job(7, run_id=9051, runner_name="ci-runner-3", status="in_progress", started=CREATED)),
    )
    github.route(
        github_jobs_path(9050, PREFIX),
        github_jobs_reply(
            github_job(
                8,
                run_id=9050,
                runner_name=HOST,
                status="completed",
                conclusion="success",
                started=CREATED + timedelta(hours=1),
                completed=CREATED + timedelta(hours=2),
            )
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert status.evidence.startswith("run #51 'Terraform' (id 9051, in_progress)")
    assert status.evidence.endswith(f"; no job of these runs ran on the lock's host '{HOST}'")


def test_a_job_that_ran_on_the_host_well_before_the_lock_does_not_identify_the_holder(github):
    # Given run 9055 (finished after the lock) whose plan job ran on the lock's host an hour before the lock,
    # and whose apply job ran elsewhere; and run 9056 still in progress on another runner
    github.route(
        RUNS,
        github_runs_reply(
            run(9056, "in_progress", CREATED - timedelta(minutes=30)),
            run(
                9055,
                "completed",
                CREATED - timedelta(hours=2),
                updated=CREATED + timedelta(minutes=10),
                conclusion="failure",
            ),
        ),
    )
    github.route(
        github_jobs_path(9056, PREFIX),
        github_jobs_reply(
            github_job(20, run_id=9056, runner_name="ci-runner-3", status="in_progress", started=CREATED)
        ),
    )
    github.route(
        github_jobs_path(9055, PREFIX),
        github_jobs_reply(
            github_job(
                21,
                run_id=9055,
                runner_name=HOST,
                name="plan",
                status="completed",
                conclusion="success",
                started=CREATED - timedelta(hours=2),
                completed=CREATED - timedelta(hours=1),
            ),
            github_job(
                22,
                run_id=9055,
                runner_name="ci-runner-4",
                status="completed",
                conclusion="failure",
                started=CREATED - timedelta(minutes=5),
                completed=CREATED + timedelta(minutes=10),
            ),
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert status.evidence.endswith(f"; no job of these runs ran on the lock's host '{HOST}'")


def test_another_runner_named_like_the_host_keeps_the_answer_repository_wide(github):
    # Several runners on one machine share its hostname: ci-runner-7 and ci-runner-7-b both report host ci-runner-7
    github.route(
        RUNS,
        github_runs_reply(
            run(9061, "in_progress", CREATED - timedelta(minutes=1)),
            run(
                9060,
                "completed",
                CREATED - timedelta(minutes=9),
                updated=CREATED + timedelta(minutes=5),
                conclusion="cancelled",
            ),
        ),
    )
    github.route(
        github_jobs_path(9061, PREFIX),
        github_jobs_reply(github_job(9, run_id=9061, runner_name=f"{HOST}-b", status="in_progress", started=CREATED)),
    )
    github.route(
        github_jobs_path(9060, PREFIX),
        github_jobs_reply(
            github_job(
                10,
                run_id=9060,
                runner_name=HOST,
                status="completed",
                conclusion="cancelled",
                started=CREATED - timedelta(minutes=2),
                completed=CREATED + timedelta(minutes=5),
            )
        ),
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert f"runner '{HOST}-b' also resembles the lock's host '{HOST}'" in status.evidence


def test_unreadable_jobs_of_an_unfinished_run_keep_the_answer_repository_wide(github):
    github.route(
        RUNS,
        github_runs_reply(
            run(9071, "in_progress", CREATED - timedelta(minutes=1)),
            run(
                9070,
                "completed",
                CREATED - timedelta(minutes=9),
                updated=CREATED + timedelta(minutes=5),
                conclusion="cancelled",
            ),
        ),
    )
    github.route(github_jobs_path(9071, PREFIX), Reply(500, '{"message": "Server Error"}'))
    github.route(
        github_jobs_path(9070, PREFIX),
        github_jobs_reply(
            github_job(
                11,
                run_id=9070,
                runner_name=HOST,
                status="completed",
                conclusion="cancelled",
                started=CREATED - timedelta(minutes=2),
                completed=CREATED + timedelta(minutes=5),
            )
        ),
    )
    status = check(github, max_attempts=1).status(lock(), NOW, CREATED)
    assert status.state is HolderState.RUNNING
    assert "the jobs of run #71 'Terraform' (id 9071, in_progress) could not be read" in status.evidence


def test_job_lookups_are_bounded_per_sweep(github):
    runs = [run(9400 + i, "in_progress", CREATED - timedelta(minutes=i + 1)) for i in range(5)]
    github.route(RUNS, github_runs_reply(*runs))
    for r in runs:
        github.route(github_jobs_path(r["id"], PREFIX), github_jobs_reply())
    session = GitHubSession(max_job_lookups=2)
    first = check(github, session=session).status(lock(), NOW, CREATED)
    second = check(github, session=session).status(lock("tf-state/prod/other.tfstate"), NOW, CREATED)
    assert first.state is second.state is HolderState.RUNNING
    assert len(github.requests) == 1 + 2


NAIVE_TIME = '{"total_count": 1, "workflow_runs": [{"id": 1, "status": "completed", "created_at": "2026-11-26T09:00"}]}'


# -- failures are unknown ---------------------------------------------------------------------------------------
def test_a_hanging_github_times_out_within_bounds_and_is_not_asked_again(github, no_token_logged):
    github.route(RUNS, Reply(hang=30))
    session = GitHubSession()
    started = time.monotonic()
    status = check(github, session=session, timeout=0.3, max_attempts=2).status(lock(), NOW, CREATED)
    elapsed = time.monotonic() - started
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith("the GitHub API did not answer for the runs of ")
    assert "no answer after 2 attempt(s) of 0.3s" in status.evidence
    assert 0.6 <= elapsed < 3
    assert len(github.requests) == 2

    other = check(github, session=session, target={"repo": "octo-org/app"}).status(lock(), NOW, CREATED)
    assert other.state is HolderState.UNKNOWN
    assert "GitHub was not asked for the runs of octo-org/app terraform.yml" in other.evidence
    assert len(github.requests) == 2
    assert_secret_free(status)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            403,
            '{"message": "API rate limit exceeded for user ID 1."}',
            {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1795694400"},
        ),
        Reply(429, '{"message": "You have exceeded a secondary rate limit."}', {"retry-after": "60"}),
        Reply(403, '{"message": "You have exceeded a secondary rate limit. Please wait a few minutes."}'),
        Reply(403, "", {"x-ratelimit-remaining": "0"}),
        Reply(403, '{"message": "Forbidden"}', {"retry-after": "120"}),
    ],
    ids=["primary-403", "secondary-429-retry-after", "secondary-403-message", "403-remaining-0", "403-retry-after"],
)
def test_a_rate_limit_is_unknown_at_once_and_the_sweep_stops_asking_github(github, reply):
    github.route(RUNS, reply)
    session = GitHubSession()
    started = time.monotonic()
    status = check(github, session=session).status(lock(), NOW, CREATED)
    assert time.monotonic() - started < 1  # neither retried nor waited out
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(f"GitHub rate limit reached (HTTP {reply.status}")
    if "retry-after" in reply.headers:
        assert f"retry after {reply.headers['retry-after']}s" in status.evidence
    if "x-ratelimit-reset" in reply.headers:
        assert "(HTTP 403 (resets at 2026-11-26T12:00:00Z)): API rate limit exceeded" in status.evidence

    # When the same sweep asks about another repository, a workflow and more locks
    again = [
        check(github, session=session, target={"repo": "octo-org/app"}).status(lock(), NOW, CREATED),
        check(github, session=session, target={"workflow": None}).status(lock(), NOW, CREATED),
        check(github, session=session).status(lock("tf-state/prod/dns.tfstate"), NOW, CREATED),
    ]
    assert len(github.requests) == 1
    assert all(a.state is HolderState.UNKNOWN for a in again)
    assert "earlier in this sweep" in again[0].evidence


def test_the_last_request_of_the_rate_limit_is_used_and_then_github_is_left_alone(github):
    github.route(RUNS, github_runs_reply(x_ratelimit_remaining="0", x_ratelimit_reset="1795694400"))
    session = GitHubSession()
    status = check(github, session=session).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    other = check(github, session=session, target={"repo": "octo-org/app"}).status(lock(), NOW, CREATED)
    assert other.state is HolderState.UNKNOWN
    assert "GitHub's rate limit was used up (resets at 2026-11-26T" in other.evidence
    assert len(github.requests) == 1


def test_a_rejected_token_is_unknown_and_never_shown(github, no_token_logged):
    github.route(
        RUNS, Reply(401, '{"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}')
    )
    status = check(github).status(lock(), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.UNKNOWN, "GitHub rejected the token (HTTP 401: Bad credentials)", "github"
    )


def test_a_token_echoed_in_an_error_is_redacted(github):
    github.route(RUNS, Reply(400, f'{{"message": "token {TOKEN} is malformed"}}'))
    status = check(github).status(lock(), NOW, CREATED)
    assert (
        status.evidence
        == "GitHub answered HTTP 400 for the runs of octo-org/infra terraform.yml: token <redacted> is malformed"
    )


def test_forbidden_without_rate_limit_is_unknown_but_github_is_still_asked_for_other_targets(github):
    github.route(
        RUNS, Reply(403, '{"message": "Resource not accessible by integration"}', {"x-ratelimit-remaining": "4000"})
    )
    github.route(github_runs_path(PREFIX, repo="octo-org/app"), github_runs_reply())
    session = GitHubSession()
    status = check(github, session=session).status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert "GitHub denied access to the runs of" in status.evidence
    assert "Resource not accessible by integration" in status.evidence
    other = check(github, session=session, target={"repo": "octo-org/app"}).status(lock(), NOW, CREATED)
    assert other.state is HolderState.NOT_RUNNING


def test_an_unknown_repository_or_workflow_is_unknown(github):
    github.route(RUNS, Reply(404, '{"message": "Not Found"}'))
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert "(HTTP 404)" in status.evidence


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("<html>Unicorn!</html>", "GitHub's answer is not the documented JSON"),
        ('{"total_count": 1}', "GitHub's answer is not the documented JSON (workflow_runs: Field required)"),
        (
            NAIVE_TIME,
            "GitHub's answer is not the documented JSON (workflow_runs.0.created_at: Input should have timezone info)",
        ),
        ("[]", "GitHub's answer is not the documented JSON"),
    ],
    ids=["html", "no-runs", "naive-time", "list"],
)
def test_a_malformed_answer_is_unknown(github, body, why):
    github.route(RUNS, Reply(200, body))
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence.startswith(why)


def test_a_server_error_is_retried_once(github):
    github.route(RUNS, Reply(502, "Bad Gateway"), github_runs_reply())
    status = check(github).status(lock(), NOW, CREATED)
    assert status.state is HolderState.NOT_RUNNING
    assert len(github.requests) == 2


def test_an_unreadable_token_is_unknown_and_github_is_not_asked(github):
    def missing() -> str:
        raise RuntimeError("boom")

    status = check(github, token=missing).status(lock(), NOW, CREATED)
    assert status == HolderStatus(HolderState.UNKNOWN, "cannot read the GitHub token (RuntimeError)", "github")
    assert github.requests == []


# -- wired as the sweep wires it --------------------------------------------------------------------------------
POLICY = """
mode: enforce
max_reaps_per_sweep: 10
defaults: {{warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}}
rules:
  - match: "tf-state/prod/*"
    holder:
      github: {{repo: {repo}, workflow: {workflow}, api_url: "{api}", token: {{secret: {secret}}}}}
  - match: "tf-state/stage/*"
    holder:
      github: {{repo: {repo}, workflow: {workflow}, api_url: "{api}", token: {{secret: {secret}}}}}
      http: {{url: "{api}/nothing-here/{{lock_id}}"}}
"""


@pytest.fixture
def aws(aws_env) -> Iterator[AwsClients]:
    from moto import mock_aws  # noqa: PLC0415

    with mock_aws():
        yield AwsClients(region="us-east-1")


def _sweep(server: StubServer, clients: AwsClients, locks: list[dict], *, enforce: bool = True):
    policy = parse_policy(
        POLICY.format(repo=GITHUB_REPO, workflow=GITHUB_WORKFLOW, api=server.url(PREFIX), secret=TOKEN_SECRET)
    )
    state = MemoryStateStore()
    table = FakeLockTable(locks)
    providers = make_providers(clients=clients, secrets=secret_resolver(clients), state=state)
    report = sweep(
        lock_table=table,
        state=state,
        policy=policy,
        mode="enforce" if enforce else "dry-run",
        clock=lambda: NOW,
        holders=HolderChecks(providers=providers),
    )
    return report, table


def test_one_query_per_target_whatever_the_number_of_locks_and_rules(github, aws):
    # Given the token in Secrets Manager, 7 stale locks under two rules that both ask about octo-org/infra
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
    github.route(RUNS, github_runs_reply(run(9500, "completed", CREATED - timedelta(hours=1), conclusion="success")))
    locks = [lock_item(f"tf-state/prod/app{i}.tfstate", created=CREATED, who=f"runner@host-{i}") for i in range(4)]
    locks += [lock_item(f"tf-state/stage/app{i}.tfstate", created=CREATED) for i in range(3)]

    # When one sweep judges them all
    report, table = _sweep(github, aws, locks)

    # Then GitHub was asked once, with the token from Secrets Manager
    runs = github.requests_to(RUNS)
    assert len(runs) == 1
    assert runs[0].headers["Authorization"] == f"Bearer {TOKEN}"
    # And the prod locks (github only) are reaped on its answer; the stage ones wait for their http check too
    outcomes = {r.lock.lock_path: r.outcome for r in report.locks}
    assert {p: o for p, o in outcomes.items() if "/prod/" in p} == {
        f"tf-state/prod/app{i}.tfstate": Outcome.REAPED for i in range(4)
    }
    assert {o for p, o in outcomes.items() if "/stage/" in p} == {Outcome.BLOCKED}
    assert sorted(table.deletes) == [f"tf-state/prod/app{i}.tfstate" for i in range(4)]
    # (the http check's URL differs per lock: asked once per stage lock)
    assert len([r for r in github.requests if r.route.startswith(f"{PREFIX}/nothing-here/")]) == 3
    prod = next(r for r in report.locks if r.lock.lock_path == "tf-state/prod/app0.tfstate")
    assert prod.verdict.holder is not None
    assert prod.verdict.holder.evidence.startswith(f"no run of {GITHUB_REPO} {GITHUB_WORKFLOW} created by the lock's")


def test_a_missing_token_secret_is_unknown_and_blocks_the_reap(github, aws):
    # Given no secret in Secrets Manager
    github.route(RUNS, github_runs_reply())
    report, table = _sweep(github, aws, [lock_item("tf-state/prod/app.tfstate", created=CREATED)])

    [entry] = report.locks
    assert entry.outcome is Outcome.BLOCKED
    assert table.deletes == []
    assert entry.verdict.holder is not None
    assert entry.verdict.holder.state is HolderState.UNKNOWN
    assert entry.verdict.holder.evidence.startswith(
        f"cannot read the GitHub token (secret {TOKEN_SECRET}: ResourceNotFoundException: Secrets Manager can't find"
    )
    assert any(r.startswith("holder liveness unknown: cannot read the GitHub token") for r in entry.reasons)
    assert github.requests == []


def test_a_running_holder_blocks_the_reap_and_the_reasons_name_the_run(github, aws):
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
    github.route(RUNS, github_runs_reply(run(9600, "waiting", CREATED - timedelta(minutes=3))))
    github.route(
        github_jobs_path(9600, PREFIX),
        github_jobs_reply(
            github_job(12, run_id=9600, runner_name=HOST, status="waiting", started=CREATED - timedelta(minutes=1))
        ),
    )
    report, table = _sweep(github, aws, [lock_item("tf-state/prod/app.tfstate", created=CREATED, who=f"u@{HOST}")])
    [entry] = report.locks
    assert entry.outcome is Outcome.BLOCKED
    assert table.deletes == []
    assert any(
        r.startswith("holder is running: run #600 'Terraform' (id 9600, waiting) of") and r.endswith("[github]")
        for r in entry.reasons
    ), entry.reasons
