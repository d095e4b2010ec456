"""Holder checks end to end: real Terraform killed mid-apply leaves a stale lock; a loopback stand-in for GitHub's
REST API says whether the run that took it is still going; the CLI reads the GitHub token from Secrets Manager
on the moto server (its own AWS endpoint) and reaps only when the run is over.

The lock's ``Who`` is Terraform's own (``user@<this machine's hostname>``); the stand-in reports that hostname as
the runner of the run's job, as a self-hosted runner would, so the check identifies the run by the host.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

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
from http_stub import StubServer
from tflab import Backend, CliResult, HeldLock, TerraformWorkspace, wait_until_older_than

pytestmark = pytest.mark.e2e

PLAN_BLOCKED = "Error acquiring the state lock"
TOKEN = "ghp_E2ET0KENE2ET0KENE2ET0KENE2ET0KEN99"
PREFIX = "/api/v3"
RUNS = github_runs_path(PREFIX)
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:tflock-reaper-oncall"
POLICY = """\
mode: enforce
max_reaps_per_sweep: 3
channels:
  oncall: {{type: sns, topic_arn: "{topic}"}}
defaults: {{warn_after: 1s, reap_after: 2s, min_observed: 0s, trust_holder_clock: true, notify: {{channels: [oncall]}}}}
rules:
  - match: "{bucket}/*"
    holder:
      github: {{repo: {repo}, workflow: {workflow}, api_url: "{api}", token: {{secret: {secret}}}}}
"""


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = StubServer().start()
    yield server
    server.stop()


@pytest.fixture
def github_policy(backend: Backend, github: StubServer, write_policy: Callable[[str], Path]) -> Path:
    """The token in Secrets Manager on the moto server, and a policy whose only rule asks GitHub."""
    secret = f"tflock-reaper/github-{uuid.uuid4().hex[:8]}"
    backend.server.client("secretsmanager").create_secret(Name=secret, SecretString=TOKEN)
    return write_policy(
        POLICY.format(
            topic=TOPIC_ARN,
            bucket=backend.bucket,
            repo=GITHUB_REPO,
            workflow=GITHUB_WORKFLOW,
            api=github.url(PREFIX),
            secret=secret,
        )
    )


def _acquired(lock: HeldLock) -> tuple[datetime, str]:
    return datetime.fromisoformat(lock.info["Created"]), str(lock.info["Who"]).rpartition("@")[2]


def test_a_killed_apply_whose_run_is_over_is_reaped_and_terraform_plans_again(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    github: StubServer,
    github_policy: Path,
) -> None:
    # Given an apply killed mid-run: its lock stays and blocks terraform plan
    stale = workspace.leave_stale_lock()
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="2s").output
    digest_before = workspace.digest_item()
    created, host = _acquired(stale)
    # And GitHub says: the run whose job ran on this host when the lock was taken was cancelled, while another
    # run of the workflow is in progress on another runner
    github.route(
        RUNS,
        github_runs_reply(
            github_run(7702, status="in_progress", created=created - timedelta(seconds=30), run_number=702),
            github_run(
                7701,
                status="completed",
                conclusion="cancelled",
                created=created - timedelta(minutes=2),
                updated=created + timedelta(seconds=5),
                run_number=701,
            ),
        ),
    )
    github.route(
        github_jobs_path(7702, PREFIX),
        github_jobs_reply(
            github_job(2, run_id=7702, runner_name="other-runner", status="in_progress", started=created)
        ),
    )
    github.route(
        github_jobs_path(7701, PREFIX),
        github_jobs_reply(
            github_job(
                1,
                run_id=7701,
                runner_name=host,
                status="completed",
                conclusion="cancelled",
                started=created - timedelta(minutes=1),
                completed=created + timedelta(seconds=5),
            )
        ),
    )
    wait_until_older_than(stale, 2)

    # When the CLI sweeps with both keys turned
    result = reaper("sweep", "--policy", str(github_policy), "--enforce")

    # Then the lock is reaped on the evidence of that run, and only that run
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert (lock["id"], lock["outcome"]) == (stale.id, "reaped")
    assert lock["holder"]["state"] == "not_running"
    evidence = lock["holder"]["evidence"]
    assert evidence.startswith(f"the lock's host '{host}' is runner '{host}', which ran job 'apply' of run #701")
    assert "that run finished (cancelled)" in evidence
    assert evidence.endswith("1 other unfinished run(s) did not run on this host then")
    assert f"holder not running: {evidence} [github]" in lock["reasons"]
    # And GitHub was asked with the token the CLI read from Secrets Manager
    assert {r.headers["Authorization"] for r in github.requests} == {f"Bearer {TOKEN}"}
    assert [r.route for r in github.requests].count(RUNS) == 1

    # And the lock item is gone, the digest untouched, and terraform plan takes the lock again
    assert workspace.lock_item() is None
    assert workspace.digest_item() == digest_before
    plan = workspace.plan(lock_timeout="2s")
    assert plan.returncode == 0, plan.output


def test_a_killed_apply_whose_run_is_still_in_progress_is_kept_and_reap_blocked_alerted(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    github: StubServer,
    github_policy: Path,
) -> None:
    # Given a stale lock whose run GitHub still reports in progress, its job on this host
    stale = workspace.leave_stale_lock()
    items_before = workspace.backend.all_items()
    created, host = _acquired(stale)
    github.route(
        RUNS,
        github_runs_reply(
            github_run(7711, status="in_progress", created=created - timedelta(minutes=1), run_number=711),
        ),
    )
    github.route(
        github_jobs_path(7711, PREFIX),
        github_jobs_reply(
            github_job(3, run_id=7711, runner_name=host, status="in_progress", started=created - timedelta(seconds=20))
        ),
    )
    wait_until_older_than(stale, 2)

    # When the CLI sweeps with enforce and shows what it would alert
    result = reaper("sweep", "--policy", str(github_policy), "--enforce", "--show-notifications")
    text = reaper("sweep", "--policy", str(github_policy), "--enforce", "--show-notifications", json=False)

    # Then the lock is kept: blocked, the reasons naming the running run
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert (lock["id"], lock["action"], lock["outcome"]) == (stale.id, "warn", "blocked")
    running = (
        f"holder is running: run #711 'Terraform' (id 7711, in_progress) of {GITHUB_REPO} {GITHUB_WORKFLOW} is not "
        f"finished: its job 'apply' ran on runner '{host}', the lock's host, when the lock was taken [github]"
    )
    assert running in lock["reasons"]
    # And a reap_blocked alert would go to the on-call channel, saying why
    [alert] = lock["notifications"]
    assert (alert["event"], alert["channels"]) == ("reap_blocked", {"oncall": "would-send"})
    published = alert["rendered"]["oncall"]
    assert published["TopicArn"] == TOPIC_ARN
    assert published["MessageAttributes"]["event"]["StringValue"] == "reap_blocked"
    assert "run #711 'Terraform' (id 7711, in_progress)" in published["Message"]
    assert TOKEN not in result.stdout + result.stderr + text.stdout + text.stderr
    assert text.returncode == 0, text
    assert "    > reap_blocked -> oncall (would-send)" in text.stdout

    # And nothing was deleted: the lock still blocks terraform plan
    assert workspace.backend.all_items() == items_before
    assert PLAN_BLOCKED in workspace.plan(lock_timeout="1s").output
