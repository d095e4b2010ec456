"""Fuzzing the renderers: every notification about every lock the lock model accepts (any ``Created`` from year 1
to 9999 with any offset, hostile, huge and line-forging text in every field a lock-table writer controls) renders
on every channel without raising, within the channel's limits, and with no line that a value could have forged.

The oracle is independent of the code under test: line breaks are what ``str.splitlines()`` splits on, and the
characters no rendered value may hold are listed here by their Unicode categories.
"""

from __future__ import annotations

import json
import shlex
import unicodedata
from typing import Any

from fuzz import notifications
from hypothesis import given
from tflock_reaper.adapters.channels.pagerduty import CUSTOM_VALUE_MAX, DEDUP_KEY_MAX, SUMMARY_MAX, render_event
from tflock_reaper.adapters.channels.slack import (
    BLOCKS_MAX,
    FALLBACK_MAX,
    FIELD_MAX,
    FIELDS_MAX,
    HEADER_MAX,
    SECTION_TEXT_MAX,
    ZWSP,
    render_slack,
)
from tflock_reaper.adapters.channels.sns import JSON_INTRO, MESSAGE_MAX_BYTES, SUBJECT_MAX, render_publish
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.text import human_age

TOPIC = "arn:aws:sns:us-east-1:123456789012:tflock-alerts.fifo"
SNS_MAX_BYTES = 256 * 1024  # message and attributes together
PAGERDUTY_MAX_BYTES = 512 * 1024
PAGERDUTY_FIELD_MAX = 255  # what the renderer promises for source, component, group and class
#: Controls, format (bidi, zero-width) characters, line and paragraph separators, lone surrogates, unassigned.
FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"}
SNS_LABELS = (
    "State path:",
    "Workspace:",
    "Operation:",
    "Who:",
    "Held for:",
    "Terraform version:",
    "Lock ID:",
    "Verdict:",
    "Rule:",
    "Lock table:",
    "Severity:",
    "Reasons:",
    "Deleted item:",
    "Follow-up:",
)


def forbidden(text: str, allowed: str = "") -> set[str]:
    return {ch for ch in text if unicodedata.category(ch) in FORBIDDEN_CATEGORIES and ch not in allowed}


def assert_one_line(text: str) -> None:
    assert len(text.splitlines()) <= 1, text[:200]
    assert not forbidden(text), forbidden(text)


def strings(value: Any) -> list[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def texts(payload: Any) -> list[str]:
    """Every string Slack would interpret: all ``text`` values in the payload, at any depth."""
    if isinstance(payload, dict):
        return [t for k, v in payload.items() for t in ([v] if k == "text" and isinstance(v, str) else texts(v))]
    if isinstance(payload, list):
        return [t for v in payload for t in texts(v)]
    return []


@given(notifications())
def test_slack_renders_every_notification_within_its_limits_and_lines(n: Notification) -> None:
    payload = render_slack(n)
    blocks = payload["blocks"]
    assert len(blocks) <= BLOCKS_MAX
    header, fields = blocks[0]["text"]["text"], blocks[1]["fields"]
    assert len(header) <= HEADER_MAX
    assert_one_line(header.replace(ZWSP, ""))
    assert len(payload["text"]) <= FALLBACK_MAX
    assert_one_line(payload["text"].replace(ZWSP, ""))
    assert len(fields) <= FIELDS_MAX
    for f in fields:
        assert len(f["text"]) <= FIELD_MAX
        label, value = f["text"].split("\n", 1)  # "*Label*\n<value>": the one designed line break
        assert label.startswith("*")
        assert_one_line(value.replace(ZWSP, ""))
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    for text in sections:
        assert len(text) <= SECTION_TEXT_MAX
        assert not forbidden(text, "\n" + ZWSP)
        assert text.count("```") in (0, 2)
    # Line breaks in code blocks come from the renderer's joins only: one per reason, none in a value.
    (reasons,) = [t for t in sections if t.startswith("*Reasons*\n")]
    assert reasons.count("\n") <= max(len(n.reasons), 1)
    assert all(t.count("\n") == 1 for t in sections if not t.startswith("*Reasons*\n"))
    for text in texts(payload):
        assert "<" not in text  # no mention, broadcast or link can be formed
        assert ">" not in text
    assert "UTC" in next(f["text"] for f in fields if f["text"].startswith("*Held for*"))


@given(notifications())
def test_sns_renders_every_notification_within_its_limits_and_lines(n: Notification) -> None:
    request = render_publish(n, TOPIC)
    subject, message = request["Subject"], request["Message"]
    assert len(subject) <= SUBJECT_MAX < 100
    assert all(" " <= ch <= "~" for ch in subject)
    size = len(message.encode("utf-8"))  # strict: no lone surrogate reaches SNS
    assert size <= MESSAGE_MAX_BYTES
    attributes = request["MessageAttributes"]
    assert size + len(json.dumps(attributes).encode()) <= SNS_MAX_BYTES
    for attribute in attributes.values():
        assert attribute["StringValue"]
        assert_one_line(attribute["StringValue"])
    assert len(request["MessageDeduplicationId"]) <= 128
    assert len(request["MessageGroupId"]) <= 128

    # The only line breaks are the renderer's own "\n" (str.splitlines() splits on no other character).
    assert message.splitlines() == message.split("\n")[:-1]
    assert not forbidden(message, "\n")
    body, event_json = message.split(f"\n\n{JSON_INTRO}\n")
    assert json.loads(event_json)["event"] == str(n.kind)
    lines = body.split("\n")
    expected = 15 + len(n.reasons) + 3 * n.needs_unlock + 3 * (n.deleted_item is not None) + 2 * bool(n.follow_up)
    assert len(lines) <= expected
    if not body.endswith("…"):  # not cut to the message size
        assert len(lines) == expected
    for label in SNS_LABELS:  # no value starts a line of its own that reads as one of the renderer's
        assert sum(line.startswith(label) for line in lines) <= 1, label


@given(notifications())
def test_pagerduty_renders_every_notification_within_its_limits_and_lines(n: Notification) -> None:
    event = render_event(n)
    key = event["dedup_key"]
    assert len(key) <= DEDUP_KEY_MAX
    assert_one_line(key)
    if event["event_action"] == "resolve":
        assert set(event) == {"event_action", "dedup_key"}
        return
    assert len(json.dumps(event)) + 100 <= PAGERDUTY_MAX_BYTES  # room for the routing key
    payload = event["payload"]
    assert len(payload["summary"]) <= SUMMARY_MAX
    assert payload["severity"] in {"critical", "error", "warning", "info"}
    for name in ("summary", "source", "component", "group", "class"):
        assert payload[name]
        assert_one_line(payload[name])
    for name in ("source", "component", "group", "class"):
        assert len(payload[name]) <= PAGERDUTY_FIELD_MAX
    for text in strings(payload["custom_details"]):
        assert len(text) <= CUSTOM_VALUE_MAX
        assert_one_line(text)


@given(notifications())
def test_the_event_its_json_and_the_command_are_total_and_one_line(n: Notification) -> None:
    data = n.to_dict()
    event_json = n.to_json()
    assert event_json.isascii()
    assert len(event_json.splitlines()) == 1
    assert json.loads(event_json)["dedup_key"] == data["dedup_key"]
    assert human_age(n.age_seconds)
    command = n.force_unlock_command
    assert_one_line(command)
    if not forbidden(n.lock_id + n.workspace):  # then it is plain POSIX quoting: shlex reads the ID back
        assert shlex.split(command)[-1] == n.lock_id
