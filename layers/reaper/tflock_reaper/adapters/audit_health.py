"""The audit's health as the sweeper sees it: is the lock table's stream consumed, has the consumer given up on
records, and how far behind is it. Three reads per sweep (each cached for the sweep): the event source mappings
(Lambda), the failure queue's depth (SQS) and the stream function's latest ``IteratorAge`` (CloudWatch)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import describe
from tflock_reaper.domain.reconcile import AuditHealth

#: IteratorAge is published once a minute, about a minute late: the latest data point of this window is read.
ITERATOR_AGE_WINDOW = timedelta(minutes=5)
_QUEUE_DEPTH = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AuditHealthProbe:
    """``mappings``: the UUIDs of the stream's event source mappings; ``function_name``: the stream function;
    ``queue_url``: its failure queue. Built per sweep: what it reads is kept for that sweep."""

    def __init__(
        self,
        *,
        lambda_client: Any,
        sqs_client: Any,
        cloudwatch_client: Any,
        mappings: Sequence[str],
        function_name: str,
        queue_url: str,
        lockfile_rule: str | None = None,
        events_client: Any = None,
        s3_client: Any = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """``lockfile_rule`` (with ``events_client`` and ``s3_client``): the EventBridge rule that passes the state
        buckets' lockfile events to the stream function (the lockfile audit); None: no lockfile audit."""
        self._lambda = lambda_client
        self._sqs = sqs_client
        self._cloudwatch = cloudwatch_client
        self._mappings = tuple(mappings)
        self._function_name = function_name
        self._queue_url = queue_url
        self._clock = clock
        self._read: tuple[frozenset[str], int, timedelta | None] | None = None
        self._lockfile_rule = lockfile_rule
        self._events = events_client
        self._s3 = s3_client

    def health(self, stream_arn: str | None) -> AuditHealth:
        try:
            consumed, failed, age = self._read_once()
        except (ClientError, BotoCoreError) as err:
            return AuditHealth.unknown(describe(err))
        return AuditHealth(consumer=stream_arn in consumed, failed_records=failed, iterator_age=age)

    def lockfile_health(self, buckets: Sequence[str]) -> AuditHealth:
        """Consumed when the rule is enabled and every bucket sends its events to EventBridge (S3's notification
        configuration has ``EventBridgeConfiguration``): otherwise a lockfile's acquisition reaches nobody."""
        if self._lockfile_rule is None or self._events is None or self._s3 is None:
            return AuditHealth.unknown("no lockfile audit")
        try:
            _, failed, _ = self._read_once()
            rule = self._events.describe_rule(Name=self._lockfile_rule)
            consumed = rule.get("State") == "ENABLED" and all(
                "EventBridgeConfiguration" in self._s3.get_bucket_notification_configuration(Bucket=bucket)
                for bucket in buckets
            )
        except (ClientError, BotoCoreError) as err:
            return AuditHealth.unknown(describe(err))
        # EventBridge invokes the function asynchronously: no iterator age; what fails every retry is queued.
        return AuditHealth(consumer=consumed, failed_records=failed, iterator_age=None)

    def _read_once(self) -> tuple[frozenset[str], int, timedelta | None]:
        if self._read is None:
            self._read = (self._consumed_streams(), self._failed_records(), self._iterator_age())
        return self._read

    def _consumed_streams(self) -> frozenset[str]:
        """The streams an enabled mapping feeds to the stream function. A table's stream is consumed only if it is
        one of these: a stream disabled and enabled again is a new stream (a new label), which an old mapping does
        not read."""
        streams: set[str] = set()
        for uuid in self._mappings:
            mapping = self._lambda.get_event_source_mapping(UUID=uuid)
            if mapping.get("State") == "Enabled" and mapping.get("EventSourceArn"):
                streams.add(str(mapping["EventSourceArn"]))
        return frozenset(streams)

    def _failed_records(self) -> int:
        attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=list(_QUEUE_DEPTH))
        return sum(int(attributes.get("Attributes", {}).get(name, 0)) for name in _QUEUE_DEPTH)

    def _iterator_age(self) -> timedelta | None:
        now = self._clock()
        response = self._cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="IteratorAge",
            Dimensions=[{"Name": "FunctionName", "Value": self._function_name}],
            StartTime=now - ITERATOR_AGE_WINDOW,
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )
        points = sorted(response.get("Datapoints", []), key=lambda point: point["Timestamp"])
        if not points:
            return None
        return timedelta(milliseconds=float(points[-1]["Maximum"]))
