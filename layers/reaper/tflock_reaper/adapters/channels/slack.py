"""Slack through an incoming webhook: a Block Kit message, escaped and within Slack's limits.

Escaping. Slack treats ``<...>`` in message text as control sequences (``<!channel>``, ``<@U123>``,
``<!subteam^S1>``, ``<https://x|click>``) and asks senders to escape ``&``, ``<`` and ``>`` as ``&amp;``,
``&lt;`` and ``&gt;``. Every value a lock-table writer controls is escaped that way, ``@channel``,
``@here`` and ``@everyone`` get a zero-width space after the ``@``, and control, format (bidi, zero-width) and
line-separator characters are replaced (:func:`~tflock_reaper.domain.text.one_line`).
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

Delivery (:class:`~tflock_reaper.adapters.channels.webhook.WebhookNotifier`): a ``POST`` of the message (the
payload ``slack_sdk``'s ``WebhookClient`` would send) with bounded retries, within a total deadline. A 429's
``Retry-After`` beyond the cap fails the send now rather than waiting. A timeout is retried too: Slack may then show
the message twice, which beats not showing it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from tflock_reaper.adapters.channels.webhook import WebhookNotifier
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.domain.text import fit, one_line, utc_minutes

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
        _field("Held for", f"{n.held} (since {since})", as_code=False),
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
# Not slack_sdk's WebhookClient: it posts through urllib's ``urlopen`` with a timeout per socket read, and takes no
# opener, handler or transport of ours (it builds an opener only for a proxy URL), so nothing bounds a whole send:
# a webhook stand-in that drips its answer held a sweep for as long as it liked. The payload is the one
# ``WebhookClient.send_dict`` posts (the message as JSON, ``Content-Type: application/json;charset=utf-8``), sent
# through the deadline-bound urllib3 transport that the PagerDuty notifier and the holder checks use too.
def secret_parts(url: str) -> tuple[str, ...]:
    """What of a webhook URL is secret: all of it, its path (a server or proxy may echo the path alone), and each
    long path segment (Slack's ``/services/T…/B…/<token>``: the token alone identifies the webhook)."""
    path = urlsplit(url).path
    segments = [segment for segment in path.split("/") if len(segment) >= SECRET_SEGMENT_MIN]
    return tuple(part for part in (url, path, *segments) if part and part != "/")


class SlackNotifier(WebhookNotifier):
    """Posts :func:`render_slack` to an incoming webhook, whose URL is the secret (see
    :class:`~tflock_reaper.adapters.channels.webhook.WebhookNotifier` for the options)."""

    service = "Slack webhook"
    credential = "Slack webhook URL"
    content_type = "application/json;charset=utf-8"
    accepted = frozenset({HTTP_OK})
    error_body_max = 200
    give_up_beyond_cap = True
    default_name = "slack"

    def render(self, notification: Notification) -> dict[str, Any]:
        return render_slack(notification)

    def request(self, notification: Notification, secret: str) -> tuple[str, dict[str, Any]]:
        return secret, render_slack(notification)

    def check(self, secret: str) -> None:
        if not secret.lower().startswith(("https://", "http://")):
            raise NotifyError(self.name, "the Slack webhook URL is not an http(s) URL", retryable=False)

    def secret_parts(self, secret: str) -> tuple[str, ...]:
        return secret_parts(secret)
