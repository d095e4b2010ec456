"""GitLab CI: is a pipeline of the project that could hold the lock still going?

**One request per target.** ``GET {url}/api/v4/projects/{id or URL-encoded path}/pipelines?per_page=100`` lists
the newest 100 pipelines whatever their status (the ``status`` filter takes one value: six requests otherwise),
and they are filtered here. A pipeline counts as finished only with a status known to be final (``success``,
``failed``, ``canceled``, ``skipped``, ``manual``); ``created``, ``pending``, ``preparing``, ``running``,
``waiting_for_resource``, ``scheduled`` and any other (``canceling``, a status added later) count as running.

**When the answer is complete.** ``not_running`` needs the page to hold every pipeline: GitLab says there is no
next page (an empty ``x-next-page``; without the header, fewer pipelines than asked for). GitLab puts no limit
on how long a pipeline may run, so a page that does not reach the end gives ``unknown`` unless it shows an
unfinished pipeline. Pipelines created more than :data:`CLOCK_SLACK` after the lock was taken cannot hold it; when
that was is bounded by server-side evidence (``acquired_by``: the stream's acquisition time, a lockfile's
LastModified or the reaper's first sighting; ``Created`` only where a rule sets ``trust_holder_clock``), never by
the holder's clock, which may run hours slow.

**Precision.** The Docker and Kubernetes executors name the build host
``runner-<runner token prefix>-project-<project id>-concurrent-<slot>``. A host of *another* project means the
lock was taken by that project's job, which this check cannot see: ``unknown``. A host of this project is said
in the evidence. The jobs API cannot narrow it to one pipeline: it reports neither the runner's token prefix
nor the concurrency slot, which is all the host name carries.

**Safety.** Errors, timeouts, 401/403/404, rate limits (429, ``RateLimit-Remaining: 0``), malformed answers and a
missing token are ``unknown``, never ``not_running``. The token travels only in the ``PRIVATE-TOKEN`` header.
Once GitLab rate-limits or does not answer, that GitLab instance is not asked again in the sweep.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any
from urllib.parse import quote

from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

from tflock_reaper.adapters.holders.base import CiApi, CiApiCheck, NoAnswerError, WebSession, host_of, remembered
from tflock_reaper.adapters.holders.clock import CLOCK_SLACK, bound, when
from tflock_reaper.adapters.holders.web import Web
from tflock_reaper.domain.liveness import HolderState, HolderStatus, ProviderBuilder
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import GitLabCheck, SecretRef
from tflock_reaper.domain.text import fit, one_line

PIPELINES_PER_PAGE = 100
FINISHED = frozenset({"success", "failed", "canceled", "skipped", "manual"})
PIPELINES_NAMED = 3
RUNNER_HOST = re.compile(r"^runner-(?P<token>[A-Za-z0-9_-]+?)-project-(?P<project>\d+)-concurrent-(?P<slot>\d+)(?:-|$)")


class _Pipeline(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    iid: int | None = None
    project_id: int | None = None
    status: str
    ref: str | None = None
    created_at: AwareDatetime

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


_PIPELINES: TypeAdapter[list[_Pipeline]] = TypeAdapter(list[_Pipeline])


@dataclass(frozen=True)
class _Page:
    pipelines: list[_Pipeline]
    complete: bool


GITLAB = CiApi(
    name="GitLab",
    speaker="GitLab",
    base_url=attrgetter("url"),
    auth_header="PRIVATE-TOKEN",
    headers={"Accept": "application/json"},
    scope="read_api",
    not_found="wrong project or URL, or the token cannot see the project",
    remaining="ratelimit-remaining",
)


@dataclass
class GitLabSession(WebSession):
    """What one sweep learns from GitLab, shared by all of its GitLab checks: the pipelines of each project and
    the GitLab instances not to ask again (rate limited or unreachable) in this sweep."""

    pages: dict[tuple[str, str, SecretRef], _Page | NoAnswerError] = field(default_factory=dict)


def _label(pipeline: _Pipeline) -> str:
    number = f"#{pipeline.iid} " if pipeline.iid is not None else ""
    ref = f", ref {fit(one_line(pipeline.ref), 80)!r}" if pipeline.ref else ""
    return f"pipeline {number}(id {pipeline.id}, {pipeline.status}{ref})"


def runner_project(who: str) -> tuple[str, int] | None:
    """``(host, project id)`` when ``Who``'s host is a GitLab runner build host, else ``None``."""
    host = host_of(who)
    match = RUNNER_HOST.match(host)
    return (host, int(match["project"])) if match else None


