"""The Slack app's message, buttons and thread replies (pure rendering): states, escaping, Block Kit's limits."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from notify_factories import HOSTILE, LOCK_ID, lock_record, notification
from slack_api import block_problems
from tflock_reaper.adapters.channels.slack_app import (
    HOLD_BLOCK_ID,
    REPLY_MAX,
    SlackAppNotifier,
    button_value,
    headline,
    hold_block,
    hold_text,
    render_message,
    thread_reply,
    with_holds,
)
from tflock_reaper.adapters.slack_messages import MemorySlackMessages
from tflock_reaper.adapters.state_table import _key as acquisition_key
from tflock_reaper.domain.holds import Hold, HoldKind
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor

K = NotificationKind
CHANNEL = "C0TFLOCK01"
TOKEN = "xoxb-1-2-NeVeRsHoWnNeVeRsHoWn"
KINDS = ("stale", "still_stale", "reap_blocked", "reaped", "resolved")


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for b in payload["blocks"] if b["type"] == "actions"]


@pytest.mark.parametrize(
    ("kind", "shown", "expected"),
    [
        (K.STALE, None, K.STALE),
        (K.STILL_STALE, "stale", K.STILL_STALE),
        (K.STILL_STALE, "reap_blocked", K.REAP_BLOCKED),  # a reminder does not make a blocked lock look milder
        (K.STALE, "still_stale", K.STILL_STALE),  # a late first alert neither
        (K.REAP_BLOCKED, "still_stale", K.REAP_BLOCKED),
        (K.RESOLVED, "reap_blocked", K.RESOLVED),
        (K.REAPED, "stale", K.REAPED),
        (K.STALE, "not-a-state", K.STALE),
    ],
)
def test_the_message_shows_the_most_serious_state_reached(kind, shown, expected):
    assert headline(kind, shown) is expected


@pytest.mark.parametrize("kind", KINDS)
def test_the_buttons_are_there_while_the_lock_is_held_and_gone_once_final(kind):
    payload = render_message(notification(kind), channel=CHANNEL)
    assert payload["channel"] == CHANNEL
    assert (payload["unfurl_links"], payload["unfurl_media"]) == (False, False)
    assert bool(_actions(payload)) is (kind not in ("reaped", "resolved"))
    assert block_problems(payload["blocks"]) == []
    final = render_message(notification("still_stale", sequence=1), channel=CHANNEL, state=K.RESOLVED)
    assert not _actions(final)


def test_an_unreadable_lock_has_no_buttons():
    from tflock_reaper.domain.notification import Notification  # noqa: PLC0415

    n = Notification.for_unreadable(
        "tf-state/x.tfstate",
        reason="bad JSON",
        item={"LockID": {"S": "tf-state/x.tfstate"}},
        scope="s",
        table="t",
        rule="defaults",
        seen=notification().created,
        workspace="default",
    )
    payload = render_message(n, channel=CHANNEL)
    assert not _actions(payload)
    assert payload["blocks"][0]["text"]["text"].startswith(":red_circle: Unreadable Terraform lock")


def test_the_buttons_carry_the_acquisitions_keys_and_the_digest_of_its_raw_info():
    lock = lock_record(lock_id=LOCK_ID)
    n = notification("stale", lock_id=LOCK_ID)
    assert n.info_digest == hashlib.sha256(lock.raw_info.encode()).hexdigest()
    key = acquisition_key(lock.scope, lock.lock_path, lock.lock_id)
    assert button_value(n) == ButtonValue(key["pk"]["S"], key["sk"]["S"], n.info_digest)

    (actions,) = _actions(render_message(n, channel=CHANNEL))
    reap, snooze, mine = actions["elements"]
    assert [e["action_id"] for e in actions["elements"]] == [a.value for a in SlackAction]
    assert ButtonValue.decode(reap["value"]) == ButtonValue.decode(mine["value"]) == button_value(n)
    assert actions["block_id"] == reap["value"]  # Snooze's menu: the acquisition is the block's
    assert [o["value"] for o in snooze["options"]] == [s.value for s in SnoozeFor]
    assert reap["style"] == "danger"
    assert reap["confirm"]["style"] == "danger"
    assert n.lock_path in reap["confirm"]["text"]["text"]
    assert LOCK_ID in mine["confirm"]["text"]["text"]


def test_the_info_digest_stays_out_of_the_other_channels_payloads():
    assert "info_digest" not in notification().to_dict()


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_values_are_escaped_and_within_block_kits_limits(kind):
    hostile = " ".join(HOSTILE) + " `tick` " + "x" * 2500
    n = notification(kind, path="tf-state/" + hostile[:2000], who=hostile, lock_id="`" + hostile[:1000])
    for state in (None, K.REAP_BLOCKED):
        payload = render_message(n, channel=CHANNEL, state=state if kind not in ("reaped", "resolved") else None)
        assert block_problems(payload["blocks"]) == []
        assert len(payload["text"]) <= 4000
        raw = json.dumps(payload, ensure_ascii=False)
        assert "<" not in raw
        assert ">" not in raw
        for action in _actions(payload):
            for element in action["elements"]:
                confirm = element.get("confirm")
                if confirm:
                    assert "&lt;!channel&gt;" in confirm["text"]["text"]
                    assert len(confirm["text"]["text"]) <= 300


def test_a_thread_reply_says_what_changed_in_one_short_escaped_line():
    n = notification("still_stale", sequence=2, who="<!channel>")
    assert thread_reply(n, previous="stale", state=K.STILL_STALE) == (
        ":large_orange_circle: *stale* → *still stale*: Still held after 3h12m (reminder 2)."
    )
    assert thread_reply(n, previous="reap_blocked", state=K.REAP_BLOCKED) == (
        ":large_orange_circle: Still held after 3h12m (reminder 2)."
    )
    blocked = notification("reap_blocked", reasons=("held 3h", "<!here> says the holder check\nsecond line"))
    reply = thread_reply(blocked, previous="still_stale", state=K.REAP_BLOCKED)
    assert reply.startswith(":red_circle: *still stale* → *reap blocked*: Past reap_after")
    assert "&lt;!here&gt;" in reply
    assert "\n" not in reply
    released = notification("resolved", reasons=("released by terraform after 2h",))
    assert thread_reply(released, previous="stale", state=K.RESOLVED) == (
        ":white_check_mark: *stale* → *released*: Released by terraform after 2h. Nothing more will be posted about "
        "this lock."
    )
    long = notification("resolved", reasons=("released by " + "<@U1>" * 2000,))
    assert len(thread_reply(long, previous="stale", state=K.RESOLVED)) <= REPLY_MAX


def test_render_is_the_first_post_without_the_token():
    notifier = SlackAppNotifier(lambda: TOKEN, channel=CHANNEL, messages=MemorySlackMessages(), name="chatops")
    n = notification("stale")
    assert notifier.render(n) == render_message(n, channel=CHANNEL)
    assert TOKEN not in json.dumps(notifier.render(n))
    assert notifier.unusable() is None


def test_a_token_that_is_not_a_bot_token_makes_the_channel_unusable_without_showing_it():
    notifier = SlackAppNotifier(
        lambda: "https://hooks.slack.com/services/T0/B0/SeCrEtSeCrEt", channel=CHANNEL, messages=MemorySlackMessages()
    )
    why = notifier.unusable()
    assert why == "the Slack bot token does not start with xoxb-"


def test_the_memory_store_gives_one_lease_at_a_time():
    store = MemorySlackMessages()
    first = store.take("s", "p", "id", "chatops", channel=CHANNEL)
    assert first is not None
    assert store.take("s", "p", "id", "chatops", channel=CHANNEL) is None
    assert store.advance(first, state="stale", final=False, ts="1.2")
    again = store.take("s", "p", "id", "chatops", channel=CHANNEL)
    assert again is not None
    assert (again.ts, again.state, again.final) == ("1.2", "stale", False)
    assert not store.advance(first, state="resolved", final=True)  # an old lease is refused
    store.release(again)
    assert store.take("s", "p", "id", "chatops", channel=CHANNEL) is not None


def test_notification_for_lock_keeps_the_digest_of_the_raw_info():
    lock = lock_record()
    n = Notification.for_lock(
        "stale", lock, table="t", age_seconds=1, verdict="warn", outcome="warned", reasons=(), rule="r"
    )
    assert n.info_digest == hashlib.sha256(lock.raw_info.encode("utf-8")).hexdigest()


def test_a_held_message_says_who_holds_it_just_above_its_buttons_and_a_final_one_does_not():
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    snooze = Hold(HoldKind.SNOOZE, "alice (U0ALICE01)", at, at + timedelta(hours=4))
    claim = Hold(HoldKind.CLAIM, "bob (U0BOB0002)", at)
    held = render_message(replace(notification("stale"), holds=(snooze, claim)), channel=CHANNEL)
    types = [b["type"] for b in held["blocks"]]
    line = held["blocks"][types.index("actions") - 1]
    assert line["block_id"] == HOLD_BLOCK_ID
    snoozed = (
        ":zzz: *Snoozed* by alice (U0ALICE01) until <!date^1796299200^{date_short_pretty} {time}|2026-12-03 12:00 UTC>"
        ": no reminders and no automatic reap until then."
    )
    claimed = (
        ":raised_hand: *Claimed* by bob (U0BOB0002) <!date^1796284800^{date_short_pretty} {time}|2026-12-03 08:00 UTC> "
        "(It's mine): no automatic reap of this acquisition, reminders at most daily."
    )
    assert [e["text"] for e in line["elements"]] == [snoozed, claimed]
    assert block_problems(held["blocks"]) == []
    assert HOLD_BLOCK_ID not in json.dumps(render_message(notification("stale"), channel=CHANNEL))
    final = render_message(replace(notification("reaped"), holds=(claim,)), channel=CHANNEL)
    assert HOLD_BLOCK_ID not in json.dumps(final)


def test_a_presser_name_cannot_mention_link_or_format_in_the_hold_line():
    hostile = Hold(HoldKind.CLAIM, "<!channel> <https://evil.example|click> *bold* (U0X1)", datetime.now(UTC))
    text = hold_text(hostile)
    assert "<!channel>" not in text
    assert "<https://" not in text
    assert "&lt;!channel&gt;" in text


def test_the_hold_line_replaces_the_one_before_and_a_message_without_buttons_is_left_alone():
    at = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    first = Hold(HoldKind.SNOOZE, "alice (U0ALICE01)", at, at + timedelta(hours=1))
    second = Hold(HoldKind.CLAIM, "bob (U0BOB0002)", at)
    blocks = render_message(notification("stale"), channel=CHANNEL)["blocks"]
    once = with_holds(blocks, (first,))
    twice = with_holds(once or [], (second,))
    assert twice is not None
    assert [b for b in twice if b.get("block_id") == HOLD_BLOCK_ID] == [hold_block((second,))]
    assert [b for b in twice if b.get("block_id") != HOLD_BLOCK_ID] == blocks
    final = render_message(notification("reaped"), channel=CHANNEL)["blocks"]
    assert with_holds(final, (first,)) is None
