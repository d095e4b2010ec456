"""Slack through an incoming webhook: a Block Kit message, escaped and within Slack's limits.

Escaping. Slack treats ``<...>`` in message text as control sequences (``<!channel>``, ``<@U123>``,
``<!subteam^S1>``, ``<https://x|click>``) and asks senders to escape ``&``, ``<`` and ``>`` as ``&amp;``,
``&lt;`` and ``&gt;``. Every value a lock-table writer controls is escaped that way, ``@channel``,
``@here`` and ``@everyone`` get a zero-width space after the ``@``, and control, format (bidi, zero-width) and
line-separator characters are replaced (:func:`~tflock_reaper.notify.text.one_line`).
Untrusted values are then shown inside inline code (``Who``, path, ...) or a code block (reasons, the deleted
item), where Slack applies no bold/italic/strike formatting and makes no links; a backtick inside a value,
which would close the span, is replaced by a look-alike (U+02CB), and a triple backtick in a code block is
broken with zero-width spaces. A code block's lines come from trusted joins only: each untrusted value is made
one line first, so that none can start a line of its own. Outside code (header, fallback text), ``://`` gets a
zero-width space so that no URL is turned into a link. Every mrkdwn object is also sent with ``verbatim: true``,
which turns off Slack's automatic linking of URLs and channel names and its parsing of bare mentions.

Limits (Block Kit reference): header text 150 characters, section text 3000, each field 2000, at most 10
fields per section and 50 blocks per message; the fallback ``text`` is kept under 4000. Values are cut
*before* escaping, so an entity is never cut in half.

Delivery. ``slack_sdk``'s :class:`~slack_sdk.webhook.WebhookClient` with retry handlers: a 429 waits for
``Retry-After`` (capped), 5xx and connection errors or timeouts back off exponentially, and all handlers share
one attempt counter, so at most ``max_attempts`` requests are made per notification. A timeout is retried
too: Slack may then show the message twice, which beats not showing it.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from http.client import RemoteDisconnected
from typing import Any
from urllib.error import URLError
from urllib.parse import urlsplit

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.jitter import Jitter
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.webhook import WebhookClient

from tflock_reaper.notify.base import HTTP_SERVER_ERRORS, HTTP_TOO_MANY_REQUESTS, NotifyError, retryable_status
from tflock_reaper.notify.events import Notification
from tflock_reaper.notify.text import fit, one_line, redact, utc_minutes

HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
BLOCKS_MAX = 50
FALLBACK_MAX = 4000
HTTP_OK = 200
#: Path segments at least this long are treated as secret (Slack's webhook token is 24 characters).
SECRET_SEGMENT_MIN = 8

ZWSP = "\u200b"
_BROADCAST = re.compile(r"@(?=(?:channel|here|everyone)\b)", re.IGNORECASE)
_BACKTICK_LOOKALIKE = "\u02cb"


# -- escaping -------------------------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Slack's required escaping (``&``, ``<``, ``>``), broadcast words neutralised, unsafe characters (line
    breaks, controls, bidi and other format characters) replaced. Safe for any mrkdwn or plain_text field; code
    spans need :func:`code` on top."""
    escaped = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BROADCAST.sub("@" + ZWSP, escaped)


def escape_prose(text: str) -> str:
    """:func:`escape`, and no automatic links either: for untrusted text outside code spans."""
    return escape(text).replace("://", ":" + ZWSP + "//")


def code(text: str) -> str:
    """An untrusted value as inline code: escaped, no formatting, no links."""
    return "`" + escape(text).replace("`", _BACKTICK_LOOKALIKE) + "`"


def _code_block_body(text: str) -> str:
    # Only code_block's own joins put a "\n" in ``text``: each line is escaped on its own.
    lines = [escape(line) for line in text.split("\n")]
    return "\n".join(lines).replace("```", f"`{ZWSP}`{ZWSP}`")


def code_block(lines: Sequence[str], limit: int, prefix: str = "") -> str:
    """``prefix`` (trusted mrkdwn) followed by ``lines`` as a code block, at most ``limit`` characters.

    Each line is made one line first (:func:`one_line`): an untrusted value cannot add a line of its own.
    """
    text = "\n".join(one_line(line) for line in lines)
    return fit(text, limit, lambda t: f"{prefix}```{_code_block_body(t)}```")


