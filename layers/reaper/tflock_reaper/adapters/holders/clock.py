"""The clocks of the holder checks that judge a CI system's runs (CodeBuild, CodePipeline, GitHub, GitLab): how far
a run's time may be from the lock's acquisition bound, and how the evidence writes both.

A run's start or creation time comes from the CI system's clock; the acquisition bound (``acquired_by``: the
stream's acquisition time, a lockfile's LastModified or the reaper's first sighting) from DynamoDB's, S3's or the
reaper's. A run that started up to :data:`CLOCK_SLACK` after the bound still counts as a holder.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tflock_reaper.domain.decision import SKEW_TOLERANCE
from tflock_reaper.domain.durations import format_duration

#: The tolerance the reaper allows between clocks everywhere.
CLOCK_SLACK = SKEW_TOLERANCE


def when(moment: datetime, *, utc: str = "Z") -> str:
    """``moment`` in UTC to the second, ``utc`` naming the zone: ``Z`` (as GitHub and GitLab write their times), or
    ``+00:00`` (as Python writes boto3's, which the AWS checks' evidence has always shown)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + utc


def bound(acquired_by: datetime, *, utc: str = "Z") -> str:
    """The acquisition bound as the evidence states it."""
    return (
        f"the lock's acquisition (at the latest {when(acquired_by, utc=utc)}, "
        f"+{format_duration(CLOCK_SLACK)} clock slack)"
    )
