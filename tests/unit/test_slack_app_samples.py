"""docs/slack-app-samples.md is what the Slack app channel renders today (``scripts/render_slack_app_samples.py``):
one acquisition's message in each state, its controls only while the lock is held, and buttons that name it."""

from __future__ import annotations

import json
import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from slack_api import block_problems
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "scripts" / "render_slack_app_samples.py"
DOC = ROOT / "docs" / "slack-app-samples.md"
STATES = ["stale", "still_stale", "reap_blocked", "reaped", "resolved"]
LIVE, FINAL = STATES[:3], STATES[3:]


@pytest.fixture(scope="module")
def script() -> dict[str, Any]:
    return runpy.run_path(str(SCRIPT))


@pytest.fixture(scope="module")
def steps(script):
    return script["lifecycle"](script["sample_item"](), acquired_at=script["CREATED"])


def _sections() -> dict[str, str]:
    """The document's sections by state (``## 3. `reap_blocked```), in order."""
    parts = re.split(r"^## \d\. `(\w+)`$", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _payloads(section: str) -> list[dict[str, Any]]:
    return [json.loads(block) for block in re.findall(r"^```json\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)]


def _readable(section: str) -> str:
    """The section's readable rendering of the message (its first ``text`` block)."""
    match = re.search(r"^```text\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert match is not None
    return match.group(1)


def _actions(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [block for block in payload.get("blocks", []) if block["type"] == "actions"]


def test_the_slack_app_samples_document_is_up_to_date(script):
    expected = DOC.read_text(encoding="utf-8")
    assert script["render"]() == expected, (
        "regenerate: .venv/bin/python scripts/render_slack_app_samples.py > docs/slack-app-samples.md"
    )


def test_the_sample_goes_through_the_five_states_in_order(steps):
    assert [step.state for step in steps] == STATES
    assert list(_sections()) == STATES
    assert [step.notification.kind for step in steps] == STATES  # each event shown as the state it reaches
    assert [step.at for step in steps] == sorted(step.at for step in steps)
    # One message: posted once, then updated in place with a thread reply; both endings follow reap_blocked.
    assert [[method for method, _ in step.api_calls("1.2")] for step in steps] == [
        ["chat.postMessage"],
        *[["chat.update", "chat.postMessage"]] * 4,
    ]
    assert [step.previous for step in steps] == [None, "stale", "still_stale", "reap_blocked", "reap_blocked"]


def test_the_sample_is_a_prod_apply_judged_by_the_engine(steps):
    stale, still, blocked, reaped, resolved = (step.notification for step in steps)
    assert {n.lock_path for n in (stale, reaped, resolved)} == {"acme-tf-state/prod/network/terraform.tfstate"}
    assert (stale.who, stale.operation, stale.age) == ("runner@ci-runner-7", "OperationTypeApply", "32m")
    assert still.sequence == 1
    assert any(r.startswith("holder liveness unknown") for r in blocked.reasons)
    assert reaped.deleted_item is not None
    assert reaped.deleted_item["LockID"]["S"] == reaped.lock_path
    assert resolved.reasons == ("released by terraform after 3h10m",)


def test_the_final_states_have_no_actions_block(steps):
    for step in steps:
        payloads = [payload for _, payload in step.api_calls("1.2")]
        assert bool(_actions(step.payload)) is (step.state in LIVE), step.state
        assert step.controls is (step.state in LIVE)
        assert all(not _actions(payload) for payload in payloads) is (step.state in FINAL)
    sections = _sections()
    for state in FINAL:
        assert not any(_actions(payload) for payload in _payloads(sections[state]))
        assert "[Reap now]" not in _readable(sections[state])
    for state in LIVE:
        assert sum(len(_actions(payload)) for payload in _payloads(sections[state])) == 1
        assert "[Reap now] (danger)" in _readable(sections[state])


def test_the_live_states_buttons_decode_to_the_acquisition_shown(steps):
    sections = _sections()
    values: set[ButtonValue] = set()
    for state in LIVE:
        (block,) = [block for payload in _payloads(sections[state]) for block in _actions(payload)]
        reap, snooze, mine = block["elements"]
        assert [reap["action_id"], snooze["action_id"], mine["action_id"]] == list(SlackAction)
        for value in (block["block_id"], reap["value"], mine["value"]):
            values.add(ButtonValue.decode(value))
        assert [option["value"] for option in snooze["options"]] == list(SnoozeFor)
        assert "confirm" in reap
        assert "confirm" in mine
        assert "Reap this lock now?" in sections[state]  # the readable text shows the confirmation
    (value,) = values  # one acquisition, the same value in every state
    assert value.info_digest == steps[0].notification.info_digest


def test_every_payload_is_one_slack_accepts_and_the_thread_replies_say_what_changed(steps):
    for step in steps:
        for _, payload in step.api_calls("1795684800.000200"):
            assert block_problems(payload.get("blocks", [])) == []
    assert steps[0].reply() is None
    changes = [
        ":large_orange_circle: *stale* → *still stale*: Still held after 1h32m",
        ":red_circle: *still stale* → *reap blocked*: Past reap_after",
        ":wastebasket: *reap blocked* → *reaped*: Reaped by tflock-reaper after 3h5m.",
        ":white_check_mark: *reap blocked* → *released*: Released by terraform after 3h10m.",
    ]
    for step, change in zip(steps[1:], changes, strict=True):
        assert (step.reply() or "").startswith(change)


def test_the_compact_text_keeps_the_header_reasons_and_button_labels(steps, script):
    live = script["message_as_text"](steps[0].payload["blocks"], compact=True)
    assert live.splitlines()[0] == "🟡 Stale Terraform lock: prod/network/terraform.tfstate"
    assert "[Reap now] [Snooze ▾] [It's mine]" in live
    assert "State path" not in live
    final = script["message_as_text"](steps[3].payload["blocks"], compact=True)
    assert "Reap now" not in final
    assert "• reaped from Slack: approved by" in final


def test_the_slack_app_guide_links_the_samples():
    guide = (ROOT / "docs" / "slack-app.md").read_text(encoding="utf-8")
    section = guide.split("## What the message looks like", 1)[1].split("\n## ", 1)[0]
    assert "(slack-app-samples.md)" in section


def test_the_document_shows_the_message_held_by_a_snooze_and_by_a_claim(script, steps):
    shown = script["holds_shown"](steps[2])
    assert [hold.kind.value for _, hold, _, _ in shown] == ["snooze", "claim"]
    text = DOC.read_text(encoding="utf-8")
    held = text[text.index("## Held by a person") : text.index("## 1. `stale`")]
    for _, hold, blocks, reply in shown:
        assert block_problems(blocks) == []
        kinds = [block["type"] for block in blocks]
        line = blocks[kinds.index("actions") - 1]
        assert line["block_id"] == "tflock_hold"  # just above the buttons
        assert [b for b in blocks if b is not line] == steps[2].payload["blocks"]  # nothing else changed
        assert line["elements"][0]["text"] == reply
        assert hold.by in held
        assert script["as_read"](reply) in held
    assert "Snoozed by Sam Lee (U05SAMLEE01) until 2026-11-26 15:51 UTC" in held  # 4 h after the press, at 11:51
    assert "<!date^" not in script["as_read"](shown[0][3])