# -- rendering ------------------------------------------------------------------------------------------------
# ``verbatim``: Slack then does no preprocessing of mrkdwn text (no automatic links to URLs or #channels, no
# parsing of bare @mentions): a second wall behind the escaping.
def _field(label: str, value: str, *, as_code: bool = True) -> dict[str, Any]:
    prefix = f"*{label}*\n"
    render = (lambda v: prefix + code(v)) if as_code else (lambda v: prefix + escape_prose(v))
    return {"type": "mrkdwn", "text": fit(value, FIELD_MAX, render), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}


def _fields(n: Notification) -> list[dict[str, Any]]:
    since = utc_minutes(n.created)
    fields = [
        _field("State path", n.lock_path),
        _field("Workspace", n.workspace),
        _field("Operation", n.operation or "(none)"),
        _field("Who", n.who or "(empty)"),
        _field("Held for", f"{n.age} (since {since})", as_code=False),
        _field("Terraform version", n.version or "(none)"),
        _field("Verdict", f"{n.verdict} → {n.outcome}", as_code=False),
        _field("Rule", n.rule),
        _field("Lock ID", n.lock_id),
        _field("Lock table", n.table),
    ]
    return fields[:FIELDS_MAX]


def fallback_text(n: Notification) -> str:
    """The notification text (push notifications, screen readers): escaped, without links, under 4000."""
    operation = n.operation or "(no operation)"
    who = n.who or "(unknown)"
    raw = f"{n.title}: {n.lock_path} ({operation} by {who}, held {n.age})"
    return fit(raw, FALLBACK_MAX, escape_prose)


