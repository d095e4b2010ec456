"""SNS: one message per event, readable as an e-mail, with the event's JSON and filterable attributes.

Subscribers filter on the message attributes ``event``, ``severity``, ``state_path`` and ``operation``
(all ``String``). SNS refuses empty attribute values, so an empty operation is sent as ``(none)``. The subject
(used by e-mail subscriptions) must be ASCII without line breaks and under 100 characters: non-ASCII
characters become ``?`` and it is cut with ``...``. A FIFO topic (``.fifo``) also gets a message group per
lock and a deduplication ID per event, so SNS itself drops a repeat within its 5-minute window.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from tflock_reaper.dal.errors import describe
from tflock_reaper.notify.base import NotifyError
from tflock_reaper.notify.events import Notification, NotificationKind
from tflock_reaper.notify.text import fit, one_line

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

SUBJECT_MAX = 99  # "less than 100 characters"
ATTRIBUTE_VALUE_MAX = 1024  # ours, not SNS's: enough for a filter, and keeps the message small
#: SNS messages (body and attributes) are limited to 256 KiB; the body is kept well under that.
MESSAGE_MAX_BYTES = 200 * 1024
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


def _body_text(n: Notification) -> str:
    lines = [
        f"{n.title}: {one_line(n.lock_path)}",
        "",
        f"State path:         {one_line(n.lock_path)}",
        f"Workspace:          {one_line(n.workspace)}",
        f"Operation:          {one_line(n.operation) or '(none)'}",
        f"Who:                {one_line(n.who) or '(empty)'}",
        f"Held for:           {n.age} (Created {n.created.isoformat()})",
        f"Terraform version:  {one_line(n.version) or '(none)'}",
        f"Lock ID:            {one_line(n.lock_id)}",
        f"Verdict:            {one_line(n.verdict)} -> {one_line(n.outcome)}",
        f"Rule:               {one_line(n.rule)}",
        f"Lock table:         {one_line(n.table)}",
        f"Severity:           {n.severity}",
        "",
        "Reasons:",
        *(f"  - {one_line(reason)}" for reason in n.reasons),
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


def render_message(n: Notification) -> str:
    """A readable body, then a line saying that the JSON follows, then the event's JSON on one line."""
    event_json = n.to_json()
    if len(event_json.encode()) > MESSAGE_MAX_BYTES // 2:  # a huge item: keep the message deliverable
        data = n.to_dict()
        data["deleted_item"] = "(omitted: too large for SNS; see the reaper's state table)"
        data["reasons"] = [fit(r, 2000) for r in n.reasons[:50]]
        data["who"], data["lock_path"] = fit(n.who, 2000), fit(n.lock_path, 2000)
        event_json = json.dumps(data, sort_keys=True, default=str)
    text = _body_text(n)
    budget = MESSAGE_MAX_BYTES - len(event_json.encode()) - len(JSON_INTRO) - 8
    encoded = text.encode()
    if len(encoded) > budget:  # cut at a character boundary of the UTF-8 encoding
        text = encoded[: max(budget - 3, 0)].decode("utf-8", "ignore") + "…"
    return f"{text}\n\n{JSON_INTRO}\n{event_json}\n"


def _attribute(value: str) -> dict[str, str]:
    return {"DataType": "String", "StringValue": fit(one_line(value), ATTRIBUTE_VALUE_MAX) or "(none)"}


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
        request["MessageGroupId"] = hashlib.sha256(n.lock_path.encode()).hexdigest()[:64]
        request["MessageDeduplicationId"] = hashlib.sha256(n.dedup_key.encode()).hexdigest()
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
