"""The notifier interface every channel implements, the one error a channel raises, and what became of a
notification on its channels (:class:`SentNotification`, kept on the sweep's report)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from tflock_reaper.domain.notification import DedupKey, Notification, NotificationKind
from tflock_reaper.domain.text import redact

HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERRORS = range(500, 600)


def retryable_status(status: int) -> bool:
    """HTTP statuses a later attempt may get past: throttling and server errors."""
    return status == HTTP_TOO_MANY_REQUESTS or status in HTTP_SERVER_ERRORS


class NotifyError(Exception):
    """A channel failed to deliver a notification.

    ``retryable``: a later attempt may succeed (throttling, 5xx, timeouts, an unreachable endpoint): the channel
    is then skipped for the rest of the sweep. ``False`` means the configuration or the payload is wrong (bad
    webhook, unknown topic, denied, a 400 for this notification's payload) and will stay wrong: this notification
    fails, and the next one is still tried.
    The message never holds a secret: adapters redact webhook URLs and routing keys, and as a safety net
    any URL's path and query are removed here too.
    """

    def __init__(self, channel: str, message: str, *, retryable: bool) -> None:
        self.channel = channel
        self.message = redact(message)
        self.retryable = retryable
        super().__init__(f"{channel}: {self.message}")


class Notifier(Protocol):
    """A channel. ``name`` identifies the destination in the ledger and the logs (never a secret): two
    notifiers that deliver to different places must have different names."""

    @property
    def name(self) -> str: ...

    def render(self, notification: Notification) -> dict[str, Any]:
        """What :meth:`send` would deliver, without any secret: for dry runs (``--show-notifications``)."""
        ...

    def send(self, notification: Notification) -> None:
        """Deliver, or raise :class:`NotifyError`. Retries (bounded) happen inside."""
        ...


class NotificationLedger(Protocol):
    """Exactly-once bookkeeping per (channel, event).

    A method that fails raises; an exception whose ``transient`` attribute is ``False`` (as
    :class:`tflock_reaper.adapters.errors.AwsAccessError` can say) means this key alone was refused, and the ledger
    is otherwise fine. Any other exception is taken as the ledger being unavailable.
    """

    def claim(self, channel: str, key: DedupKey) -> bool:
        """Take the right to send this event on this channel. ``False``: already sent or being sent."""
        ...

    def complete(self, channel: str, key: DedupKey) -> None:
        """The send succeeded: the claim becomes permanent (until the record expires)."""
        ...

    def release(self, channel: str, key: DedupKey) -> None:
        """The send failed: drop this process's claim so that a later attempt can send."""
        ...


class SendStatus(StrEnum):
    """What one channel did with a notification it was given
    (:func:`tflock_reaper.services.dispatch.dispatch`)."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    """Already sent (or being sent) by another sweep, a retry or a redelivered stream batch: not sent again."""
    FAILED = "failed"


class NotSent(StrEnum):
    """A channel a notification was not given: a dry run only renders it (``would-send``), or finds that it could
    not be sent there (``unusable``: the channel cannot be built or used, or cannot render it; ``errors`` says why);
    a channel that failed retryably earlier in the sweep is skipped for the rest of it (``skipped``)."""

    WOULD_SEND = "would-send"
    UNUSABLE = "unusable"
    SKIPPED = "skipped"


ChannelStatus = SendStatus | NotSent


@dataclass(frozen=True)
class SentNotification:
    """One notification a sweep called for, and what became of it on each of its channels: the errors of those
    that failed and, in a dry run, what each would get (rendered, without secrets)."""

    event: NotificationKind
    sequence: int
    channels: Mapping[str, ChannelStatus]
    errors: Mapping[str, str] = field(default_factory=dict)
    rendered: Mapping[str, Mapping[str, Any]] | None = None

    @property
    def sent_count(self) -> int:
        return sum(1 for status in self.channels.values() if status is SendStatus.SENT)

    @property
    def failure_count(self) -> int:
        return sum(1 for status in self.channels.values() if status is SendStatus.FAILED)

    def to_dict(self) -> dict[str, Any]:
        """The record as the CLI's ``--json`` shows it (``errors`` only when a channel failed, ``rendered`` only
        in a dry run)."""
        record: dict[str, Any] = {
            "event": self.event.value,
            "sequence": self.sequence,
            "channels": {name: status.value for name, status in self.channels.items()},
        }
        if self.errors:
            record["errors"] = dict(self.errors)
        if self.rendered is not None:
            record["rendered"] = dict(self.rendered)
        return record


@dataclass(frozen=True)
class AlertingFailed:
    """The alert path itself raised for a lock (not one channel: its notifications were not all even tried).
    Counted as one failure."""

    error: str
    sent_count: ClassVar[int] = 0
    failure_count: ClassVar[int] = 1

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.error}


NotificationRecord = SentNotification | AlertingFailed
