"""The interfaces the services use and the adapters implement (structurally: an adapter need not import this module).

The lock sources (a lock table, the lockfiles of some buckets) and the alert sink of a sweep. The reaper's memory
(:class:`tflock_reaper.domain.memory.StateStore`), the notification ledger
(:class:`tflock_reaper.domain.notifier.NotificationLedger`), notifiers and holder checks are declared beside the
models they speak in.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from tflock_reaper.domain.lock import DynamoItem, LockfileObject, SkippedItem

if TYPE_CHECKING:
    from tflock_reaper.domain.notifier import NotificationRecord
    from tflock_reaper.domain.report import LockReport


class AlertSink(Protocol):
    """Receives every judged lock, and every unreadable one; returns what it sent (or would send) about it."""

    def on_entry(self, entry: LockReport, now: datetime) -> Sequence[NotificationRecord]: ...

    def on_unreadable(self, item: SkippedItem, now: datetime) -> Sequence[NotificationRecord]: ...


class LockSource(Protocol):
    """One lock table. ``arn``: its ARN (None: unknown, the name stands in); a real table reads it (DescribeTable)
    when first asked, and raises :class:`AwsAccessError` if it cannot."""

    name: str

    @property
    def arn(self) -> str | None: ...

    def scan(self) -> Iterator[DynamoItem]:
        """Every item, strongly consistent (a full sweep)."""
        ...

    def read(self, lock_paths: Sequence[str]) -> list[DynamoItem]:
        """The items at these paths that exist, strongly consistent (an incremental sweep)."""
        ...

    def size_bytes(self) -> int:
        """The table's size (DynamoDB's TableSizeBytes, refreshed about every six hours): what a Scan reads."""
        ...

    def latest_stream_arn(self) -> str | None:
        """The table's current stream (None: streams are off), read now: whether the audit can see it."""
        ...

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> Any: ...


class LockfileDeletion(Protocol):
    @property
    def deleted(self) -> bool: ...

    @property
    def reason(self) -> str | None:
        """Why not deleted (the lockfile changed), else None."""
        ...


class LockfileSource(Protocol):
    """The ``.tflock`` objects of the state buckets (S3-native locking)."""

    name: str

    @property
    def scopes(self) -> list[str]:
        """The scopes (``s3://<bucket>``) whose open sets list these buckets' lockfile-only locks."""
        ...

    def scan(self) -> Iterator[LockfileObject]:
        """Every lockfile under the buckets' locations (a listing, then a read of each: a full sweep)."""
        ...

    def read(self, lock_paths: Sequence[str]) -> list[LockfileObject]:
        """The lockfiles of these states that exist under the locations (an incremental sweep)."""
        ...

    def delete_if_unchanged(self, obj: LockfileObject) -> LockfileDeletion: ...