class GitLabPipelines(CiApiCheck[GitLabCheck, GitLabSession]):
    """``gitlab`` holder check: is a pipeline of ``project`` that could hold the lock still going?

    API calls per sweep, shared by every GitLab check of the sweep (one :class:`GitLabSession`):

    * ``GET {url}/api/v4/projects/{id or URL-encoded path}/pipelines?per_page=100&order_by=id&sort=desc``: once
      per (GitLab URL, project, token), whatever the number of locks;
    * nothing more once that GitLab instance rate-limited or did not answer in this sweep.

    Header: ``PRIVATE-TOKEN: <token>``. Each request: ``timeout`` seconds to connect and per read,
    ``max_attempts`` attempts (connection errors, timeouts and 5xx are retried; 429 is not).
    """

    name = "gitlab"
    api = GITLAB
    session_type = GitLabSession

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        key = (self.base, self.settings.project, self.settings.token)
        page = remembered(self.session.pages, key, self._read_page)
        if isinstance(page, NoAnswerError):
            return self._answer(HolderState.UNKNOWN, page.reason)
        note = ""
        runner = runner_project(lock.info.who)
        if runner is not None:
            mismatch = self._other_project(runner, page)
            if mismatch is not None:
                return self._answer(HolderState.UNKNOWN, mismatch)
            note = (
                f"; the lock's host {runner[0]!r} is a GitLab runner build host of this project ({runner[1]}), "
                "which the API cannot tie to one pipeline"
            )
        before = [p for p in page.pipelines if p.created_at <= acquired_by + CLOCK_SLACK]
        unfinished = [p for p in before if not p.finished]
        project = self.settings.project
        by = bound(acquired_by)
        if unfinished:
            named = ", ".join(f"{_label(p)} created {when(p.created_at)}" for p in unfinished[:PIPELINES_NAMED])
            more = f" and {len(unfinished) - PIPELINES_NAMED} more" if len(unfinished) > PIPELINES_NAMED else ""
            return self._answer(
                HolderState.RUNNING,
                f"{named}{more} of {project}: not finished, created by {by}{note}",
            )
        if not page.complete:
            return self._answer(
                HolderState.UNKNOWN,
                f"the {len(page.pipelines)} most recent pipelines of {project} show none unfinished that was created "
                f"by {by}, but GitLab has more and an older pipeline may still be going{note}",
            )
        later = len(page.pipelines) - len(before)
        ignored = f"; {later} pipeline(s) created after the lock cannot hold it" if later else ""
        return self._answer(
            HolderState.NOT_RUNNING,
            f"no pipeline of {project} created by {by} is unfinished "
            f"(checked {len(page.pipelines)} recent pipelines{ignored}){note}",
        )

    def _other_project(self, runner: tuple[str, int], page: _Page) -> str | None:
        """Why this check cannot judge a lock taken on another project's runner host (``None`` if it can)."""
        host, project_id = runner
        configured = self.settings.project
        own = {p.project_id for p in page.pipelines if p.project_id is not None}
        if configured.isdigit():
            own = {int(configured)}
        if project_id in own:
            return None
        if not own:
            return (
                f"the lock's host {host!r} is a GitLab runner build host of project {project_id}, and whether that "
                f"is {configured} cannot be told (GitLab listed no pipeline of it)"
            )
        return (
            f"the lock's host {host!r} is a GitLab runner build host of project {project_id}, not of {configured} "
            f"(project {min(own)}): the lock was taken by another project's job, which this check cannot see"
        )

    def _read_page(self) -> _Page:
        project = quote(self.settings.project, safe="")
        url = f"{self.base}/api/v4/projects/{project}/pipelines?per_page={PIPELINES_PER_PAGE}&order_by=id&sort=desc"
        answer = self._ask(url, f"the pipelines of {self.settings.project}")
        pipelines = self._parse(answer, _PIPELINES.validate_python)
        next_page = answer.header("x-next-page")
        complete = next_page == "" if next_page is not None else len(pipelines) < PIPELINES_PER_PAGE
        return _Page(pipelines, complete)


def gitlab_provider(secrets: Callable[[SecretRef], str], *, web: Web | None = None, **options: Any) -> ProviderBuilder:
    """The ``gitlab`` builder for one sweep: its checks share one :class:`GitLabSession`; each reads its token
    through ``secrets`` only when it first asks GitLab."""
    session = GitLabSession(web=web or Web())  # the sweep's (bounded in time), or one of its own
    return GitLabPipelines.provider(session, secrets, lambda settings: settings.token, **options)
