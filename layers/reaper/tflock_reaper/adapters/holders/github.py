"""GitHub Actions: is a workflow run that could hold the lock still going?

**One request per target.** GitHub's ``status`` filter takes a single value, so asking for each unfinished
status (queued, in_progress, waiting, requested, pending) would cost five requests per repository and sweep.
Instead one ``GET .../actions/runs?per_page=100`` (``.../actions/workflows/{workflow}/runs`` with a workflow)
returns the newest 100 runs whatever their status, and the runs are filtered here: any status other than
``completed`` counts as not finished (so a status GitHub adds later is treated as running, never as gone).

**When the answer is complete.** A run that holds the lock was created no later than the lock was taken. That
moment is bounded by server-side evidence (``acquired_by``: the stream's acquisition time, a lockfile's
LastModified or the reaper's first sighting; ``Created`` only where a rule sets ``trust_holder_clock``), never by
the holder's clock, which may run hours slow; :data:`CLOCK_SLACK` allows for GitHub's clock against AWS's. A run
created later cannot hold the lock. ``not_running`` needs the page to show every
run that could still be going: either it holds all runs (``total_count``) or it reaches back more than
:data:`MAX_RUN_LIFETIME` (GitHub cancels any workflow run after 35 days, waiting and approval included), so that
every older run has necessarily finished. Otherwise, with no unfinished run on the page, the answer is
``unknown``: an older run may still be going.

**Precision.** Terraform's ``Who`` is ``user@hostname``; on a self-hosted or actions-runner-controller runner the
hostname is normally the runner's name, which the jobs API reports (``runner_name``). When a job that ran on
the lock's host around the acquisition bound is found, the answer is about that job's run only: still going →
``running`` naming it; finished → ``not_running`` for that run, even if other runs are in progress elsewhere.
That needs the jobs of every unfinished run that could be the holder, and no other runner whose name contains
the host (several runners on one machine share its hostname): otherwise the repository-wide answer stands.

**Safety.** Any error, timeout, 401/403/404, rate limit, malformed answer or missing token is ``unknown`` with
the reason, never ``not_running``. The token is sent only in the ``Authorization`` header and never appears in
a message. Once GitHub rate-limits (403/429 with ``x-ratelimit-remaining: 0``, ``retry-after`` or a rate-limit
message) or does not answer, that GitHub instance is not asked again in the sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any
from urllib.parse import quote

from pydantic import AwareDatetime, BaseModel, ConfigDict

from tflock_reaper.adapters.holders.base import CiApi, CiApiCheck, NoAnswerError, WebSession, host_of, remembered
from tflock_reaper.adapters.holders.clock import CLOCK_SLACK, bound, when
from tflock_reaper.adapters.holders.web import Web
from tflock_reaper.domain.liveness import HolderState, HolderStatus, ProviderBuilder
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import GitHubCheck, SecretRef
from tflock_reaper.domain.text import fit, one_line

API_VERSION = "2022-11-28"
RUNS_PER_PAGE = 100
JOBS_PER_PAGE = 100
FINISHED = "completed"
#: "Each workflow run is limited to 35 days ... includes execution duration, and time spent on waiting and
#: approval" (GitHub Actions usage limits).
MAX_RUN_LIFETIME = timedelta(days=35)
#: Jobs lookups (for host precision) per GitHub instance per sweep; beyond it, the repository-wide answer.
MAX_JOB_LOOKUPS = 20
#: Unfinished runs named in a ``running`` answer.
RUNS_NAMED = 3

GITHUB = CiApi(
    name="GitHub",
    speaker="the GitHub API",
    base_url=attrgetter("api_url"),
    auth_header="Authorization",
    auth_prefix="Bearer ",
    headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
    scope="actions:read",
    not_found="wrong repository or workflow, or the token cannot see it",
    remaining="x-ratelimit-remaining",
    reset="x-ratelimit-reset",
    secondary_limits=True,
)


class _Run(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    name: str | None = None
    run_number: int | None = None
    status: str | None
    conclusion: str | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None

    @property
    def finished(self) -> bool:
        return self.status == FINISHED


class _RunsPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    total_count: int
    workflow_runs: list[_Run]

    def complete(self, now: datetime) -> bool:
        if self.total_count <= len(self.workflow_runs):
            return True
        oldest = min((r.created_at for r in self.workflow_runs), default=None)
        return oldest is not None and oldest <= now - MAX_RUN_LIFETIME


class _Job(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    run_id: int
    name: str | None = None
    status: str | None = None
    started_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    runner_name: str | None = None

    def active_around(self, when: datetime) -> bool:
        """Started by ``when`` and not completed before it (with the clock slack on both sides)."""
        if self.started_at is None or self.started_at > when + CLOCK_SLACK:
            return False
        return self.completed_at is None or self.completed_at >= when - CLOCK_SLACK


class _JobsPage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    total_count: int
    jobs: list[_Job]

    @property
    def complete(self) -> bool:
        return self.total_count <= len(self.jobs)


@dataclass
class GitHubSession(WebSession):
    """What one sweep learns from GitHub, shared by all of its GitHub checks: the runs of each target, the jobs
    of each run, and the GitHub instances not to ask again (rate limited or unreachable) in this sweep."""

    max_job_lookups: int = MAX_JOB_LOOKUPS
    runs: dict[tuple[str, str, str | None, SecretRef], _RunsPage | NoAnswerError] = field(default_factory=dict)
    jobs: dict[tuple[str, str, int], _JobsPage | NoAnswerError] = field(default_factory=dict)
    job_lookups: dict[str, int] = field(default_factory=dict)


def _target(settings: GitHubCheck) -> str:
    return f"{settings.repo} {settings.workflow}" if settings.workflow else settings.repo


def _run_label(run: _Run) -> str:
    number = f"#{run.run_number} " if run.run_number is not None else ""
    name = f"{fit(one_line(run.name), 80)!r} " if run.name else ""
    return f"run {number}{name}(id {run.id}, {run.status or 'no status'})"


@dataclass
class _Identified:
    """What the jobs of the candidate runs say about the lock's host."""

    live: list[tuple[_Run, _Job]] = field(default_factory=list)
    finished: list[tuple[_Run, _Job]] = field(default_factory=list)
    unresolved: list[_Run] = field(default_factory=list)
    lookalikes: list[str] = field(default_factory=list)

    def note(self, host: str) -> str:
        if self.unresolved:
            return f"; the jobs of {_run_label(self.unresolved[0])} could not be read to match the host {host!r}"
        if self.lookalikes:
            return (
                f"; runner {self.lookalikes[0]!r} also resembles the lock's host {host!r}: it does not identify the run"
            )
        if not self.finished:
            return f"; no job of these runs ran on the lock's host {host!r}"
        return ""


