"""Notifications built from lock items shaped as Terraform writes them, and the hostile values tests use."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from factories import NOW, lock_item
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.notification import Notification, NotificationKind

LOCK_ID = "8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d"

#: Values anyone with write access to the lock table can put in Who or Path, each a Slack control sequence
#: or a broadcast that must come out inert.
HOSTILE = [
    "<!channel>",
    "<!here>",
    "<@U024BE7LH>",
    "<!subteam^SAZ94GDB8>",
    "<https://evil.example|click>",
    "@channel",
    "@here",
    "@everyone",
    "&",
]


def lock_record(
    path: str = "tf-state/dev/network/terraform.tfstate", *, now: datetime | None = NOW, **kwargs: Any
) -> LockRecord:
    """A lock the lock model accepts. ``now=None`` parses it as the stream function does, without a clock (a
    ``Created`` in the future is then a lock too)."""
    kwargs.setdefault("lock_id", LOCK_ID)
    lock = classify_item(lock_item(path, **kwargs), now)
    assert isinstance(lock, LockRecord), lock
    return lock


def notification(
    kind: NotificationKind | str = NotificationKind.STALE,
    path: str = "tf-state/dev/network/terraform.tfstate",
    *,
    reasons: tuple[str, ...] = (
        "held 3h12m (by Created): past warn_after 30m (rules[0] tf-state/dev/*)",
        "reap_after 4h not reached",
    ),
    sequence: int = 0,
    **lock_kwargs: Any,
) -> Notification:
    lock = lock_record(path, **lock_kwargs)
    reaped = NotificationKind(kind) is NotificationKind.REAPED
    return Notification.for_lock(
        kind,
        lock,
        table="tf-locks",
        age_seconds=3 * 3600 + 12 * 60,
        verdict="reap" if reaped else "warn",
        outcome="reaped" if reaped else "warned",
        reasons=reasons,
        rule="rules[0] tf-state/dev/*",
        deleted_item=lock.item if reaped else None,
        sequence=sequence,
    )
