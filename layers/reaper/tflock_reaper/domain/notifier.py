"""The notifier interface every channel implements, and the one error a channel raises."""

from __future__ import annotations

from typing import Any, Protocol

from tflock_reaper.domain.notification import DedupKey, Notification
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
