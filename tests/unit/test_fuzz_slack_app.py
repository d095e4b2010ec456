"""Fuzzing the Slack app's renderer: every notification about every lock the lock model accepts (``tests/fuzz.py``),
shown in any state the message can reach, renders within Block Kit's limits (as the loopback stand-in checks them),
with no mention, broadcast or link, and its thread reply is one short line; the buttons always carry a value that
names the acquisition."""

from __future__ import annotations

import unicodedata

from fuzz import notifications
from hypothesis import given
from hypothesis import strategies as st
from slack_api import block_problems
from tflock_reaper.adapters.channels.slack import ZWSP
from tflock_reaper.adapters.channels.slack_app import REPLY_MAX, headline, render_message, thread_reply
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.slack_actions import ButtonValue

FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Cn"}
SHOWN = st.one_of(st.none(), st.sampled_from([k.value for k in NotificationKind]))


def _texts(payload: object) -> list[str]:
    if isinstance(payload, dict):
        return [t for k, v in payload.items() for t in ([v] if k == "text" and isinstance(v, str) else _texts(v))]
    if isinstance(payload, list):
        return [t for v in payload for t in _texts(v)]
    return []


@given(notifications(), SHOWN)
def test_the_message_renders_every_notification_in_every_state_within_block_kits_limits(
    n: Notification, shown: str | None
) -> None:
    state = headline(n.kind, shown)
    payload = render_message(n, channel="C0TFLOCK01", state=state)
    assert block_problems(payload["blocks"]) == []
    assert len(payload["text"]) <= 4000
    header = payload["blocks"][0]["text"]["text"]
    assert len(header.replace(ZWSP, "").splitlines()) == 1
    for text in _texts(payload):
        assert "<" not in text
        assert ">" not in text
    for block in payload["blocks"]:
        if block["type"] == "actions":
            value = ButtonValue.decode(block["block_id"])
            assert value.info_digest == n.info_digest


@given(notifications(), SHOWN)
def test_the_thread_reply_is_one_short_line(n: Notification, shown: str | None) -> None:
    reply = thread_reply(n, previous=shown, state=headline(n.kind, shown))
    assert len(reply) <= REPLY_MAX
    assert len(reply.splitlines()) == 1
    assert not {ch for ch in reply if unicodedata.category(ch) in FORBIDDEN_CATEGORIES and ch != ZWSP}
    assert "<" not in reply
    assert ">" not in reply
