"""PagerDuty Events API v2: ``trigger`` while a lock is stale, ``resolve`` when it is released or reaped.

The ``dedup_key`` is per lock acquisition (``tflock-reaper/<lock path>/<lock ID>``), not per event: ``stale``,
``still_stale`` and ``reap_blocked`` update one incident, and ``resolved``/``reaped`` close it. PagerDuty limits
the key to 255 characters; a longer one, or one with a character :func:`~tflock_reaper.domain.text.one_line`
would replace (a newline, a bidi override in the lock ID), is replaced by a SHA-256 of it (still one key per
acquisition). Every other untrusted value (summary, source, component, class, custom details) is made one line
and cut to its limit, and the custom details shrink until the event is within PagerDuty's 512 KB.

HTTP through urllib3 (already in the Lambda runtime with botocore): bounded retries on 429 and 5xx that honour
``Retry-After`` (capped) and otherwise back off exponentially, and on connection errors and timeouts.
Retrying a POST is safe here: PagerDuty folds events with one ``dedup_key`` into one alert. The routing key
travels only in the request body: it is never logged nor put in an error.

Time: ``timeout`` bounds each connect and each read; a whole send, every attempt and wait included, ends
within ``total`` seconds or what is left of the sweep's :class:`~tflock_reaper.domain.deadline.Budget`, whichever is
sooner (:mod:`tflock_reaper.adapters.outbound`): an endpoint that drips its answer is cut off there, and a retry whose
wait would not fit is not made. Once the budget is spent, a send fails at once (retryably), without a request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from urllib3.exceptions import HTTPError as Urllib3Error

from tflock_reaper.adapters.outbound import MIN_ATTEMPT_SECONDS, DeadlineExceededError, DeadlinePool, DeadlineRetry
from tflock_reaper.domain.deadline import UNBOUNDED, Budget, Deadline
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.notifier import HTTP_SERVER_ERRORS, HTTP_TOO_MANY_REQUESTS, NotifyError, retryable_status
from tflock_reaper.domain.text import fit, one_line, redact

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


class PagerDutyNotifier:
    """Sends :func:`render_event` plus the routing key to the Events API v2.

    ``routing_key_provider`` is called on every send (a cached Powertools Parameters lookup in the Lambda).
    ``timeout`` bounds each connect and each read; at most ``max_attempts`` attempts are made, all within
    ``total`` seconds and the ``budget``'s time left. ``Retry-After`` is waited for up to ``max_retry_after``.
    """

    def __init__(
        self,
        routing_key_provider: Callable[[], str],
        *,
        url: str = EVENTS_URL,
        name: str = "pagerduty",
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        total: float = 15.0,
        budget: Budget = UNBOUNDED,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._routing_key_provider = routing_key_provider
        self.url = url
        self._name = name
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.total = total
        self.budget = budget
        self._http = DeadlinePool()

    @property
    def name(self) -> str:
        return self._name

    def render(self, notification: Notification) -> dict[str, Any]:
        return render_event(notification)

    def _retry(self, deadline: Deadline) -> DeadlineRetry:
        return DeadlineRetry.within(
            deadline,
            max_retry_after=self.max_retry_after,
            total=self.max_attempts - 1,
            connect=self.max_attempts - 1,
            read=self.max_attempts - 1,
            status=self.max_attempts - 1,
            redirect=False,
            status_forcelist=frozenset({HTTP_TOO_MANY_REQUESTS, *HTTP_SERVER_ERRORS}),
            allowed_methods=frozenset({"POST"}),
            backoff_factor=self.backoff,
            respect_retry_after_header=True,
            raise_on_status=False,
        )

    def _routing_key(self) -> str:
        try:
            key = self._routing_key_provider().strip()
        except Exception as err:  # noqa: BLE001 - any failure to fetch the secret is a failed send
            raise NotifyError(
                self.name, f"cannot read the PagerDuty routing key: {type(err).__name__}", retryable=True
            ) from None
        if not key:
            raise NotifyError(self.name, "the PagerDuty routing key is empty", retryable=False)
        return key

    def send(self, notification: Notification) -> None:
        if self.budget.spent(at_least=MIN_ATTEMPT_SECONDS):
            raise NotifyError(self.name, "not sent: no time left in this sweep for outbound requests", retryable=True)
        key = self._routing_key()
        body = {"routing_key": key, **render_event(notification)}
        deadline = self.budget.deadline(self.total)
        try:
            response = self._http.request(
                "POST",
                self.url,
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                deadline=deadline,
                timeout=self.timeout,
                retries=self._retry(deadline),
            )
        except DeadlineExceededError as err:
            raise NotifyError(self.name, f"PagerDuty Events API unreachable: {err}", retryable=True) from None
        except Urllib3Error as err:
            reason = getattr(err, "reason", None) or err
            detail = redact(f"{type(reason).__name__}: {reason}", key)
            raise NotifyError(
                self.name,
                f"PagerDuty Events API unreachable (after up to {self.max_attempts} attempts): {detail}",
                retryable=True,
            ) from None
        if response.status in HTTP_SUCCESS:  # 202 Accepted is the documented answer
            return
        # Redacted whole, then cut: a cut first could leave half a key that no longer matches.
        text = redact(response.data.decode("utf-8", "replace"), key)[:300]
        raise NotifyError(
            self.name,
            f"PagerDuty Events API answered HTTP {response.status}: {one_line(text) or '(empty body)'}",
            retryable=retryable_status(response.status),
        )
