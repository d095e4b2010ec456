"""Per lock table and sweep: read incrementally or in full (:func:`tflock_reaper.domain.reconcile.plan_read`), and
remember the full reads so that the next plans know when the last one was."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from tflock_reaper.domain.errors import AwsAccessError
from tflock_reaper.domain.lock import table_scope
from tflock_reaper.domain.ports import LockfileSource, LockSource
from tflock_reaper.domain.reconcile import (
    RECONCILE_EVERY,
    AuditHealth,
    AuditProbe,
    ReadPlan,
    ReconcileStore,
    SweepKind,
    full,
    plan_read,
)

logger = logging.getLogger(__name__)

#: Why a sweep without a reconciler (the CLI, or a deployment without the audit) reads every lock.
NO_AUDIT = "no audit to trust: every item is read"


@dataclass
class Reconciler:
    """``probe`` None: no audit is deployed, every read is full. ``force_full``: a reason to read every table in
    full this sweep (an operator's request)."""

    store: ReconcileStore
    probe: AuditProbe | None
    deployment: str
    reconcile_every: timedelta = RECONCILE_EVERY
    force_full: str | None = None
    _health: dict[str, AuditHealth | None] = field(default_factory=dict, init=False, repr=False)

    def plan(self, table: LockSource, now: datetime) -> ReadPlan:
        """A lock table's read. Never raises: what cannot be read makes the read full."""
        try:
            key = table_scope(table.arn, table.name)
        except AwsAccessError as err:
            return full(f"the table cannot be described: {err}")
        return self._plan(key, now, partial(self._table_health, table))

    def plan_lockfiles(self, lockfiles: LockfileSource, now: datetime) -> ReadPlan:
        """The buckets' lockfiles' read (their audit: S3 events through EventBridge). Never raises."""
        return self._plan(lockfiles_key(lockfiles), now, partial(self._lockfile_health, lockfiles))

    def _plan(self, key: str, now: datetime, health_of: Callable[[AuditProbe], AuditHealth]) -> ReadPlan:
        if self.force_full:
            return full(self.force_full)
        try:
            record = self.store.reconcile_record(key)
        except AwsAccessError as err:
            return full(f"the reconciliation record cannot be read: {err}")
        health = health_of(self.probe) if self.probe is not None else None
        self._health[key] = health
        return plan_read(
            health=health, record=record, deployment=self.deployment, now=now, reconcile_every=self.reconcile_every
        )

    @staticmethod
    def _table_health(table: LockSource, probe: AuditProbe) -> AuditHealth:
        try:
            stream = table.latest_stream_arn()
        except AwsAccessError as err:
            return AuditHealth.unknown(str(err))
        return probe.health(stream)

    @staticmethod
    def _lockfile_health(lockfiles: LockfileSource, probe: AuditProbe) -> AuditHealth:
        return probe.lockfile_health([scope.removeprefix("s3://") for scope in lockfiles.scopes])

    def finished(self, key: str, plan: ReadPlan, now: datetime, *, disagreement: str | None) -> None:
        """After the sweep recorded its observations: a full read is remembered as the source's last
        reconciliation; an incremental read that found the open set out of step asks for a full one next. Best
        effort: a failure only makes a later sweep full. ``key``: the table's scope, or :func:`lockfiles_key`."""
        try:
            if plan.kind is SweepKind.FULL:
                health = self._health.get(key)
                failed = health.failed_records if health is not None and health.failed_records is not None else 0
                self.store.record_full(key, now, deployment=self.deployment, failed_records=failed)
            elif disagreement:
                self.store.request_full(key, disagreement, now)
        except AwsAccessError as err:
            logger.error("cannot record the reconciliation", extra={"source": key, "error": str(err)})


def lockfiles_key(lockfiles: LockfileSource) -> str:
    """The reconciliation record of a set of buckets' lockfiles (read, and reconciled, together)."""
    return "lockfiles " + " ".join(lockfiles.scopes)
