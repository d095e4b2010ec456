"""Lock-table stream → one structured audit log line per acquire, release and state write, plus metrics.

The same function takes the S3 events of lockfiles (``<state>.tflock``) from EventBridge, one per invocation,
and logs their acquires and releases with the same events and fields. S3 does not deliver them in order: a batch
of them (:func:`handle_lockfile_events`) is recorded per object in S3's order (sequencer), and the recording
itself matches each deletion by sequencer, whatever the order of invocations.

Powertools' BatchProcessor reports partial batch failures: only a record whose state-table write failed
(throttled, unavailable) is retried. Records that can never be processed are logged and counted, never failed.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from tflock_reaper.adapters.aws import default_clients
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.audit import AuditEvent, EventKind, UnreadableRecordError, parse_record
from tflock_reaper.domain.lock import LOCKFILE_SUFFIX, LockfileObject
from tflock_reaper.domain.lockfile_audit import (
    LockfileAuditStore,
    LockfileChange,
    ReadLockfile,
    batch_order,
    is_eventbridge_event,
    parse_lockfile_event,
)
from tflock_reaper.domain.notification import Notification
from tflock_reaper.entrypoints.settings import get_settings
from tflock_reaper.services.dispatch import DispatchResult
from tflock_reaper.services.recorder import (
    AuditStore,
    Recorded,
    record_change,
    record_lockfile_change,
)

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)

_COUNTERS = {
    EventKind.LOCK_ACQUIRED: "LocksAcquired",
    EventKind.LOCK_RELEASED: "LocksReleased",
    EventKind.STATE_PERSISTED: "StatePersisted",
    EventKind.ITEM_IGNORED: "RecordsIgnored",
}


@lru_cache(maxsize=1)
def default_store() -> StateTable:
    settings = get_settings()
    if not settings.state_table_name:
        raise RuntimeError("STATE_TABLE_NAME is not set: the stream function records into the state table")
    return StateTable(default_clients().dynamodb(), settings.state_table_name)


def default_read(bucket: str, key: str) -> LockfileObject | None:
    """GetObject of the lockfile (the role may read ``*.tflock`` only); None when it is gone."""
    buckets = LockfileBuckets(default_clients().client("s3"), [BucketLocation(bucket)])
    return buckets.get(f"{bucket}/{key.removesuffix(LOCKFILE_SUFFIX)}")


def publish(event: AuditEvent) -> None:
    level = "warning" if event.event is EventKind.ITEM_IGNORED else "info"
    getattr(logger, level)(event.event.value, extra=event.log_fields())
    try:
        _count(event)
    except Exception:
        logger.exception("metrics not published", extra={"event": event.event.value, "lock_path": event.lock_path})


def _count(event: AuditEvent) -> None:
    metrics.add_metric(name=_COUNTERS[event.event], unit=MetricUnit.Count, value=1)
    if event.event is EventKind.LOCK_RELEASED and event.held_seconds is not None:
        with single_metric(
            name="LockHoldSeconds",
            unit=MetricUnit.Seconds,
            value=event.held_seconds,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="operation", value=event.operation or "unknown")


Announce = Callable[[Notification, str], DispatchResult]


def default_announce(notification: Notification, channels_json: str) -> DispatchResult:
    # Imported here: only a release of a lock that was alerted about needs the alert channels (cold start).
    from tflock_reaper.entrypoints.wiring import send_resolved  # noqa: PLC0415

    return send_resolved(notification, channels_json, settings=get_settings(), clients=default_clients())


class ResolvedNotSentError(RuntimeError):
    """A channel failed in a way a retry can fix: fail this record so the batch retries it (the release is
    recorded already, so the retry only sends what was not sent)."""


def announce_resolved(recorded: Recorded, announce: Announce) -> None:
    if recorded.resolved is None or recorded.channels is None:
        return
    lock_path = recorded.resolved.lock_path
    try:
        result = announce(recorded.resolved, recorded.channels)
    except Exception:
        # Not a channel's answer (e.g. unreadable channel settings): a retry would fail the same way.
        logger.exception("resolved notification failed", extra={"lock_path": lock_path})
        metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=1)
        return
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=len(result.sent))
    if result.failed:
        metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=len(result.failed))
        retryable = [r.channel for r in result.failed if r.retryable]
        if retryable:
            raise ResolvedNotSentError(f"resolved for {lock_path} not sent on {', '.join(retryable)}: will retry")


def make_record_handler(store: AuditStore, announce: Announce) -> Any:
    def handle_record(record: DynamoDBRecord) -> None:
        try:
            change = parse_record(record.raw_event)
        except UnreadableRecordError as err:
            # Malformed: retrying cannot help. Logged and counted; the batch goes on.
            logger.warning("item_ignored", extra={"event": "item_ignored", "reason": str(err)})
            metrics.add_metric(name="RecordsIgnored", unit=MetricUnit.Count, value=1)
            return
        # Raises on a state-table failure: only this record is retried.
        recorded = record_change(change, store)
        if recorded is None:
            logger.debug("already recorded", extra={"lock_path": change.lock_path, "sequence": change.sequence_number})
            return
        if recorded.event is not None:
            publish(recorded.event)
        announce_resolved(recorded, announce)

    return handle_record


def handle_batch(
    event: dict[str, Any],
    context: LambdaContext,
    store: AuditStore | None = None,
    announce: Announce | None = None,
) -> PartialItemFailureResponse:
    copy_config_to_registered_loggers(source_logger=logger, include={"tflock_reaper"})
    handler = make_record_handler(store or default_store(), announce or default_announce)
    return process_partial_response(event=event, record_handler=handler, processor=processor, context=context)


def handle_lockfile_event(
    event: dict[str, Any], store: LockfileAuditStore | None = None, read: ReadLockfile | None = None
) -> None:
    """One S3 event from EventBridge. Raises only when the state table (or S3, other than a vanished object)
    fails: Lambda retries the asynchronous invocation, then sends it to the failure queue."""
    handle_lockfile_events([event], store, read)


def handle_lockfile_events(
    events: list[dict[str, Any]], store: LockfileAuditStore | None = None, read: ReadLockfile | None = None
) -> None:
    """Several S3 events (e.g. a redrive of the failure queue), recorded per object in S3's order. Raises as
    :func:`handle_lockfile_event` does; what was recorded before the failure is recorded once on the retry."""
    copy_config_to_registered_loggers(source_logger=logger, include={"tflock_reaper"})
    changes: list[LockfileChange] = []
    for event in events:
        try:
            changes.append(parse_lockfile_event(event))
        except UnreadableRecordError as err:
            logger.warning("item_ignored", extra={"event": "item_ignored", "reason": str(err)})
            metrics.add_metric(name="RecordsIgnored", unit=MetricUnit.Count, value=1)
    recording_store, read_lockfile = store or default_store(), read or default_read
    for change in sorted(changes, key=batch_order):
        recorded = record_lockfile_change(change, recording_store, read_lockfile)
        if not recorded:
            logger.debug("already recorded", extra={"lock_path": change.lock_path, "event_id": change.event_id})
        for audit_event in recorded:
            publish(audit_event)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | None:
    """A DynamoDB stream batch (``Records``), or one S3 lockfile event from EventBridge."""
    if is_eventbridge_event(event):
        handle_lockfile_event(event)
        return None
    return handle_batch(event, context)
