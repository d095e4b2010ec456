"""Holder checks that ask AWS's CI services: CodeBuild builds and CodePipeline executions (adapters: boto3).

Each check reads its target once per sweep, however many locks ask: CodeBuild costs one ``ListBuildsForProject``
(first page, up to 100 build ids, newest first) and one ``BatchGetBuilds`` per project; CodePipeline one
``ListPipelineExecutions`` (up to 100 executions, newest first) per pipeline. A failed read (throttled, access
denied, not found, timed out) is remembered for the sweep too and answers ``unknown`` with the reason.

What counts as the holder: a build or execution that is not finished and started no later than the lock was
taken. When that was is bounded by server-side evidence, never by the lock's ``Created`` (the holder's clock, which
may run hours slow): ``acquired_by`` is the latest moment the lock can have been taken (the stream's acquisition
time, a lockfile's LastModified or the reaper's first sighting of the lock; ``Created`` only where a rule sets
``trust_holder_clock``), plus :data:`CLOCK_SLACK`. One that started later cannot have taken the lock; it is named
in the evidence but does not count.

Only a status AWS documents as final counts as finished (:data:`BUILD_FINISHED`, :data:`PIPELINE_FINISHED`):
a missing status, or one added after this was written, counts as not finished, and the evidence says so.

Precision: the lock's ``Who`` is ``user@hostname`` of the process that took it. CodeBuild documents the build's
id in its environment (``CODEBUILD_BUILD_ID``) but not its container's hostname, and Terraform puts no
environment into the lock, so a lock cannot be tied to one build: any build of the project counts, and the
evidence says so.

``not_running`` needs a listing that covers every build or execution that could be the holder:

* CodeBuild: the listing has no next page, or the oldest build that could be missing from it started longer ago
  than a build can live (:data:`MAX_BUILD_LIFETIME`: the largest queue timeout plus the largest build timeout
  CodeBuild accepts), so it has finished.
* CodePipeline documents no bound on how long an execution may run (a manual approval alone may wait 60 days),
  so a listing with a next page never proves that an older execution has finished: ``unknown``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from tflock_reaper.adapters.holders.clock import CLOCK_SLACK, bound, when
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.liveness import HolderState, HolderStatus, ProviderBuilder
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import CodeBuildCheck, CodePipelineCheck

logger = logging.getLogger(__name__)

#: Times as the AWS checks' evidence has always written them (``+00:00``, as Python prints boto3's datetimes).
_when = partial(when, utc="+00:00")
_bound = partial(bound, utc="+00:00")

#: No CodeBuild build lives longer than the largest queued timeout (480 min) plus the largest build timeout
#: (2160 min, 36 h) that CodeBuild accepts: after this, a build has ended, if only by timing out.
MAX_BUILD_LIFETIME = timedelta(minutes=480 + 2160)

#: ``ListBuildsForProject`` pages hold at most 100 ids, which is also ``BatchGetBuilds``' limit, and
#: ``ListPipelineExecutions`` accepts ``maxResults`` up to 100.
PAGE_SIZE = 100

#: The statuses the APIs document as final (CodeBuild ``StatusType``, CodePipeline ``PipelineExecutionStatus``,
#: less the ones that are not: ``IN_PROGRESS``, ``InProgress`` and ``Stopping``, a stop that may let the running
#: actions finish). Anything else, a missing status included, counts as not finished: a status AWS adds later
#: (say a queued or pending one) must never make a live holder look gone.
BUILD_FINISHED = frozenset({"SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED"})
PIPELINE_FINISHED = frozenset({"Succeeded", "Failed", "Stopped", "Superseded", "Cancelled"})
#: The documented statuses that are not final; any other unfinished one is called unrecognised in the evidence.
BUILD_GOING = frozenset({"IN_PROGRESS"})
PIPELINE_GOING = frozenset({"InProgress", "Stopping"})

#: The IAM actions the reads below need, by check kind: template.yaml grants the sweeper exactly these, on the
#: projects and pipelines its parameters list (the tests hold the template and the calls made to this list).
IAM_ACTIONS: Mapping[str, tuple[str, ...]] = {
    "codebuild": ("codebuild:ListBuildsForProject", "codebuild:BatchGetBuilds"),
    "codepipeline": ("codepipeline:ListPipelineExecutions",),
}

#: Makes the service's boto3 client on first use (``clients.client("codebuild")``): never at import or wiring.
ClientFactory = Callable[[], Any]

#: How many runs an evidence line names before it says "...".
_NAMED = 3

_ANY_BUILD = "any build of the project counts (the lock's Who cannot name a CodeBuild build)"


@dataclass(frozen=True)
class Run:
    """A CodeBuild build or a CodePipeline execution, as far as the checks need it."""

    id: str
    status: str | None
    """As the API gave it; ``None`` when the answer had none."""
    started: datetime | None


@dataclass(frozen=True)
class Listing:
    """The newest runs of one target, read once per sweep."""

    runs: tuple[Run, ...]
    more: bool
    """The service has older runs than these (a next page), which were not read."""
    missing: tuple[str, ...] = ()
    """Listed, but not returned when asked for their details (CodeBuild's ``buildsNotFound``)."""


@dataclass(frozen=True)
class ReadFailure:
    reason: str


def _error_text(err: Exception) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = error.get("Code") or "Error", error.get("Message") or ""
        return f"{code}: {message}" if message else str(code)
    return f"{type(err).__name__}: {err}"


class SweepReads:
    """One client (made on first use) and one read per target per sweep, shared by every check of a kind."""

    def __init__(self, service: str, client_factory: ClientFactory, read: Callable[[Any, str], Listing]) -> None:
        self._service = service
        self._factory = client_factory
        self._read = read
        self._results: dict[str, Listing | ReadFailure] = {}

    def get(self, target: str) -> Listing | ReadFailure:
        if target not in self._results:
            try:
                self._results[target] = self._read(self._factory(), target)
            except Exception as err:  # noqa: BLE001 - any failed read (API error, odd answer) means "we do not know"
                # Remembered for the sweep: a throttled API is not asked again for every lock.
                self._results[target] = ReadFailure(_error_text(err))
                logger.warning(
                    "holder check read failed",
                    extra={"service": self._service, "target": target, "error": _error_text(err)},
                )
        return self._results[target]


def _status(value: object) -> str | None:
    return None if value is None else str(value)


def read_builds(client: Any, project: str) -> Listing:
    """The newest page of ``project``'s builds with their status and start time: two calls."""
    # No sortOrder: the default is descending by build number (newest first), and the API reference warns that
    # setting a sort order fails for projects with more than 100 builds.
    listed = client.list_builds_for_project(projectName=project)
    ids = list(listed.get("ids") or [])
    more = bool(listed.get("nextToken")) or len(ids) > PAGE_SIZE
    ids = ids[:PAGE_SIZE]
    if not ids:
        return Listing((), more)
    found = client.batch_get_builds(ids=ids)
    runs = tuple(
        Run(str(build.get("id")), _status(build.get("buildStatus")), build.get("startTime"))
        for build in found.get("builds") or []
    )
    returned = {run.id for run in runs}
    missing = tuple(build_id for build_id in ids if build_id not in returned)
    return Listing(runs, more, missing)


def read_executions(client: Any, pipeline: str) -> Listing:
    """The newest page of ``pipeline``'s executions: one call."""
    listed = client.list_pipeline_executions(pipelineName=pipeline, maxResults=PAGE_SIZE)
    runs = tuple(
        Run(str(summary.get("pipelineExecutionId")), _status(summary.get("status")), summary.get("startTime"))
        for summary in listed.get("pipelineExecutionSummaries") or []
    )
    return Listing(runs, bool(listed.get("nextToken")))


@dataclass(frozen=True)
class _Sorted:
    holders: list[Run]
    """Not finished, and started no later than the lock was taken (the bound plus the slack)."""
    later: list[Run]
    """Not finished, but started after the lock was taken: not its holder."""
    undated: list[Run]
    """Not finished, with no start time: cannot be judged."""


def _sort(runs: Iterable[Run], finished: frozenset[str], deadline: datetime) -> _Sorted:
    going = [run for run in runs if run.status not in finished]
    return _Sorted(
        holders=[run for run in going if run.started is not None and run.started <= deadline],
        later=[run for run in going if run.started is not None and run.started > deadline],
        undated=[run for run in going if run.started is None],
    )


def _later_note(later: list[Run], noun: str) -> str:
    if not later:
        return ""
    ids = ", ".join(run.id for run in later[:_NAMED]) + (", ..." if len(later) > _NAMED else "")
    return f"; {len(later)} {noun}(s) started after the lock was taken are not finished, not its holder ({ids})"


class _RunsCheck:
    """What the CodeBuild and CodePipeline checks share: one read of the target per sweep, ``unknown`` when it
    failed, and ``running`` naming the newest holder when there is one. :meth:`_judge` answers otherwise."""

    name: ClassVar[str]
    kind: ClassVar[str]
    """The target as the evidence names it: ``project``, ``pipeline``."""
    noun: ClassVar[str]
    """A run as the evidence names it: ``build``, ``execution``."""
    finished: ClassVar[frozenset[str]]
    going: ClassVar[frozenset[str]]
    counts: ClassVar[str] = ""
    """Said after a ``running`` answer: which runs count."""

    def __init__(self, target: str, reads: SweepReads) -> None:
        self._target = target
        self._reads = reads

    def _answer(self, state: HolderState, evidence: str) -> HolderStatus:
        return HolderStatus(state, evidence, self.name)

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        listing = self._reads.get(self._target)
        if isinstance(listing, ReadFailure):
            return self._answer(
                HolderState.UNKNOWN, f"cannot read the {self.noun}s of {self.kind} {self._target}: {listing.reason}"
            )
        deadline = acquired_by + CLOCK_SLACK
        runs = _sort(listing.runs, self.finished, deadline)
        if not runs.holders:
            return self._judge(listing, runs, now, acquired_by)
        run = max(runs.holders, key=lambda r: r.started or deadline)
        others = f" (and {len(runs.holders) - 1} more)" if len(runs.holders) > 1 else ""
        return self._answer(
            HolderState.RUNNING,
            f"{self.noun} {run.id} of {self.kind} {self._target}{others} {self._standing(run)} since "
            f"{_when(run.started or deadline)}, started by {_bound(acquired_by)}{self.counts}",
        )

    def _standing(self, run: Run) -> str:
        """How ``run`` (not finished) stands, saying when its status is not one the API documents."""
        if run.status in self.going:
            return f"is {run.status}"
        if run.status is None:
            return "has no status (counted as not finished)"
        return f"has the unrecognised status {run.status!r} (counted as not finished)"

    def _judge(self, listing: Listing, runs: _Sorted, now: datetime, acquired_by: datetime) -> HolderStatus:
        """The answer when no run holds the lock."""
        raise NotImplementedError


class CodeBuildProject(_RunsCheck):
    """Running while a build of the project that started no later than the lock was taken is not finished."""

    name = "codebuild"
    kind = "project"
    noun = "build"
    finished = BUILD_FINISHED
    going = BUILD_GOING
    counts = f"; {_ANY_BUILD}"

    def __init__(
        self, settings: CodeBuildCheck, client_factory: ClientFactory, *, reads: SweepReads | None = None
    ) -> None:
        super().__init__(settings.project, reads or SweepReads("codebuild", client_factory, read_builds))

    def _standing(self, run: Run) -> str:
        return "is in progress" if run.status in BUILD_GOING else super()._standing(run)

    def _judge(self, listing: Listing, runs: _Sorted, now: datetime, acquired_by: datetime) -> HolderStatus:
        project = self._target
        if runs.undated or listing.missing:
            ids = ", ".join([run.id for run in runs.undated] + list(listing.missing))
            return self._answer(
                HolderState.UNKNOWN, f"cannot tell when builds of project {project} started or how they stand: {ids}"
            )
        if listing.more:
            starts = [run.started for run in listing.runs if run.started is not None]
            # Builds not listed started before every listed one; only those that started by the deadline matter.
            horizon = min([*starts, acquired_by + CLOCK_SLACK])
            if now - horizon < MAX_BUILD_LIFETIME:
                return self._answer(
                    HolderState.UNKNOWN,
                    f"project {project} has more than {PAGE_SIZE} builds and the oldest listed started "
                    f"{_when(horizon)}: an older build may still be in progress (a build can live "
                    f"{format_duration(MAX_BUILD_LIFETIME)})",
                )
        read = (
            f"read the {len(listing.runs)} newest builds, older ones have ended by their timeouts"
            if listing.more
            else f"read all {len(listing.runs)} build(s)"
        )
        return self._answer(
            HolderState.NOT_RUNNING,
            f"no build of project {project} started by {_bound(acquired_by)} is unfinished; {read}; {_ANY_BUILD}"
            + _later_note(runs.later, "build"),
        )


class CodePipelineExecutions(_RunsCheck):
    """Running while an execution of the pipeline that started no later than the lock was taken is not finished
    (in progress, stopping, or in a status not documented as final)."""

    name = "codepipeline"
    kind = "pipeline"
    noun = "execution"
    finished = PIPELINE_FINISHED
    going = PIPELINE_GOING

    def __init__(
        self, settings: CodePipelineCheck, client_factory: ClientFactory, *, reads: SweepReads | None = None
    ) -> None:
        super().__init__(settings.pipeline, reads or SweepReads("codepipeline", client_factory, read_executions))

    def _judge(self, listing: Listing, runs: _Sorted, now: datetime, acquired_by: datetime) -> HolderStatus:
        pipeline = self._target
        if runs.undated:
            ids = ", ".join(run.id for run in runs.undated)
            return self._answer(
                HolderState.UNKNOWN, f"executions of pipeline {pipeline} not finished with no start time: {ids}"
            )
        if listing.more:
            return self._answer(
                HolderState.UNKNOWN,
                f"pipeline {pipeline} has more than {PAGE_SIZE} executions and none of the newest {PAGE_SIZE} is "
                "the holder: an older execution may still be in progress (CodePipeline sets no limit on how long "
                "one runs)",
            )
        return self._answer(
            HolderState.NOT_RUNNING,
            f"no execution of pipeline {pipeline} started by {_bound(acquired_by)} is unfinished; read all "
            f"{len(listing.runs)} execution(s) in its history" + _later_note(runs.later, "execution"),
        )


def codebuild_provider(client_factory: ClientFactory) -> ProviderBuilder:
    """Builds CodeBuild checks that share one client and one read per project for the sweep."""
    reads = SweepReads("codebuild", client_factory, read_builds)

    def build(settings: Any) -> CodeBuildProject:
        return CodeBuildProject(settings, client_factory, reads=reads)

    return build


def codepipeline_provider(client_factory: ClientFactory) -> ProviderBuilder:
    """Builds CodePipeline checks that share one client and one read per pipeline for the sweep."""
    reads = SweepReads("codepipeline", client_factory, read_executions)

    def build(settings: Any) -> CodePipelineExecutions:
        return CodePipelineExecutions(settings, client_factory, reads=reads)

    return build
