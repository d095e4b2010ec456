"""Which kind of read a sweep makes of a lock table: incremental (only the locks the audit says are held) or full
(a consistent Scan of every item, the reconciliation), and why.

An incremental sweep trusts the audit for one thing only: *which* locks to read. Every verdict and every conditional
delete still uses the item read from the lock table in that sweep. What it can miss is a lock the stream never
reported (a lost or late record): that lock is found by the next full sweep, so a full sweep runs at least every
``reconcile_every``, at once after a deployment, and whenever the audit's health is in doubt. Doubt is the default:
a table is read incrementally only when every check below says the audit is sound.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from tflock_reaper.domain.text import human_age

#: The stream function may be this far behind (its iterator age) before its audit is in doubt. Lambda reads a
#: stream shard about four times a second and the mapping batches for at most a second: a healthy consumer is
#: seconds behind, never minutes.
MAX_AUDIT_LAG = timedelta(minutes=2)
#: Default of ``ReconcileEvery``: the longest a lock the stream never reported goes unseen.
RECONCILE_EVERY = timedelta(hours=1)


def _words(delta: timedelta) -> str:
    return human_age(int(delta.total_seconds()))


class SweepKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


@dataclass(frozen=True)
class ReadPlan:
    kind: SweepKind
    reason: str


def full(reason: str) -> ReadPlan:
    return ReadPlan(SweepKind.FULL, reason)


@dataclass(frozen=True)
class AuditHealth:
    """What the reaper can see of one lock table's audit (its stream consumer), at the start of a sweep."""

    consumer: bool
    """An enabled event source mapping reads this table's current stream into the stream function."""
    failed_records: int | None
    """Messages in the stream function's failure queue (records it gave up on); None: not known."""
    iterator_age: timedelta | None
    """The consumer's largest iterator age of the last minutes; None: no data (no records flowed)."""
    problem: str | None = None
    """Why the health could not be read (then nothing above is trusted)."""

    @classmethod
    def unknown(cls, problem: str) -> AuditHealth:
        """The health could not be read: in doubt, so the read is full."""
        return cls(consumer=False, failed_records=None, iterator_age=None, problem=problem)


@dataclass(frozen=True)
class ReconcileRecord:
    """What the state table remembers of a lock table's last full sweep."""

    last_full_at: datetime | None = None
    deployment: str | None = None
    """The deployment (code and configuration) that made it."""
    failed_records: int = 0
    """The failure queue's depth then: records lost before it were made good by that full sweep."""
    requested: str | None = None
    """Why the next sweep must be full, asked since the last one: a sweep read a lock the stream had not reported,
    or the stream function saw an unreadable lock written (which it cannot record as an acquisition)."""


def plan_read(
    *,
    health: AuditHealth | None,
    record: ReconcileRecord,
    deployment: str,
    now: datetime,
    reconcile_every: timedelta = RECONCILE_EVERY,
    max_lag: timedelta = MAX_AUDIT_LAG,
) -> ReadPlan:
    """Full unless every check passes; the first failing check is the reason. ``health`` None: no audit is deployed
    for the table (or none is configured for this run)."""
    if health is None:
        return full("no audit: nothing reports this table's acquisitions, so every item is read")
    if record.last_full_at is None:
        return full("first sweep of this table with its audit: a full read establishes the open set")
    if record.deployment != deployment:
        return full("first sweep since a deployment (code or configuration changed)")
    if record.requested:
        return full(f"a full read was requested: {record.requested}")
    doubt = _audit_doubt(health, record, max_lag)
    if doubt:
        return full(doubt)
    since = now - record.last_full_at
    if since >= reconcile_every:
        return full(f"reconciliation due: last full sweep {_words(since)} ago (every {_words(reconcile_every)})")
    return ReadPlan(
        SweepKind.INCREMENTAL,
        f"the audit is healthy; last full sweep {_words(since)} ago (every {_words(reconcile_every)})",
    )


#: A strongly consistent read costs one read unit per 4 KB: an item each for BatchGetItem, a Scan page's bytes.
READ_UNIT_BYTES = 4096


def cheaper_to_scan(held: int, table_bytes: int) -> str | None:
    """Why a full read is cheaper than reading the open set's locks one by one, if it is: each costs a read unit
    (BatchGetItem rounds every item up to 4 KB), while a Scan reads the whole table at a unit per 4 KB. ``table_bytes``
    0: unknown (DynamoDB publishes it about every six hours), so no reason."""
    scan_units = -(-table_bytes // READ_UNIT_BYTES)
    if table_bytes <= 0 or held < scan_units:
        return None
    return (
        f"reading the open set's {held} locks one by one costs more read units than a Scan of the table "
        f"(about {scan_units})"
    )


def _audit_doubt(health: AuditHealth, record: ReconcileRecord, max_lag: timedelta) -> str | None:
    """Why the audit may have missed an acquisition since the last full sweep, if it may have."""
    if health.problem is not None:
        return f"the audit's health cannot be read: {health.problem}"
    if not health.consumer:
        return "no enabled stream consumer reads this table"
    if health.failed_records is None:
        return "the audit's failure queue cannot be read"
    if health.failed_records > record.failed_records:
        new = health.failed_records - record.failed_records
        return f"{new} new message(s) in the audit's failure queue: records the stream function gave up on"
    if health.iterator_age is not None and health.iterator_age > max_lag:
        return f"the audit lags: iterator age {_words(health.iterator_age)} (more than {_words(max_lag)})"
    return None


class AuditProbe(Protocol):
    """Reads the health of the lock tables' audit (the stream consumer, its failure queue, its lag)."""

    def health(self, stream_arn: str | None) -> AuditHealth:
        """The health of the audit of the table whose current stream is ``stream_arn`` (None: the table has no
        stream). Never raises: what cannot be read is the result's ``problem``."""
        ...

    def lockfile_health(self, buckets: Sequence[str]) -> AuditHealth:
        """The health of the lockfile audit of these buckets (their S3 events through EventBridge). Never raises."""
        ...


class ReconcileStore(Protocol):
    """The state table's record of each lock table's full sweeps (keyed by the table's scope, its ARN)."""

    def reconcile_record(self, scope: str) -> ReconcileRecord: ...

    def record_full(self, scope: str, now: datetime, *, deployment: str, failed_records: int) -> None:
        """A full read of the table completed (its locks are all in the open set now)."""
        ...

    def request_full(self, scope: str, reason: str, now: datetime) -> None:
        """Make the table's next sweep a full one (kept until a full sweep is recorded)."""
        ...
