"""Deliver one notification to each of its channels, exactly once per (channel, event), as far as it can be.

Each channel is claimed in a :class:`NotificationLedger` before sending: a claim that already exists means
another sweep, a Lambda retry or a redelivered stream batch sent (or is sending) this event, so it is
reported ``duplicate`` and not sent. A successful send completes the claim; a failed one releases it so that a
later sweep retries. Channels are independent: one failing (or raising anything at all) never stops another.

Failures are classified, because a sweep stops using a channel whose failure is ``retryable`` (see
:class:`tflock_reaper.services.alerting.Alerter`) and the stream function retries a record for one: only a
failure of the channel or the ledger (a timeout, a refused connection, 5xx, 429, throttling) is retryable. A failure
caused by this notification's own data fails this notification alone, so that the next lock still gets its alert: a
renderer that raises (each notification is rendered before anything else: rendering is pure), a channel's
4xx (:class:`NotifyError` with ``retryable=False``), and a ledger error whose ``transient`` attribute is
``False`` (a ValidationException on this event's key).

What "as far as it can be" leaves open: a process that dies between a channel's acceptance and
:meth:`NotificationLedger.complete` leaves a claim that the Dynamo ledger lets a later sweep take over once its
lease has passed (so that event is sent again: at least once, rather than lost); a channel that accepted a
request whose answer never arrived (a timeout) is retried and may show the event twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tflock_reaper.domain.notification import DedupKey, Notification
from tflock_reaper.domain.notifier import NotificationLedger, Notifier, NotifyError, SendStatus
from tflock_reaper.domain.text import fit, one_line, redact

__all__ = ["ChannelResult", "DispatchResult", "SendStatus", "dispatch"]

logger = logging.getLogger(__name__)

#: An exception's text in a result or a log line is cut to this: it may quote the hostile value that caused it.
ERROR_MAX = 500


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    status: SendStatus
    error: str | None = None
    retryable: bool = False
    """A failure of the channel (or the ledger) itself, which a later attempt may get past; ``False`` for a
    failure of this notification alone (its data), which says nothing about the next one."""


@dataclass(frozen=True)
class DispatchResult:
    dedup_key: str
    results: tuple[ChannelResult, ...]

    def _channels(self, status: SendStatus) -> tuple[str, ...]:
        return tuple(r.channel for r in self.results if r.status is status)

    @property
    def sent(self) -> tuple[str, ...]:
        return self._channels(SendStatus.SENT)

    @property
    def duplicates(self) -> tuple[str, ...]:
        return self._channels(SendStatus.DUPLICATE)

    @property
    def failed(self) -> tuple[ChannelResult, ...]:
        return tuple(r for r in self.results if r.status is SendStatus.FAILED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dedup_key": self.dedup_key,
            "channels": [
                {"channel": r.channel, "status": str(r.status), "error": r.error, "retryable": r.retryable}
                for r in self.results
            ],
        }


def dispatch(notification: Notification, notifiers: Sequence[Notifier], ledger: NotificationLedger) -> DispatchResult:
    """Send ``notification`` on every channel that has not sent it yet; never raises."""
    results = tuple(_deliver(notification, notifier, ledger) for notifier in notifiers)
    return DispatchResult(notification.dedup_key, results)


def _deliver(notification: Notification, notifier: Notifier, ledger: NotificationLedger) -> ChannelResult:
    channel = notifier.name
    key = notification.ledger_key
    fields: dict[str, Any] = {
        "channel": channel,
        "dedup_key": notification.dedup_key,
        "event": str(notification.kind),
        "lock_path": notification.lock_path,
        "lock_id": notification.lock_id,
    }
    try:
        notifier.render(notification)
    except Exception as err:  # noqa: BLE001 - a renderer bug on this notification's data: fail it alone
        error = _describe(err, "cannot render the notification: ")
        logger.error("notification not sent", extra={**fields, "error": error, "retryable": False})
        return ChannelResult(channel, SendStatus.FAILED, error, retryable=False)

    try:
        claimed = ledger.claim(channel, key)
    except Exception as err:  # noqa: BLE001 - without a claim nothing is sent; a later sweep tries again
        transient = bool(getattr(err, "transient", True))
        what = "notification ledger unavailable" if transient else "notification ledger refused this event"
        error = _describe(err, f"{what}: ")
        logger.error("notification not sent", extra={**fields, "error": error, "retryable": transient})
        return ChannelResult(channel, SendStatus.FAILED, error, retryable=transient)
    if not claimed:
        logger.info("notification already sent", extra=fields)
        return ChannelResult(channel, SendStatus.DUPLICATE)

    try:
        notifier.send(notification)
    except NotifyError as err:
        error, retryable = fit(err.message, ERROR_MAX, one_line), err.retryable
    except Exception as err:  # noqa: BLE001 - a broken channel must never block the others nor the sweep
        # The notification rendered above: what failed is the transport (urllib, botocore, ...).
        error, retryable = _describe(err), True
    else:
        _complete(ledger, channel, key, fields)
        logger.info("notification sent", extra=fields)
        return ChannelResult(channel, SendStatus.SENT)

    _release(ledger, channel, key, fields)
    logger.warning("notification failed", extra={**fields, "error": error, "retryable": retryable})
    return ChannelResult(channel, SendStatus.FAILED, error, retryable=retryable)


def _complete(ledger: NotificationLedger, channel: str, key: DedupKey, fields: dict[str, Any]) -> None:
    try:
        ledger.complete(channel, key)
    except Exception as err:  # noqa: BLE001 - the event was delivered; the claim stays until its lease passes
        logger.error(
            "notification sent but not recorded",
            extra={**fields, "error": _describe(err)},
        )


def _release(ledger: NotificationLedger, channel: str, key: DedupKey, fields: dict[str, Any]) -> None:
    try:
        ledger.release(channel, key)
    except Exception as err:  # noqa: BLE001 - the claim then stays until its lease passes
        logger.error(
            "notification claim not released",
            extra={**fields, "error": _describe(err)},
        )


def _describe(err: Exception, context: str = "") -> str:
    """``<context>Type: message``, redacted, on one line and short: an exception may quote the value that caused
    it."""
    return fit(redact(f"{context}{type(err).__name__}: {err}"), ERROR_MAX, one_line)
