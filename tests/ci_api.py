"""CI-system API answers shaped as GitHub's and GitLab's REST documentation shows them, for the holder-check tests
(served by the loopback :class:`http_stub.StubServer`).

* GitHub "List workflow runs for a repository" / "for a workflow": ``{"total_count": n, "workflow_runs": [...]}``,
  newest first; a run's ``status`` is ``queued``, ``in_progress``, ``completed``, ``waiting``, ``requested`` or
  ``pending``; "List jobs for a workflow run attempt": ``{"total_count": n, "jobs": [...]}`` with ``runner_name``.
* GitLab "List project pipelines": a JSON array, with the ``x-next-page`` (empty on the last page), ``x-page``,
  ``x-per-page`` (and, under 10,000 results, ``x-total``/``x-total-pages``) headers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from http_stub import Reply

GITHUB_REPO = "octo-org/infra"
GITHUB_WORKFLOW = "terraform.yml"
GITHUB_JSON = {"Content-Type": "application/json; charset=utf-8"}


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def github_run(
    run_id: int,
    *,
    status: str,
    created: datetime,
    updated: datetime | None = None,
    conclusion: str | None = None,
    run_number: int | None = None,
    name: str = "Terraform",
    repo: str = GITHUB_REPO,
    api: str = "https://api.github.com",
) -> dict[str, Any]:
    """A workflow run as the REST API returns it (the documented fields; nested objects trimmed)."""
    owner, name_ = repo.split("/")
    run_url = f"{api}/repos/{repo}/actions/runs/{run_id}"
    return {
        "id": run_id,
        "name": name,
        "node_id": f"WFR_kwLOA{run_id}",
        "head_branch": "main",
        "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
        "path": f".github/workflows/{GITHUB_WORKFLOW}",
        "display_title": "Apply network changes",
        "run_number": run_number if run_number is not None else run_id % 1000,
        "event": "push",
        "status": status,
        "conclusion": conclusion if status == "completed" else None,
        "workflow_id": 159038,
        "check_suite_id": 414944374,
        "check_suite_node_id": "MDEwOkNoZWNrU3VpdGU0MTQ5NDQzNzQ=",
        "url": run_url,
        "html_url": f"https://github.com/{repo}/actions/runs/{run_id}",
        "pull_requests": [],
        "created_at": iso(created),
        "updated_at": iso(updated or created),
        "actor": {"login": "octocat", "id": 1, "type": "User", "site_admin": False},
        "run_attempt": 1,
        "referenced_workflows": [],
        "run_started_at": iso(created),
        "triggering_actor": {"login": "octocat", "id": 1, "type": "User", "site_admin": False},
        "jobs_url": f"{run_url}/jobs",
        "logs_url": f"{run_url}/logs",
        "check_suite_url": f"{api}/repos/{repo}/check-suites/414944374",
        "artifacts_url": f"{run_url}/artifacts",
        "cancel_url": f"{run_url}/cancel",
        "rerun_url": f"{run_url}/rerun",
        "previous_attempt_url": None,
        "workflow_url": f"{api}/repos/{repo}/actions/workflows/159038",
        "head_commit": {
            "id": "acb5820ced9479c074f688cc328bf03f341a511d",
            "tree_id": "d23f6eedb1e1b9610bbc754ddb5197bfe7271223",
            "message": "Apply network changes",
            "timestamp": iso(created),
            "author": {"name": "The Octocat", "email": "octocat@example.com"},
            "committer": {"name": "GitHub", "email": "noreply@github.com"},
        },
        "repository": {"id": 1296269, "name": name_, "full_name": repo, "owner": {"login": owner}},
        "head_repository": {"id": 1296269, "name": name_, "full_name": repo, "owner": {"login": owner}},
    }


def github_job(
    job_id: int,
    *,
    run_id: int,
    runner_name: str | None,
    status: str,
    started: datetime | None,
    completed: datetime | None = None,
    conclusion: str | None = None,
    name: str = "apply",
    repo: str = GITHUB_REPO,
    api: str = "https://api.github.com",
) -> dict[str, Any]:
    """A workflow job as "List jobs for a workflow run" returns it."""
    return {
        "id": job_id,
        "run_id": run_id,
        "run_url": f"{api}/repos/{repo}/actions/runs/{run_id}",
        "node_id": f"CR_kwDOA{job_id}",
        "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
        "url": f"{api}/repos/{repo}/actions/jobs/{job_id}",
        "html_url": f"https://github.com/{repo}/actions/runs/{run_id}/job/{job_id}",
        "status": status,
        "conclusion": conclusion if status == "completed" else None,
        "created_at": iso(started) if started else None,
        "started_at": iso(started) if started else None,
        "completed_at": iso(completed) if completed else None,
        "name": name,
        "steps": [
            {
                "name": "terraform apply",
                "status": status,
                "conclusion": conclusion if status == "completed" else None,
                "number": 3,
                "started_at": iso(started) if started else None,
                "completed_at": iso(completed) if completed else None,
            }
        ],
        "check_run_url": f"{api}/repos/{repo}/check-runs/{job_id}",
        "labels": ["self-hosted", "linux"],
        "runner_id": 7 if runner_name else None,
        "runner_name": runner_name,
        "runner_group_id": 1 if runner_name else None,
        "runner_group_name": "Default" if runner_name else None,
        "run_attempt": 1,
        "workflow_name": "Terraform",
        "head_branch": "main",
    }


def github_runs_reply(*runs: dict[str, Any], total_count: int | None = None, **headers: str) -> Reply:
    body = {"total_count": len(runs) if total_count is None else total_count, "workflow_runs": list(runs)}
    rate = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4987", "x-ratelimit-used": "13"}
    return Reply(200, json.dumps(body), {**GITHUB_JSON, **rate, **_dashed(headers)})


def github_jobs_reply(*jobs: dict[str, Any], total_count: int | None = None) -> Reply:
    body = {"total_count": len(jobs) if total_count is None else total_count, "jobs": list(jobs)}
    return Reply(200, json.dumps(body), GITHUB_JSON)


def github_runs_path(prefix: str = "", repo: str = GITHUB_REPO, workflow: str | None = GITHUB_WORKFLOW) -> str:
    if workflow:
        return f"{prefix}/repos/{repo}/actions/workflows/{workflow}/runs"
    return f"{prefix}/repos/{repo}/actions/runs"


def github_jobs_path(run_id: int, prefix: str = "", repo: str = GITHUB_REPO) -> str:
    return f"{prefix}/repos/{repo}/actions/runs/{run_id}/jobs"


def gitlab_pipeline(
    pipeline_id: int,
    *,
    status: str,
    created: datetime,
    project_id: int = 4242,
    ref: str = "main",
    base: str = "https://gitlab.example.com",
    path: str = "platform/infra",
) -> dict[str, Any]:
    """A pipeline as "List project pipelines" returns it."""
    return {
        "id": pipeline_id,
        "iid": pipeline_id % 1000,
        "project_id": project_id,
        "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
        "ref": ref,
        "status": status,
        "source": "push",
        "created_at": created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "updated_at": created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "web_url": f"{base}/{path}/-/pipelines/{pipeline_id}",
    }


def gitlab_pipelines_reply(*pipelines: dict[str, Any], next_page: str = "", **headers: str) -> Reply:
    paging = {
        "x-page": "1",
        "x-per-page": "100",
        "x-next-page": next_page,
        "x-prev-page": "",
        "Content-Type": "application/json",
    }
    if not next_page:
        paging.update({"x-total": str(len(pipelines)), "x-total-pages": "1"})
    return Reply(200, json.dumps(list(pipelines)), {**paging, **_dashed(headers)})


def _dashed(headers: dict[str, str]) -> dict[str, str]:
    """``x_ratelimit_remaining="0"`` -> ``{"x-ratelimit-remaining": "0"}`` (header names as keyword arguments)."""
    return {name.replace("_", "-"): value for name, value in headers.items()}
