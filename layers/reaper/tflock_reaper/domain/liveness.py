"""Holder checks: is the run that took a lock still going?

A check answers ``running``, ``not_running`` or ``unknown`` with evidence a human can read. Only
``not_running`` ever allows a reap, and any doubt is ``unknown``. A policy either declares the answer
(``assume: gone | unknown``) or configures checks that ask the CI system; several checks combine as
:class:`AllChecks`: any ``running`` wins, ``not_running`` needs every check to say so.

This module is pure. The checks that speak HTTP or AWS live in :mod:`tflock_reaper.adapters.holders` and are plugged in
through ``providers``: a mapping from a check's kind (``codebuild``, ``github``, ...) to a builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import HolderSpec


class HolderState(StrEnum):
    RUNNING = "running"
    NOT_RUNNING = "not_running"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class HolderStatus:
    state: HolderState
    evidence: str
    check: str
    details: tuple[HolderStatus, ...] = ()
    """For combined checks: each check's own answer."""


class HolderCheck(Protocol):
    """Answers whether the holder of ``lock`` is still running. Should not raise: doubt is ``unknown``."""

    @property
    def name(self) -> str: ...

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus: ...


#: Builds the check of one kind from its policy settings (e.g. ``GitHubCheck``).
ProviderBuilder = Callable[[Any], HolderCheck]


#: The check's name when the policy declares the answer: the kind of check, like ``github``, not the answer
#: (``assume: unknown`` as a name showed as ``assume: unknown: unknown: ...`` once the state was added).
ASSUME = "assume"


@dataclass(frozen=True)
class AssumeGone:
    """The policy vouches that holders of matching locks are gone once the lock is past ``reap_after``."""

    name: str = ASSUME

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        return HolderStatus(HolderState.NOT_RUNNING, "the policy assumes the holder is gone", self.name)


@dataclass(frozen=True)
class AssumeUnknown:
    """No way to tell: the safe default. Never allows a reap."""

    name: str = ASSUME

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        return HolderStatus(
            HolderState.UNKNOWN,
            "no holder check is configured for this lock (holder: {assume: unknown}), so it is never reaped",
            self.name,
        )


@dataclass(frozen=True)
class Unavailable:
    """A configured check this deployment cannot run: always ``unknown``, saying why."""

    name: str
    why: str

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        return HolderStatus(HolderState.UNKNOWN, self.why, self.name)


def safe_status(check: HolderCheck, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
    """A check that raises has not answered: ``unknown``, with the error as evidence."""
    try:
        return check.status(lock, now, acquired_by)
    except Exception as err:  # noqa: BLE001 - any failure of a check means "we do not know"
        return HolderStatus(HolderState.UNKNOWN, f"the check failed: {type(err).__name__}: {err}", check.name)


@dataclass(frozen=True)
class AllChecks:
    """Several checks: any ``running`` wins; ``not_running`` only when every check says so; else ``unknown``."""

    checks: tuple[HolderCheck, ...]
    name: str = "checks"

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        answers = tuple(safe_status(check, lock, now, acquired_by) for check in self.checks)
        if len(answers) == 1:
            return answers[0]
        for state in (HolderState.RUNNING, HolderState.UNKNOWN):
            matching = [a for a in answers if a.state is state]
            if matching:
                evidence = "; ".join(f"{a.check}: {a.evidence}" for a in matching)
                return HolderStatus(state, evidence, self.name, answers)
        evidence = "; ".join(f"{a.check}: {a.evidence}" for a in answers)
        return HolderStatus(HolderState.NOT_RUNNING, f"every check says not running ({evidence})", self.name, answers)


def build_holder_check(spec: HolderSpec, providers: Mapping[str, ProviderBuilder] | None = None) -> HolderCheck:
    """The check a policy's ``holder`` describes. Checks without a provider here answer ``unknown``."""
    if not spec.checks:
        return AssumeGone() if spec.assume == "gone" else AssumeUnknown()
    providers = providers or {}
    built: list[HolderCheck] = []
    for kind, settings in spec.checks:
        builder = providers.get(kind)
        built.append(
            builder(settings) if builder else Unavailable(kind, f"the {kind} check is not available in this run")
        )
    return AllChecks(tuple(built))


def describe_answers(status: HolderStatus) -> Sequence[str]:
    """One line per check, for ``explain``: ``github: not_running: no run of org/infra ...``: the check's kind,
    its answer, its evidence, each said once."""
    answers = status.details or (status,)
    return [f"{a.check}: {a.state.value}: {a.evidence}" for a in answers]
