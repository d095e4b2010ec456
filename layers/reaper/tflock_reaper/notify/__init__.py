"""Notifications: what the reaper tells humans about stale locks, and the channels that carry it.

``events`` (the :class:`Notification` and its wording) and ``dispatch`` (exactly once per channel) are pure;
``slack``, ``sns`` and ``pagerduty`` are adapters that speak HTTP or AWS. Nothing here is imported by the
domain modules: the sweep and the stream function receive notifiers and a ledger as parameters.
"""

from tflock_reaper.notify.base import Notifier, NotifyError
from tflock_reaper.notify.dispatch import (
    ChannelResult,
    DispatchResult,
    MemoryLedger,
    NotificationLedger,
    SendStatus,
    dispatch,
)
from tflock_reaper.notify.events import DedupKey, Notification, NotificationKind, Severity

__all__ = [
    "ChannelResult",
    "DedupKey",
    "DispatchResult",
    "MemoryLedger",
    "Notification",
    "NotificationKind",
    "NotificationLedger",
    "Notifier",
    "NotifyError",
    "SendStatus",
    "Severity",
    "dispatch",
]