class GitHubActions(CiApiCheck[GitHubCheck, GitHubSession]):
    """``github`` holder check: is a run of ``repo`` (of one ``workflow`` file, if set) that could hold the lock
    still going?

    API calls per sweep, shared by every GitHub check of the sweep (one :class:`GitHubSession`):

    * ``GET {api_url}/repos/{owner}/{repo}/actions/runs?per_page=100&exclude_pull_requests=true`` (with
      ``workflow``: ``/actions/workflows/{workflow}/runs``): once per (API URL, repository, workflow, token),
      whatever the number of locks;
    * ``GET {api_url}/repos/{owner}/{repo}/actions/runs/{run_id}/jobs?filter=all&per_page=100``: only to match
      the lock's host when it can change the answer (an unfinished run was created before the lock, or the
      page of runs is not complete), once per run and at most ``MAX_JOB_LOOKUPS`` per GitHub instance;
    * nothing more once that GitHub instance rate-limited or did not answer in this sweep.

    Headers: ``Authorization: Bearer <token>``, ``Accept: application/vnd.github+json``,
    ``X-GitHub-Api-Version: 2022-11-28``. Each request: ``timeout`` seconds to connect and per read,
    ``max_attempts`` attempts (connection errors, timeouts and 5xx are retried; 403/429 are not).
    """

    name = "github"
    api = GITHUB
    session_type = GitHubSession

    @property
    def _repo_url(self) -> str:
        return f"{self.base}/repos/{self.settings.repo}"

    # -- answers -----------------------------------------------------------------------------------------------

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        page = self._runs()
        if isinstance(page, NoAnswerError):
            return self._answer(HolderState.UNKNOWN, page.reason)
        before = [r for r in page.workflow_runs if r.created_at <= acquired_by + CLOCK_SLACK]
        later = len(page.workflow_runs) - len(before)
        unfinished = [r for r in before if not r.finished]
        complete = page.complete(now)
        host = host_of(lock.info.who)
        note = ""
        if host and (unfinished or not complete):
            identified = self._identify(host, before, acquired_by)
            decided = self._by_host(host, identified, unfinished, acquired_by)
            if decided is not None:
                return decided
            note = identified.note(host)
        if unfinished:
            return self._running(unfinished, note, acquired_by)
        if not complete:
            return self._answer(HolderState.UNKNOWN, self._incomplete(page, note, acquired_by))
        ignored = f"; {later} run(s) created after the lock cannot hold it" if later else ""
        return self._answer(
            HolderState.NOT_RUNNING,
            f"no run of {_target(self.settings)} created by {bound(acquired_by)} is unfinished "
            f"(checked {len(page.workflow_runs)} recent runs{ignored})",
        )

    def _running(self, unfinished: Sequence[_Run], note: str, acquired_by: datetime) -> HolderStatus:
        named = ", ".join(f"{_run_label(r)} created {when(r.created_at)}" for r in unfinished[:RUNS_NAMED])
        more = f" and {len(unfinished) - RUNS_NAMED} more" if len(unfinished) > RUNS_NAMED else ""
        return self._answer(
            HolderState.RUNNING,
            f"{named}{more} of {_target(self.settings)}: not finished, created by {bound(acquired_by)}{note}",
        )

    def _incomplete(self, page: _RunsPage, note: str, acquired_by: datetime) -> str:
        oldest = min(r.created_at for r in page.workflow_runs)
        return (
            f"the {len(page.workflow_runs)} most recent of {page.total_count} runs of {_target(self.settings)} "
            f"show none unfinished that was created by {bound(acquired_by)}, but they only reach back to "
            f"{when(oldest)} and an older run may still be going (a run can last {MAX_RUN_LIFETIME.days} days)"
            f"{note}"
        )

    def _by_host(
        self, host: str, identified: _Identified, unfinished: Sequence[_Run], acquired_by: datetime
    ) -> HolderStatus | None:
        """The answer for the run the lock's host identifies, when it identifies one without doubt."""
        if identified.live:
            run, job = identified.live[0]
            return self._answer(
                HolderState.RUNNING,
                f"{_run_label(run)} of {_target(self.settings)} is not finished: its job "
                f"{fit(one_line(job.name or str(job.id)), 80)!r} ran on runner {job.runner_name!r}, the lock's "
                f"host, when the lock was taken",
            )
        if not identified.finished or identified.unresolved or identified.lookalikes:
            return None
        run, job = identified.finished[0]
        others = f"; {len(unfinished)} other unfinished run(s) did not run on this host then" if unfinished else ""
        ended = f" at {when(run.updated_at)}" if run.updated_at else ""
        return self._answer(
            HolderState.NOT_RUNNING,
            f"the lock's host {host!r} is runner {job.runner_name!r}, which ran job "
            f"{fit(one_line(job.name or str(job.id)), 80)!r} of {_run_label(run)} of {_target(self.settings)} "
            f"around the lock's acquisition (at the latest {when(acquired_by)}); that run finished "
            f"({run.conclusion or 'no conclusion'}){ended}, so the run that took the lock is over{others}",
        )

    def _identify(self, host: str, before: Sequence[_Run], acquired_by: datetime) -> _Identified:
        """Match the lock's host against the runners of the jobs of the runs that could hold the lock: those not
        finished, and those finished around the acquisition bound or later. Unfinished runs are looked at first.

        ``acquired_by`` is only the latest moment the lock can have been taken, but a runner runs one job at a
        time: a job still holding the lock has kept its runner busy from before the acquisition until now, so no
        other job ran on that runner at the bound (the clock slack aside)."""
        candidates = [
            r for r in before if not r.finished or r.updated_at is None or r.updated_at >= acquired_by - CLOCK_SLACK
        ]
        candidates.sort(key=lambda r: (r.finished, abs(r.created_at - acquired_by)))
        wanted = host.casefold()
        found = _Identified()
        for run in candidates:
            jobs = self._jobs(run)
            if (jobs is None or not jobs.complete) and not run.finished:
                found.unresolved.append(run)
            for job in jobs.jobs if jobs else ():
                runner = (job.runner_name or "").casefold()
                if not runner or not job.active_around(acquired_by):
                    continue
                if runner == wanted:
                    (found.finished if run.finished else found.live).append((run, job))
                elif wanted in runner and not run.finished:
                    found.lookalikes.append(job.runner_name or "")
        return found

    # -- requests ----------------------------------------------------------------------------------------------

    def _runs(self) -> _RunsPage | NoAnswerError:
        settings = self.settings
        if settings.workflow:
            path = f"{self._repo_url}/actions/workflows/{quote(settings.workflow, safe='')}/runs"
        else:
            path = f"{self._repo_url}/actions/runs"
        url = f"{path}?per_page={RUNS_PER_PAGE}&exclude_pull_requests=true"
        key = (self.base, settings.repo, settings.workflow, settings.token)
        return remembered(
            self.session.runs,
            key,
            lambda: self._parse(self._ask(url, f"the runs of {_target(settings)}"), _RunsPage.model_validate),
        )

    def _jobs(self, run: _Run) -> _JobsPage | None:
        """The jobs of ``run`` (all attempts), or ``None`` when they cannot be had in this sweep."""
        key = (self.base, self.settings.repo, run.id)
        if key not in self.session.jobs:
            used = self.session.job_lookups.get(self.base, 0)
            if used >= self.session.max_job_lookups:
                return None
            self.session.job_lookups[self.base] = used + 1
        url = f"{self._repo_url}/actions/runs/{run.id}/jobs?filter=all&per_page={JOBS_PER_PAGE}"
        jobs = remembered(
            self.session.jobs,
            key,
            lambda: self._parse(self._ask(url, f"the jobs of run {run.id}"), _JobsPage.model_validate),
        )
        return None if isinstance(jobs, NoAnswerError) else jobs


def github_provider(secrets: Callable[[SecretRef], str], *, web: Web | None = None, **options: Any) -> ProviderBuilder:
    """The ``github`` builder for one sweep: its checks share one :class:`GitHubSession` (one query per target,
    one rate-limit state); each reads its token through ``secrets`` only when it first asks GitHub."""
    session = GitHubSession(web=web or Web())  # the sweep's (bounded in time), or one of its own
    return GitHubActions.provider(session, secrets, lambda settings: settings.token, **options)
