"""SNS: one message per event, readable as an e-mail, with the event's JSON and filterable attributes.

Subscribers filter on the message attributes ``event``, ``severity``, ``state_path`` and ``operation``
(all ``String``). SNS refuses empty attribute values, so an empty operation is sent as ``(none)``. The subject
(used by e-mail subscriptions) must be ASCII without line breaks and under 100 characters: non-ASCII
characters become ``?`` and it is cut with ``...``. A FIFO topic (``.fifo``) also gets a message group per
lock and a deduplication ID per event, so SNS itself drops a repeat within its 5-minute window.

The body is split into lines by whoever reads it (a mail client, ``str.splitlines()``): every untrusted value is
made one line (:func:`~tflock_reaper.domain.text.one_line` replaces U+2028, NEL and bidi controls as well as
newlines) and cut to :data:`BODY_VALUE_MAX`, so that no value can forge a line. The event's JSON is ASCII (every
other character escaped), so it is one line too, and it is cut down to fit half the message when an item is huge.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.adapters.errors import describe
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.domain.text import fit, one_line

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SUBJECT_MAX = 99  # "less than 100 characters"
ATTRIBUTE_VALUE_MAX = 1024  # ours, not SNS's: enough for a filter, and keeps the message small
#: SNS messages (body and attributes) are limited to 256 KiB; the body is kept well under that.
MESSAGE_MAX_BYTES = 200 * 1024
#: Each untrusted value in the readable body is cut to this many characters.
BODY_VALUE_MAX = 2000
#: A huge event's JSON: every string is cut to the first of these lengths that fits half the message.
JSON_VALUE_LIMITS = (2000, 500, 100)
JSON_REASONS_MAX = 50
UNLOCK_INTRO = (
    "To release it by hand, from the root module that uses this state (tofu instead of terraform with OpenTofu):"
)
JSON_INTRO = "The event as JSON (for programs) follows this line."

SUBJECT_LABELS: dict[NotificationKind, str] = {
    NotificationKind.STALE: "stale lock",
    NotificationKind.STILL_STALE: "lock still stale",
    NotificationKind.REAP_BLOCKED: "stale lock, reap blocked",
    NotificationKind.REAPED: "lock reaped",
    NotificationKind.RESOLVED: "lock released",
    NotificationKind.UNREADABLE_LOCK: "unreadable lock, never reaped",
}

# Error codes a later attempt can get past: throttling and AWS-side failures.
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "KMSThrottlingException",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


def _ascii(text: str) -> str:
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text)


def render_subject(n: Notification) -> str:
    subject = _ascii(f"[tflock-reaper] {SUBJECT_LABELS[n.kind]}: {n.lock_path}")
    return subject if len(subject) <= SUBJECT_MAX else subject[: SUBJECT_MAX - 3] + "..."


def _value(text: str) -> str:
    """An untrusted value for the body: one line, at most :data:`BODY_VALUE_MAX` characters."""
    return fit(text, BODY_VALUE_MAX, one_line)


def _body_text(n: Notification) -> str:
    lines = [
        f"{n.title}: {_value(n.lock_path)}",
        "",
        f"State path:         {_value(n.lock_path)}",
        f"Workspace:          {_value(n.workspace)}",
        f"Operation:          {_value(n.operation) or '(none)'}",
        f"Who:                {_value(n.who) or '(empty)'}",
        f"Held for:           {n.held} (Created {n.created.isoformat()})",
        f"Terraform version:  {_value(n.version) or '(none)'}",
        f"Lock ID:            {_value(n.lock_id)}",
        f"Verdict:            {_value(n.verdict)} -> {_value(n.outcome)}",
        f"Rule:               {_value(n.rule)}",
        f"Lock table:         {_value(n.table)}",
        f"Severity:           {n.severity}",
        "",
        "Reasons:",
        *(f"  - {_value(reason)}" for reason in n.reasons),
    ]
    if n.needs_unlock:
        lines += [
            "",
            UNLOCK_INTRO,
            f"  {one_line(n.force_unlock_command)}",
        ]
    if n.deleted_item is not None:
        item = json.dumps(n.deleted_item, separators=(",", ":"), sort_keys=True, default=str)
        lines += ["", "Deleted item:", f"  {one_line(item)}"]
    if n.follow_up:
        lines += ["", f"Follow-up: {n.follow_up}"]
    return "\n".join(lines)


def _event_json(n: Notification) -> str:
    """The event as one line of ASCII JSON (``json.dumps`` escapes every other character, U+2028 included), at
    most half of :data:`MESSAGE_MAX_BYTES`: for a huge item, without the deleted item and with every string cut."""
    event_json = n.to_json()
    if len(event_json) <= MESSAGE_MAX_BYTES // 2:  # ASCII: one byte per character
        return event_json
    data = n.to_dict()
    data["deleted_item"] = "(omitted: too large for SNS; see the reaper's state table)"
    for limit in JSON_VALUE_LIMITS:  # the last always fits: some 70 strings of 100 characters, 12 bytes each at most
        cut = {key: fit(value, limit) if isinstance(value, str) else value for key, value in data.items()}
        cut["reasons"] = [fit(reason, limit) for reason in n.reasons[:JSON_REASONS_MAX]]
        event_json = json.dumps(cut, sort_keys=True, default=str)
        if len(event_json) <= MESSAGE_MAX_BYTES // 2:
            break
    return event_json


def render_message(n: Notification) -> str:
    """A readable body, then a line saying that the JSON follows, then the event's JSON on one line."""
    event_json = _event_json(n)
    text = _body_text(n)
    budget = MESSAGE_MAX_BYTES - len(event_json.encode()) - len(JSON_INTRO) - 8
    encoded = text.encode()
    if len(encoded) > budget:  # cut at a character boundary of the UTF-8 encoding
        text = encoded[: max(budget - 3, 0)].decode("utf-8", "ignore") + "…"
    return f"{text}\n\n{JSON_INTRO}\n{event_json}\n"


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": fit(value, ATTRIBUTE_VALUE_MAX, one_line) or "(none)"}