def render_slack(n: Notification) -> dict[str, Any]:
    """The webhook payload: ``text`` (fallback) and ``blocks``. Pure: no network, no secrets."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": fit(f"{n.title}: {n.state_key}", HEADER_MAX, escape_prose)},
        },
        {"type": "section", "fields": _fields(n)},
    ]
    reasons = [f"• {reason}" for reason in n.reasons] or ["(none given)"]
    blocks.append(_section(code_block(reasons, SECTION_TEXT_MAX, "*Reasons*\n")))
    if n.needs_unlock:
        blocks.append(
            _section(
                code_block(
                    [n.force_unlock_command],
                    SECTION_TEXT_MAX,
                    "*To release it by hand*, from the root module that uses this state "
                    "(`tofu` instead of `terraform` with OpenTofu):\n",
                )
            )
        )
    if n.deleted_item is not None:
        item = json.dumps(n.deleted_item, separators=(",", ":"), sort_keys=True, default=str)
        blocks.append(_section(code_block([item], SECTION_TEXT_MAX, "*Deleted item*\n")))
    if n.follow_up:
        blocks.append(_section(fit(n.follow_up, SECTION_TEXT_MAX, lambda t: "*Follow-up*\n" + escape_prose(t))))
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"tflock-reaper · event `{n.kind}` · severity {n.severity}",
                    "verbatim": True,
                },
            ],
        }
    )
    return {
        "text": fallback_text(n),
        "blocks": blocks[:BLOCKS_MAX],
        "unfurl_links": False,
        "unfurl_media": False,
    }


# -- delivery -------------------------------------------------------------------------------------------------
def _retry_after_seconds(headers: dict[str, list[str] | str]) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent or unreadable."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    value = raw if isinstance(raw, str) or raw is None else next(iter(raw), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


class _HalfJitter(Jitter):
    """Between half and all of the backoff (slack_sdk's RandomJitter adds up to a whole second to each)."""

    def recalculate(self, duration: float) -> float:
        return duration * (0.5 + random.random() / 2)  # noqa: S311 - spreading retries, not cryptography


class _RateLimitHandler(RateLimitErrorRetryHandler):
    """429: wait exactly what ``Retry-After`` asks (slack_sdk's own handler adds up to 1 s of jitter and
    fails on an HTTP date), but never longer than ``max_wait``: a longer wait fails the send instead, so
    that a sweep is never parked for an hour."""

    def __init__(self, max_retry_count: int, max_wait: float, interval: BackoffRetryIntervalCalculator) -> None:
        super().__init__(max_retry_count=max_retry_count, interval_calculator=interval)
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != HTTP_TOO_MANY_REQUESTS:
            return False
        wait = _retry_after_seconds(response.headers)
        return wait is None or wait <= self.max_wait

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        wait = _retry_after_seconds(response.headers) if response is not None else None
        if wait is None:
            wait = self.interval_calculator.calculate_sleep_duration(state.current_attempt)
        state.next_attempt_requested = True
        time.sleep(wait)
        state.increment_current_attempt()


class _ServerErrorHandler(ServerErrorRetryHandler):
    """Every 5xx (slack_sdk's handler retries 500 and 503 only)."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code in HTTP_SERVER_ERRORS


def secret_parts(url: str) -> tuple[str, ...]:
    """What of a webhook URL is secret: all of it, its path (a server or proxy may echo the path alone), and each
    long path segment (Slack's ``/services/T…/B…/<token>``: the token alone identifies the webhook)."""
    path = urlsplit(url).path
    segments = [segment for segment in path.split("/") if len(segment) >= SECRET_SEGMENT_MIN]
    return tuple(part for part in (url, path, *segments) if part and part != "/")


#: Every webhook's secret parts this process has used, for the filter below (a handful of strings).
_SECRETS: set[str] = set()


class _RedactUrls(logging.Filter):
    """slack_sdk logs the request URL (the webhook secret) in some messages, and at DEBUG the response body, which
    may echo it: remove every URL's path and every webhook's secret parts."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), *_SECRETS)
        record.args = None
        return True


# slack_sdk logs the full URL at DEBUG/INFO when its logger's own level is NOTSET or DEBUG; this logger's level
# keeps those calls off, and the filter redacts what is left (its ERROR line on connection failures).
_sdk_logger = logging.getLogger(f"{__name__}.sdk")
_sdk_logger.setLevel(logging.WARNING)
_sdk_logger.addFilter(_RedactUrls())


class SlackNotifier:
    """Posts :func:`render_slack` to an incoming webhook.

    ``webhook_url_provider`` is called on every send (cheap when it is a cached Powertools Parameters lookup),
    so that a rotated secret is picked up; its value never appears in logs or errors. ``timeout`` applies to
    each attempt's connect and each read; at most ``max_attempts`` attempts are made, separated by
    ``Retry-After`` (at most ``max_retry_after`` seconds) or an exponential backoff from ``backoff`` seconds.
    """

    def __init__(
        self,
        webhook_url_provider: Callable[[], str],
        *,
        name: str = "slack",
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._url_provider = webhook_url_provider
        self._name = name
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after

    @property
    def name(self) -> str:
        return self._name

    def render(self, notification: Notification) -> dict[str, Any]:
        return render_slack(notification)

    def _retry_handlers(self) -> list[RetryHandler]:
        # One shared RetryState counts attempts across handlers: each may retry while the total is under
        # max_attempts - 1 retries.
        retries = self.max_attempts - 1
        interval = BackoffRetryIntervalCalculator(backoff_factor=self.backoff, jitter=_HalfJitter())
        return [
            _RateLimitHandler(retries, self.max_retry_after, interval),
            _ServerErrorHandler(max_retry_count=retries, interval_calculator=interval),
            ConnectionErrorRetryHandler(
                max_retry_count=retries,
                interval_calculator=interval,
                error_types=[URLError, ConnectionError, RemoteDisconnected, TimeoutError],
            ),
        ]

    def _url(self) -> str:
        try:
            url = self._url_provider().strip()
        except Exception as err:  # noqa: BLE001 - any failure to fetch the secret is a failed send
            raise NotifyError(
                self.name, f"cannot read the Slack webhook URL: {type(err).__name__}", retryable=True
            ) from None
        if not url.lower().startswith(("https://", "http://")):
            raise NotifyError(self.name, "the Slack webhook URL is not an http(s) URL", retryable=False)
        _SECRETS.update(secret_parts(url))
        return url

    def send(self, notification: Notification) -> None:
        url = self._url()
        client = WebhookClient(
            url,
            # urllib takes float seconds; slack_sdk annotates int.
            timeout=self.timeout,  # type: ignore[arg-type]
            retry_handlers=self._retry_handlers(),
            logger=_sdk_logger,
        )
        try:
            response = client.send_dict(render_slack(notification))
        except Exception as err:  # noqa: BLE001 - urllib raises many types; the cause may hold the URL
            detail = redact(f"{type(err).__name__}: {err}", *secret_parts(url))
            raise NotifyError(
                self.name,
                f"Slack webhook unreachable (after up to {self.max_attempts} attempts): {detail}",
                retryable=True,
            ) from None
        if response.status_code == HTTP_OK:
            return
        # Redacted whole, then cut: a cut first could leave half a secret that no longer matches.
        body = redact(str(response.body or ""), *secret_parts(url))[:200]
        raise NotifyError(
            self.name,
            f"Slack webhook answered HTTP {response.status_code}: {body or '(empty body)'}",
            retryable=retryable_status(response.status_code),
        )
