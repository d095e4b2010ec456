"""PagerDuty Events API v2: ``trigger`` while a lock is stale, ``resolve`` when it is released or reaped.

The ``dedup_key`` is per lock acquisition (``tflock-reaper/<lock path>/<lock ID>``), not per event: ``stale``,
``still_stale`` and ``reap_blocked`` update one incident, and ``resolved``/``reaped`` close it. PagerDuty limits
the key to 255 characters; a longer one, or one with a character :func:`~tflock_reaper.domain.text.one_line`
would replace (a newline, a bidi override in the lock ID), is replaced by a SHA-256 of it (still one key per
acquisition). Every other untrusted value (summary, source, component, class, custom details) is made one line
and cut to its limit, and the custom details shrink until the event is within PagerDuty's 512 KB.

Delivery (:class:`~tflock_reaper.adapters.channels.webhook.WebhookNotifier`): bounded retries on 429, 5xx,
connection errors and timeouts, within a total deadline. Retrying a POST is safe here: PagerDuty folds events with
one ``dedup_key`` into one alert. The routing key travels only in the request body: it is never logged nor put in
an error.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tflock_reaper.adapters.channels.webhook import WebhookNotifier
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.domain.text import fit, one_line

EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
CUSTOM_VALUE_MAX = 2000
PAYLOAD_FIELD_MAX = 255
#: PagerDuty refuses events over 512 KB; this leaves room for the routing key and the JSON around the event.
EVENT_MAX_BYTES = 500 * 1024
#: The custom details' strings are cut to the first of these lengths that keeps the event within its size.
CUSTOM_VALUE_LIMITS = (CUSTOM_VALUE_MAX, 500, 100)
REASONS_MAX = 50
HTTP_SUCCESS = range(200, 300)
TRIGGER_KINDS = frozenset({NotificationKind.STALE, NotificationKind.STILL_STALE, NotificationKind.REAP_BLOCKED})
RESOLVE_KINDS = frozenset({NotificationKind.RESOLVED, NotificationKind.REAPED})


def pagerduty_dedup_key(n: Notification) -> str:
    """One key per lock acquisition, so that later events update (or resolve) the same incident."""
    key = f"tflock-reaper/{n.lock_path}/{n.lock_id}"
    if len(key) <= DEDUP_KEY_MAX and one_line(key) == key:
        return key
    # surrogatepass: a lock ID the lock model accepts may hold a lone surrogate, which UTF-8 cannot encode.
    return "tflock-reaper/sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _summary(n: Notification) -> str:
    operation = n.operation or "no operation"
    who = n.who or "unknown holder"
    return fit(f"{n.title}: {n.lock_path} ({operation} by {who}, held {n.age})", SUMMARY_MAX, one_line)


def _text(value: str, limit: int) -> str:
    """An untrusted value: one line, at most ``limit`` characters."""
    return fit(value, limit, one_line)


def _custom_details(n: Notification, limit: int) -> dict[str, Any]:
    details: dict[str, Any] = {
        "event": str(n.kind),
        "state_path": n.lock_path,
        "lock_id": n.lock_id,
        "who": n.who,
        "operation": n.operation,
        "terraform_version": n.version,
        "age": n.age,
        "age_basis": n.age_basis,
        "age_seconds": n.age_seconds,
        "created": n.created.isoformat(),
        "workspace": n.workspace,
        "verdict": n.verdict,
        "outcome": n.outcome,
        "rule": n.rule,
        "reasons": [_text(r, limit) for r in n.reasons[:REASONS_MAX]],
        "command": n.force_unlock_command if n.needs_unlock else None,
    }
    return {k: _text(v, limit) if isinstance(v, str) else v for k, v in details.items()}


def render_event(n: Notification) -> dict[str, Any]:
    """The Events API v2 body without the routing key (which :class:`PagerDutyNotifier` adds when sending):
    safe to show in a dry run and to test."""
    action = "resolve" if n.kind in RESOLVE_KINDS else "trigger"
    event: dict[str, Any] = {"event_action": action, "dedup_key": pagerduty_dedup_key(n)}
    if action == "resolve":
        return event  # PagerDuty ignores a payload on resolve
    event["payload"] = {
        "summary": _summary(n),
        "source": _text(f"dynamodb/{n.table}", PAYLOAD_FIELD_MAX),
        "severity": str(n.severity),
        "component": _text(n.lock_path, PAYLOAD_FIELD_MAX),
        "group": _text(n.table, PAYLOAD_FIELD_MAX),
        "class": _text(n.operation, PAYLOAD_FIELD_MAX) or "unknown",
    }
    event["client"] = "tflock-reaper"
    # The size as sent: json.dumps escapes every non-ASCII character, up to 12 bytes for one character. The last
    # limit always fits: some 65 strings of 100 characters.
    for limit in CUSTOM_VALUE_LIMITS:
        event["payload"]["custom_details"] = _custom_details(n, limit)
        if len(json.dumps(event)) <= EVENT_MAX_BYTES:
            break
    return event


class PagerDutyNotifier(WebhookNotifier):
    """Sends :func:`render_event` plus the routing key (the secret) to the Events API v2 at ``url`` (see
    :class:`~tflock_reaper.adapters.channels.webhook.WebhookNotifier` for the options)."""

    service = "PagerDuty Events API"
    credential = "PagerDuty routing key"
    content_type = "application/json"
    accepted = HTTP_SUCCESS  # 202 Accepted is the documented answer
    error_body_max = 300
    default_name = "pagerduty"
    default_url = EVENTS_URL

    def render(self, notification: Notification) -> dict[str, Any]:
        return render_event(notification)

    def request(self, notification: Notification, secret: str) -> tuple[str, dict[str, Any]]:
        return str(self.url), {"routing_key": secret, **render_event(notification)}

    def check(self, secret: str) -> None:
        if not secret:
            raise NotifyError(self.name, "the PagerDuty routing key is empty", retryable=False)