def render_publish(n: Notification, topic_arn: str) -> dict[str, Any]:
    """The ``Publish`` request: pure, so that it can be shown (dry run) and tested."""
    request: dict[str, Any] = {
        "TopicArn": topic_arn,
        "Subject": render_subject(n),
        "Message": render_message(n),
        "MessageAttributes": {
            "event": _attribute(str(n.kind)),
            "severity": _attribute(str(n.severity)),
            "state_path": _attribute(n.lock_path),
            "operation": _attribute(n.operation),
        },
    }
    if topic_arn.endswith(".fifo"):
        # surrogatepass: a value the lock model accepts may hold a lone surrogate, which UTF-8 cannot encode.
        request["MessageGroupId"] = hashlib.sha256(n.lock_path.encode("utf-8", "surrogatepass")).hexdigest()[:64]
        request["MessageDeduplicationId"] = hashlib.sha256(n.dedup_key.encode("utf-8", "surrogatepass")).hexdigest()
    return request


class SnsNotifier:
    """Publishes :func:`render_publish` to ``topic_arn``. The client is made on first use (never at import)."""

    def __init__(self, client_factory: Callable[[], SNSClient], topic_arn: str, *, name: str = "sns") -> None:
        self._client_factory = client_factory
        self._client: SNSClient | None = None
        self.topic_arn = topic_arn
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    def render(self, notification: Notification) -> dict[str, Any]:
        return render_publish(notification, self.topic_arn)

    def send(self, notification: Notification) -> None:
        request = render_publish(notification, self.topic_arn)
        try:
            if self._client is None:
                self._client = self._client_factory()
            self._client.publish(**request)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            raise NotifyError(
                self.name, f"publish to {self.topic_arn} failed: {describe(err)}", retryable=code in RETRYABLE_CODES
            ) from err
        except BotoCoreError as err:  # endpoint unreachable, timeouts, credentials not found yet
            raise NotifyError(
                self.name, f"publish to {self.topic_arn} failed: {describe(err)}", retryable=True
            ) from err
