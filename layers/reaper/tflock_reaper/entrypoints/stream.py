"""Wiring for the deployed stream function: the state table, the S3 reads of lockfiles and the ``resolved``
announcements built from the settings, and the audit's log lines and metrics written through Powertools.

``functions/stream/stream_handler.py`` parses the invocation and makes one call here; what is recorded, logged and
retried is ``services.recorder``'s business. Every collaborator can be passed in (tests pass fakes or moto-backed
ones); the defaults are built on first use, never at import.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tflock_reaper.adapters.aws import default_clients
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.audit import AuditEvent, AuditStore, EventKind
from tflock_reaper.domain.lock import LOCKFILE_SUFFIX, LockfileObject
from tflock_reaper.domain.lockfile_audit import LockfileAuditStore, ReadLockfile
from tflock_reaper.entrypoints.settings import get_settings
from tflock_reaper.services.recorder import Announce, audit_lockfile_events, audit_stream_record

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    from tflock_reaper.domain.notification import Notification
    from tflock_reaper.services.dispatch import DispatchResult

_COUNTERS = {
    EventKind.LOCK_ACQUIRED: "LocksAcquired",
    EventKind.LOCK_RELEASED: "LocksReleased",
    EventKind.STATE_PERSISTED: "StatePersisted",
    EventKind.ITEM_IGNORED: "RecordsIgnored",
}


class PowertoolsAuditLog:
    """The audit as the function's structured log (one line per event, its fields as keys) and metrics."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self._logger = logger
        self._metrics = metrics

    def publish(self, event: AuditEvent) -> None:
        level = "warning" if event.event is EventKind.ITEM_IGNORED else "info"
        getattr(self._logger, level)(event.event.value, extra=event.log_fields())
        try:
            self._count_event(event)
        except Exception:
            self._logger.exception(
                "metrics not published", extra={"event": event.event.value, "lock_path": event.lock_path}
            )

    def unreadable(self, reason: str) -> None:
        self._logger.warning("item_ignored", extra={"event": "item_ignored", "reason": reason})
        self.count("RecordsIgnored", 1)

    def count(self, metric: str, value: int) -> None:
        self._metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)

    def _count_event(self, event: AuditEvent) -> None:
        self.count(_COUNTERS[event.event], 1)
        if event.by_hand:
            self.count("ForceUnlocks", 1)
        if event.event is EventKind.LOCK_RELEASED and event.held_seconds is not None:
            with single_metric(
                name="LockHoldSeconds",
                unit=MetricUnit.Seconds,
                value=event.held_seconds,
                namespace=self._metrics.namespace,
                default_dimensions=self._metrics.default_dimensions,
            ) as metric:
                metric.add_dimension(name="operation", value=event.operation or "unknown")


@lru_cache(maxsize=1)
def default_store() -> StateTable:
    settings = get_settings()
    if not settings.state_table_name:
        raise RuntimeError("STATE_TABLE_NAME is not set: the stream function records into the state table")
    return StateTable(
        default_clients().dynamodb(),
        settings.state_table_name,
        history_retention=timedelta(days=settings.history_retention_days),
    )


def default_read(bucket: str, key: str) -> LockfileObject | None:
    """GetObject of the lockfile (the role may read ``*.tflock`` only); None when it is gone."""
    # Imported here: a batch of the lock table's stream never reads a lockfile (cold start).
    from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets  # noqa: PLC0415

    buckets = LockfileBuckets(default_clients().client("s3"), [BucketLocation(bucket)])
    return buckets.get(f"{bucket}/{key.removesuffix(LOCKFILE_SUFFIX)}")


def default_announce(notification: Notification, channels_json: str) -> DispatchResult:
    # Imported here: only a release of a lock that was alerted about needs the alert channels (cold start).
    from tflock_reaper.entrypoints.wiring import send_resolved  # noqa: PLC0415

    return send_resolved(notification, channels_json, settings=get_settings(), clients=default_clients())


def record_handler(
    log: PowertoolsAuditLog, store: AuditStore | None = None, announce: Announce | None = None
) -> Callable[[DynamoDBRecord], None]:
    """What BatchProcessor calls for each record of a lock table's stream (raises only for a record to retry)."""
    audit = partial(audit_stream_record, store=store or default_store(), announce=announce or default_announce, log=log)
    return lambda record: audit(record.raw_event)


def record_lockfile_events(
    events: Sequence[dict[str, Any]],
    log: PowertoolsAuditLog,
    store: LockfileAuditStore | None = None,
    read: ReadLockfile | None = None,
) -> None:
    """S3 lockfile events from EventBridge, recorded and logged (raises only for an invocation to retry)."""
    audit_lockfile_events(events, store or default_store(), read or default_read, log)
