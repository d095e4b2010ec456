"""Lock-table stream → one structured audit log line per acquire, release and state write, plus metrics.

The same function takes the S3 events of lockfiles (``<state>.tflock``) from EventBridge, one per invocation,
and logs their acquires and releases with the same events and fields. S3 does not deliver them in order: a batch
of them (:func:`handle_lockfile_events`) is recorded per object in S3's order (sequencer), and the recording
itself matches each deletion by sequencer, whatever the order of invocations.

Powertools' BatchProcessor reports partial batch failures: only a record whose state-table write failed
(throttled, unavailable), or whose ``resolved`` a channel can still take, is retried. Records that can never be
processed are logged and counted, never failed (``services.recorder`` decides; ``entrypoints.stream`` wires).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from tflock_reaper.domain.lockfile_audit import is_eventbridge_event
from tflock_reaper.entrypoints import stream

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from tflock_reaper.domain.audit import AuditStore
    from tflock_reaper.domain.lockfile_audit import LockfileAuditStore, ReadLockfile
    from tflock_reaper.services.recorder import Announce

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def handle_batch(
    event: dict[str, Any],
    context: LambdaContext,
    store: AuditStore | None = None,
    announce: Announce | None = None,
) -> PartialItemFailureResponse:
    """A DynamoDB stream batch (``Records``): the records a retry can fix are the batch item failures."""
    copy_config_to_registered_loggers(source_logger=logger, include={"tflock_reaper"})
    record_handler = stream.record_handler(stream.PowertoolsAuditLog(logger, metrics), store, announce)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)


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
    stream.record_lockfile_events(events, stream.PowertoolsAuditLog(logger, metrics), store, read)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse | None:
    """A DynamoDB stream batch (``Records``), or one S3 lockfile event from EventBridge."""
    if is_eventbridge_event(event):
        handle_lockfile_event(event)
        return None
    return handle_batch(event, context)
