"""Scheduled sweeper: EventBridge → one sweep of the lock table → one log line per verdict and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from tflock_reaper.entrypoints.settings import get_settings
from tflock_reaper.entrypoints.wiring import run_sweep

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext
    from tflock_reaper.domain.report import SweepReport

logger = Logger()
metrics = Metrics()

_METRICS = {
    "LocksSeen": "locks",
    "StaleLocks": "stale",
    "LocksReaped": "reaped",
    "LocksChanged": "changed",
    "ReapsBlocked": "blocked",
    "ItemsSkipped": "skipped",
    "UnreadableLocks": "unreadable",
    "SweepErrors": "failed",
    "LocksDeferred": "deferred",
    "TargetsFailed": "errors",
}


def publish_metrics(report: SweepReport) -> None:
    """One data point per metric per sweep, zeros included, so that the dashboard and alarms see a quiet sweep
    as a zero rather than as missing data. ``LocksSeen`` and ``OldestLockAgeSeconds`` describe the locks the sweep
    found held (before any reap); the dashboard in template.yaml plots these names."""
    summary = report.summary()
    for name, key in _METRICS.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=summary[key])
    oldest = max((r.verdict.age.total_seconds() for r in report.locks), default=0.0)
    metrics.add_metric(name="OldestLockAgeSeconds", unit=MetricUnit.Seconds, value=int(oldest))
    metrics.add_metric(name="CircuitBreakerTripped", unit=MetricUnit.Count, value=1 if report.breaker else 0)
    incremental = report.sweep_kind.value == "incremental"
    metrics.add_metric(name="IncrementalSweeps", unit=MetricUnit.Count, value=1 if incremental else 0)
    metrics.add_metric(name="FullSweeps", unit=MetricUnit.Count, value=0 if incremental else 1)
    notifications = [record for entry in report.locks for record in entry.notifications]
    sent = sum(record.sent_count for record in notifications)
    failures = sum(record.failure_count for record in notifications)
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=failures)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The engine logs through the standard ``tflock_reaper`` logger: give it the Powertools handler and JSON
    # format. Idempotent, and done per invocation so that nothing configured since import can detach it.
    copy_config_to_registered_loggers(source_logger=logger, include={"tflock_reaper"})
    settings = get_settings()
    logger.append_keys(lock_tables=",".join(settings.lock_table_names))
    try:
        report = run_sweep(
            settings,
            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
            # An operator's `aws lambda invoke --payload '{"full": true}'`: reconcile now.
            full_reason="requested by the invocation"
            if isinstance(event, dict) and event.get("full") is True
            else None,
        )
    except Exception:
        metrics.add_metric(name="SweepErrors", unit=MetricUnit.Count, value=1)
        logger.exception("sweep failed")
        raise
    publish_metrics(report)
    result: dict[str, Any] = {
        "mode": report.mode,
        "breaker": report.breaker,
        "sweep_kind": report.sweep_kind.value,
        "sweep_reasons": report.sweep_reasons,
        "errors": report.errors,
        "summary": report.summary(),
    }
    logger.info("sweep complete", extra=result)
    return result
