"""What a sweep found and did: one :class:`LockReport` per lock, one :class:`SweepReport` per sweep (what the CLI's
``--json`` prints and the Lambda's metrics count)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from tflock_reaper.domain.decision import (
    Action,
    Outcome,
    Verdict,
)
from tflock_reaper.domain.lock import (
    DynamoItem,
    LockRecord,
    SkippedItem,
)
from tflock_reaper.domain.memory import LockState
from tflock_reaper.domain.notifier import NotificationRecord
from tflock_reaper.domain.reconcile import SweepKind

Mode = Literal["dry-run", "enforce"]


@dataclass
class LockReport:
    lock: LockRecord
    verdict: Verdict
    outcome: Outcome
    state: LockState
    notes: list[str] = field(default_factory=list)
    deleted_item: DynamoItem | None = None
    notifications: list[NotificationRecord] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [*self.verdict.reasons, *self.notes]

    def to_dict(self) -> dict[str, Any]:
        info = self.lock.info
        holder = self.verdict.holder
        return {
            "path": self.lock.lock_path,
            "backend": self.lock.backend,
            "table": self.lock.table,
            "scope": self.lock.scope,
            "id": info.id,
            "who": info.who,
            "operation": info.operation,
            "version": info.version,
            "created": info.created.isoformat(),
            "workspace": self.lock.workspace,
            "age_seconds": int(self.verdict.age.total_seconds()),
            "age_basis": self.verdict.age_basis,
            "reap_age_seconds": int(self.verdict.reap_age.total_seconds()),
            "reap_age_basis": self.verdict.reap_age_basis,
            "first_seen": self.state.first_seen.isoformat(),
            "rule": self.verdict.rule.name,
            "action": self.verdict.action.value,
            "outcome": self.outcome.value,
            "holder": None if holder is None else {"state": holder.state.value, "evidence": holder.evidence},
            "reasons": self.reasons,
            "notifications": [n.to_dict() for n in self.notifications],
        }


@dataclass(frozen=True)
class SourceRead:
    """How one lock table (or the buckets' lockfiles) was read in a sweep, and why."""

    source: str
    kind: SweepKind
    reason: str
    held: int = 0
    """Entries of the open set, read first in both kinds (an incremental read asks for their locks)."""
    items: int = 0
    """Items read."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind.value,
            "reason": self.reason,
            "held": self.held,
            "items": self.items,
        }


@dataclass
class SweepReport:
    table: str | None
    mode: Mode
    started_at: datetime
    buckets: str | None = None
    locks: list[LockReport] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)
    digests: int = 0
    breaker: str | None = None
    notes: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    """Paths of the locks read but neither judged nor acted on: the sweep ran out of time (next sweep's work)."""
    errors: list[str] = field(default_factory=list)
    """Targets (accounts, tables) that could not be swept at all: nothing of theirs was judged or deleted."""
    unreadable_notifications: dict[str, list[NotificationRecord]] = field(default_factory=dict)
    """What was sent (or would be) about each unreadable lock, by its ``lock_id``."""
    reads: list[SourceRead] = field(default_factory=list)
    """How each source was read: incremental (the open set's locks) or full (every item), and why."""

    @property
    def sweep_kind(self) -> SweepKind:
        """Incremental only when every source was read incrementally."""
        if self.reads and all(read.kind is SweepKind.INCREMENTAL for read in self.reads):
            return SweepKind.INCREMENTAL
        return SweepKind.FULL

    @property
    def sweep_reasons(self) -> list[str]:
        return [f"{read.source}: {read.kind.value}, {read.reason}" for read in self.reads]

    @property
    def unreadable(self) -> list[SkippedItem]:
        """Locks by their key and shape that cannot be judged: alerted about, never reaped."""
        return [s for s in self.skipped if s.unreadable]

    def summary(self) -> dict[str, int]:
        outcomes = Counter(r.outcome.value for r in self.locks)
        return {
            "locks": len(self.locks),
            "digests": self.digests,
            "skipped": len(self.skipped),
            "unreadable": len(self.unreadable),
            "deferred": len(self.deferred),
            "errors": len(self.errors),
            "stale": sum(1 for r in self.locks if r.verdict.action is not Action.KEEP),
            **{o.value.replace("-", "_"): outcomes.get(o.value, 0) for o in Outcome},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "buckets": self.buckets,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "breaker": self.breaker,
            "sweep_kind": self.sweep_kind.value,
            "sweep_reasons": self.sweep_reasons,
            "reads": [read.to_dict() for read in self.reads],
            "notes": self.notes,
            "locks": [r.to_dict() for r in self.locks],
            "skipped": [
                {
                    "lock_id": s.lock_id,
                    "reason": s.reason,
                    "unreadable": s.unreadable,
                    "table": s.table,
                    "notifications": [n.to_dict() for n in self.unreadable_notifications.get(s.lock_id, [])],
                }
                for s in self.skipped
            ],
            "deferred": self.deferred,
            "errors": self.errors,
            "summary": self.summary(),
        }


def combine_reports(reports: list[SweepReport], errors: list[str]) -> SweepReport:
    """One report for the sweeps of several targets (accounts) made by one invocation."""
    first = reports[0]
    combined = SweepReport(
        table=", ".join(r.table for r in reports if r.table) or None,
        buckets=", ".join(r.buckets for r in reports if r.buckets) or None,
        mode=first.mode,
        started_at=first.started_at,
        breaker="; ".join(r.breaker for r in reports if r.breaker) or None,
        errors=[*errors, *(e for r in reports for e in r.errors)],
    )
    for report in reports:
        combined.locks.extend(report.locks)
        combined.skipped.extend(report.skipped)
        combined.digests += report.digests
        combined.notes.extend(report.notes)
        combined.deferred.extend(report.deferred)
        combined.reads.extend(report.reads)
    return combined
