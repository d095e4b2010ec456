"""Print docs/slack-app-samples.md: the Slack app's one message about one lock acquisition, in each of its states.

One acquisition (a production apply by ``runner@ci-runner-7``, taken at 08:48 UTC) is followed on a fixed clock
through the real engine, so every reason is the engine's own words:

* 09:20, a sweep (each a dry run): past ``warn_after``: ``stale`` (the message is posted);
* 10:20, a sweep: still held an hour after the first alert: ``still_stale`` (updated, with a thread reply);
* 11:50, a sweep: past ``reap_after`` and no holder check may clear it: ``reap_blocked``;
* then one of two endings: at 11:53 someone presses *Reap now* (the reap the Slack app runs:
  :func:`tflock_reaper.services.sweep.unlock`): ``reaped``, with the deleted item; or at 11:58 the apply finishes
  and Terraform releases the lock (the stream function's recorder): ``resolved``.

Each state is rendered by the Slack app channel's own functions (``render_message``, ``thread_reply``), and the
Web API calls are the ones ``SlackAppNotifier`` makes: ``chat.postMessage`` for the first post, then
``chat.update`` on its ``ts`` and a ``chat.postMessage`` reply in its thread. Regenerate the document after
changing a renderer:

    .venv/bin/python scripts/render_slack_app_samples.py > docs/slack-app-samples.md

(``tests/unit/test_slack_app_samples.py`` fails while the document and this script disagree.) ``scripts/demo.py``
imports :func:`lifecycle` and :func:`message_as_text` to show the demo's own lock the same way.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tflock_reaper.adapters.channels.slack import ZWSP
from tflock_reaper.adapters.channels.slack_app import (
    EMOJI,
    FINAL,
    HOLD_BLOCK_ID,
    headline,
    hold_reply,
    render_message,
    thread_reply,
    with_holds,
)
from tflock_reaper.adapters.lock_table import DeleteResult
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.audit import StreamChange
from tflock_reaper.domain.holds import Hold, HoldKind
from tflock_reaper.domain.lock import DynamoItem, LockRecord, classify_item
from tflock_reaper.domain.memory import LockState, lock_key
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.policy import Policy, parse_policy
from tflock_reaper.domain.records import ReleaseRecord
from tflock_reaper.domain.slack_actions import SnoozeFor
from tflock_reaper.services.alerting import channel_snapshot, notifications_for
from tflock_reaper.services.interactions import snooze_until
from tflock_reaper.services.recorder import record_change
from tflock_reaper.services.sweep import sweep, unlock

K = NotificationKind
CREATED = datetime(2026, 11, 26, 8, 48, tzinfo=UTC)
LOCK_PATH = "acme-tf-state/prod/network/terraform.tfstate"
LOCK_ID = "c5a0e2f4-7b1d-4e39-9f6a-2d8b3c41e0a7"
TABLE = "terraform-locks"
TABLE_ARN = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"
CHANNEL = "C0123456789"
#: Who presses *Reap now* in the sample: Slack's user ID and name, as the Slack app names a presser.
PRESSER = "Dana Ortiz (U04DANA0RTZ)"
#: Who snoozes the lock, and who claims it, in the hold sample.
SNOOZER = "Sam Lee (U05SAMLEE01)"
CLAIMER = "Priya Nair (U06PRIYANR1)"
POLICY = """
channels:
  chatops: {type: slack_app, bot_token: {secret: tflock-reaper/slack-bot-token}, channel_id: C0123456789}
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 10m, notify: {channels: [chatops], renotify_every: 1h}}
rules:
  - match: "acme-tf-state/prod/*"
    reap_after: 3h
"""
#: When each event happens, after the acquisition: sweeps every 5 minutes, then a press or a release.
STALE_AFTER = timedelta(minutes=32)
STILL_STALE_AFTER = timedelta(hours=1, minutes=32)
BLOCKED_AFTER = timedelta(hours=3, minutes=2)
REAP_NOW_AFTER = timedelta(hours=3, minutes=5)
RELEASED_AFTER = timedelta(hours=3, minutes=10)
#: The readable text shows Slack's emoji, as Slack displays the header's shortcodes.
#: Without a handler of the caller's, the reap's "lock reaped" log line would land on stderr (logging's last resort).
_QUIET = logging.NullHandler()
GLYPHS = {
    ":large_yellow_circle:": "🟡",
    ":large_orange_circle:": "🟠",
    ":red_circle:": "🔴",
    ":wastebasket:": "🗑️",
    ":white_check_mark:": "✅",
    ":zzz:": "💤",
    ":raised_hand:": "✋",
}


class _OneLock:
    """The lock table, holding one lock; a delete (*Reap now*) succeeds while the ``Info`` is the one judged."""

    name = TABLE
    arn = TABLE_ARN

    def __init__(self, item: DynamoItem) -> None:
        self._item: DynamoItem | None = item

    def scan(self) -> Iterator[DynamoItem]:
        yield from [self._item] if self._item else []

    def read(self, lock_paths: Sequence[str]) -> list[DynamoItem]:
        return [self._item] if self._item and self._item["LockID"]["S"] in lock_paths else []

    def size_bytes(self) -> int:
        return 0

    def latest_stream_arn(self) -> str | None:
        return None

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> DeleteResult:
        item, self._item = self._item, None
        if item is None or item["LockID"]["S"] != lock_path or item["Info"]["S"] != raw_info:
            raise AssertionError("the sample deletes only the lock it judged")
        return DeleteResult(deleted=True, item=item)


class _Releases:
    """The state table as the stream function's recorder sees it, for one release: the acquisition's record (acquired
    at ``acquired_at``, alerted about on ``channels`` since ``warned_at``)."""

    def __init__(self, acquired_at: datetime, warned_at: datetime | None, channels: str) -> None:
        self._record = ReleaseRecord(acquired_at, None, alert_channels=channels, warned_at=warned_at)

    def record_acquired(self, lock: LockRecord, server_time: datetime, sequence: str) -> bool:
        raise AssertionError("the sample records a release only")

    def record_released(
        self,
        lock: LockRecord,
        server_time: datetime,
        sequence: str,
        *,
        position: str | None = None,
        principal: str | None = None,
    ) -> ReleaseRecord:
        return self._record

    def record_persisted(self, scope: str, state_path: str, server_time: datetime, sequence: str) -> bool:
        raise AssertionError("the sample records a release only")

    def request_full(self, scope: str, reason: str, now: datetime) -> None:
        raise AssertionError("the sample records a release only")


@dataclass(frozen=True)
class Step:
    """One event about the acquisition, and what its message then shows."""

    at: datetime
    what: str
    """What happened, in words."""
    notification: Notification
    previous: NotificationKind | None
    """The state the message showed before (``None``: this event posts it)."""

    @property
    def state(self) -> NotificationKind:
        """The state the message shows after this event (the most serious reached)."""
        return headline(self.notification.kind, self.previous.value if self.previous else None)

    @property
    def payload(self) -> dict[str, Any]:
        """The message as ``chat.postMessage`` takes it (the bot token travels in a header, never here)."""
        return render_message(self.notification, channel=CHANNEL, state=self.state)

    @property
    def controls(self) -> bool:
        """Whether the message carries the buttons after this event."""
        return any(block["type"] == "actions" for block in self.payload["blocks"])

    def reply(self) -> str | None:
        """The thread reply posted with this change (none with the first post)."""
        if self.previous is None:
            return None
        return thread_reply(self.notification, previous=self.previous.value, state=self.state)

    def api_calls(self, ts: str) -> list[tuple[str, dict[str, Any]]]:
        """The Web API calls of this event, with their arguments: what ``SlackAppNotifier`` sends (``ts``: the
        message's, as ``chat.postMessage`` answered it)."""
        payload = self.payload
        reply = self.reply()
        if reply is None:
            return [("chat.postMessage", payload)]
        update = {"channel": CHANNEL, "ts": ts, "text": payload["text"], "blocks": payload["blocks"]}
        in_thread = {"channel": CHANNEL, "thread_ts": ts, "text": reply, "unfurl_links": False, "unfurl_media": False}
        return [("chat.update", update), ("chat.postMessage", in_thread)]


def sample_item() -> DynamoItem:
    """The sample's lock item, as Terraform's s3 backend writes it to the lock table."""
    info = {
        "ID": LOCK_ID,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "runner@ci-runner-7",
        "Version": "1.15.5",
        "Created": CREATED.isoformat().replace("+00:00", "Z"),
        "Path": LOCK_PATH,
    }
    return {"LockID": {"S": LOCK_PATH}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}


def _lock(item: DynamoItem) -> LockRecord:
    lock = classify_item(item, None, table=TABLE, table_arn=TABLE_ARN)
    if not isinstance(lock, LockRecord):
        raise TypeError(f"not a lock item: {lock}")
    return lock


def _judged(
    item: DynamoItem, kind: NotificationKind, at: datetime, *, state: MemoryStateStore, policy: Policy
) -> Notification:
    """The notification of ``kind`` that a dry-run sweep at ``at`` calls for."""
    report = sweep(lock_table=_OneLock(item), state=state, policy=policy, mode="dry-run", clock=lambda: at)
    (entry,) = report.locks
    return next(n for n in notifications_for(entry, table=TABLE, now=at) if n.kind is kind)


def _reaped(item: DynamoItem, at: datetime, *, state: MemoryStateStore, policy: Policy) -> Notification:
    """*Reap now*, pressed at ``at``: the lock read again and reaped as the Slack app reaps it."""
    entry = unlock(
        _lock(item),
        tables=[_OneLock(item)],
        lockfiles=None,
        state=state,
        policy=policy,
        reason=f"reaped from Slack: approved by {PRESSER}",
        clock=lambda: at,
        by=f"slack by {PRESSER}",
    )
    return next(n for n in notifications_for(entry, table=TABLE, now=at) if n.kind is K.REAPED)


def _released(item: DynamoItem, at: datetime, *, acquired_at: datetime, warned_at: datetime | None) -> Notification:
    """Terraform releases the lock at ``at``: the stream function's recorder and its ``resolved``."""
    change = StreamChange(
        event_name="REMOVE",
        keys={"LockID": item["LockID"]},
        new_image=None,
        old_image=item,
        server_time=at,
        sequence_number="4200000000000000000001",
        principal=None,
        source_arn=f"{TABLE_ARN}/stream/2026-11-01T00:00:00.000",
    )
    channels = channel_snapshot(parse_policy(POLICY), ["chatops"])
    recorded = record_change(change, _Releases(acquired_at, warned_at, channels))
    if recorded is None or recorded.resolved is None:
        raise AssertionError("a release of a lock alerted about is announced")
    return recorded.resolved


def lifecycle(item: DynamoItem, *, acquired_at: datetime | None = None) -> list[Step]:
    """The acquisition of ``item`` (taken at ``acquired_at`` by the server's clock, as the stream function recorded
    it; default: its ``Created``) under the sample policy: ``stale``, ``still_stale``, ``reap_blocked``, then the
    two endings, ``reaped`` by *Reap now* and ``resolved`` by Terraform, each after ``reap_blocked``."""
    logging.getLogger("tflock_reaper").addHandler(_QUIET)  # added once; the caller's own handlers still apply
    policy = parse_policy(POLICY)
    state = MemoryStateStore()
    lock = _lock(item)
    acquired_at = acquired_at or lock.info.created
    key = lock_key(lock)
    state.states[key] = LockState(first_seen=acquired_at + timedelta(seconds=30), acquired_at=acquired_at)
    steps: list[Step] = []
    previous: NotificationKind | None = None
    sweeps = (
        (K.STALE, STALE_AFTER, "sweep: held past warn_after, the message is posted"),
        (K.STILL_STALE, STILL_STALE_AFTER, "sweep: still held an hour after the first alert (renotify_every 1h)"),
        (K.REAP_BLOCKED, BLOCKED_AFTER, "sweep: past reap_after, and no holder check may clear it"),
    )
    for kind, after, what in sweeps:
        at = acquired_at + after
        steps.append(Step(at, what, _judged(item, kind, at, state=state, policy=policy), previous))
        previous = steps[-1].state
    warned_at = state.states[key].warned_at
    reap_at, release_at = acquired_at + REAP_NOW_AFTER, acquired_at + RELEASED_AFTER
    reaped = _reaped(item, reap_at, state=state, policy=policy)
    released = _released(item, release_at, acquired_at=acquired_at, warned_at=warned_at)
    steps.append(Step(reap_at, f"Reap now, pressed by {PRESSER}: the lock is reaped", reaped, previous))
    steps.append(
        Step(release_at, "or, instead: the apply finishes and Terraform releases the lock", released, previous)
    )
    return steps


# -- readable text ----------------------------------------------------------------------------------------------
def _glyphs(text: str) -> str:
    for code, glyph in GLYPHS.items():
        text = text.replace(code, glyph)
    return text


def as_read(mrkdwn: str) -> str:
    """Slack mrkdwn as it displays: no bold marks, code fences or backticks, entities decoded, emoji drawn, dates
    (``<!date^...|fallback>``, shown in each reader's time zone) as their UTC fallback."""
    text = re.sub(r"<!date\^[^|>]*\|([^>]*)>", r"\1", mrkdwn)
    text = re.sub(r"\*([^*\n]+)\*", r"\1", text).replace("`", "")
    return _glyphs(html.unescape(text).replace(ZWSP, ""))


def _confirm(dialog: dict[str, Any]) -> str:
    title, text = dialog["title"]["text"], dialog["text"]["text"]
    return f'asks first: "{title}" {text} [{dialog["confirm"]["text"]}] [{dialog["deny"]["text"]}]'


def _controls(block: dict[str, Any], *, compact: bool) -> str:
    """The actions block: each button's label (with its style and confirmation), the Snooze menu's options."""
    lines: list[str] = []
    for element in block["elements"]:
        if element["type"] == "static_select":
            label = f"[{element['placeholder']['text']} ▾]"
            options = " | ".join(option["text"]["text"] for option in element["options"])
            lines.append(label if compact else f"{label}  a menu: {options}")
            continue
        label = f"[{element['text']['text']}]"
        style = f" ({element['style']})" if "style" in element else ""
        confirm = f"  {_confirm(element['confirm'])}" if "confirm" in element else ""
        lines.append(label if compact else f"{label}{style}{confirm}")
    return " ".join(lines) if compact else "\n".join(lines)


def _label_and_value(field: str) -> tuple[str, str]:
    label, _, value = field.partition("\n")
    return label, value


def _fields(block: dict[str, Any], *, compact: bool) -> str:
    rows = [_label_and_value(as_read(field["text"])) for field in block["fields"]]
    if compact:
        rows = [(label, value) for label, value in rows if label in ("Held for", "Verdict")]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def message_as_text(blocks: Sequence[dict[str, Any]], *, compact: bool = False) -> str:
    """How a message reads in Slack, block by block: the header, the fields, each section (reasons, command,
    deleted item, follow-up), the buttons and their confirmations, the context line. ``compact``: only the header,
    age and verdict, reasons, button labels and context."""
    parts: list[str] = []
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            parts.append(_glyphs(block["text"]["text"]))
        elif kind == "section" and "fields" in block:
            parts.append(_fields(block, compact=compact))
        elif kind == "section":
            text = block["text"]["text"]
            if not compact or text.startswith("*Reasons*"):
                parts.append(as_read(text))
        elif kind == "actions":
            parts.append(_controls(block, compact=compact))
        else:
            parts.append(" ".join(as_read(element["text"]) for element in block["elements"]))
    return ("\n" if compact else "\n\n").join(parts)


# -- the document -----------------------------------------------------------------------------------------------
def _json(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _clock(at: datetime) -> str:
    return at.strftime("%H:%M UTC")


def _section(number: int, step: Step, ts: str) -> str:
    n = step.notification
    controls = (
        "The message carries the controls: **Reap now**, **Snooze** and **It's mine**."
        if step.controls
        else "Final: the controls are removed, and nothing more is posted about this acquisition."
    )
    calls = step.api_calls(ts)
    reply = step.reply()
    lines = [
        f"## {number}. `{step.state}`",
        "",
        f"{_clock(step.at)}, {step.what} (event `{n.kind}`, held {n.age}).",
        controls,
        "",
        "How the message reads:",
        "",
        "```text",
        message_as_text(step.payload["blocks"]),
        "```",
        "",
    ]
    if reply is None:
        lines += ["No thread reply: this is the message's first post."]
    else:
        lines += ["The reply posted in its thread:", "", "```text", as_read(reply), "```"]
    for method, arguments in calls:
        what = "the message" if "blocks" in arguments else "the thread reply"
        lines += ["", f"<details><summary><code>{method}</code>: {what}</summary>", "", "```json", _json(arguments)]
        lines += ["```", "", "</details>"]
    return "\n".join(lines)


def holds_shown(blocked: Step) -> list[tuple[str, Hold, list[dict[str, Any]], str]]:
    """The ``reap_blocked`` message after a person's hold, as the interactions function updates it (the message as
    Slack has it, with the hold line above its buttons) and the reply in its thread: a *Snooze* for 4 hours one
    minute after the alert, or instead an *It's mine*."""
    at = blocked.at + timedelta(minutes=1)
    snoozed = Hold(HoldKind.SNOOZE, SNOOZER, at, snooze_until(SnoozeFor.FOUR_HOURS, at, "UTC"))
    claimed = Hold(HoldKind.CLAIM, CLAIMER, at)
    shown = []
    presses = ((f"Snooze → For 4 hours, chosen by {SNOOZER}", snoozed), (f"It's mine, by {CLAIMER}", claimed))
    for what, hold in presses:
        blocks = with_holds(blocked.payload["blocks"], (hold,))
        if blocks is None:
            raise AssertionError("a held lock's message has its buttons")
        shown.append((what, hold, blocks, hold_reply(hold)))
    return shown


def _held_section(blocked: Step) -> str:
    at = _clock(blocked.at + timedelta(minutes=1))
    intro = (
        f"At {at}, instead of Reap now, someone presses **Snooze** or **It's mine** on the `reap_blocked` message. "
        "The interactions function records the hold and updates the message in place (`chat.update`): one line "
        "above the buttons says who holds the lock and until when, and the same line is posted in its thread. The "
        "times are Slack dates (`<!date^...>`), which Slack shows in each reader's own time zone (UTC here). Later "
        "updates of the message keep the line while the hold lasts. Each message is shown compact (header, age, "
        "verdict, reasons, the hold line, the buttons):"
    )
    lines = ["## Held by a person: Snooze or It's mine", "", intro]
    for what, _hold, blocks, reply in holds_shown(blocked):
        line = next(block for block in blocks if block.get("block_id") == HOLD_BLOCK_ID)
        lines += ["", f"{what}:", "", "```text", message_as_text(blocks, compact=True), "```", ""]
        lines += ["The reply in its thread:", "", "```text", as_read(reply), "```", ""]
        lines += [
            "<details><summary>the hold line's block</summary>",
            "",
            "```json",
            _json(line),
            "```",
            "",
            "</details>",
        ]
    return "\n".join(lines)


def _summary(steps: Sequence[Step]) -> str:
    rows = ["| state | when | header | controls | thread reply |", "|---|---|---|---|---|"]
    for step in steps:
        header = _glyphs(step.payload["blocks"][0]["text"]["text"])
        reply = as_read(step.reply() or "none: the first post").split(": ", 1)[0]
        controls = "Reap now, Snooze, It's mine" if step.controls else "none (final)"
        rows.append(f"| `{step.state}` | {_clock(step.at)} | {header} | {controls} | {reply} |")
    return "\n".join(rows)


def render() -> str:
    steps = lifecycle(sample_item(), acquired_at=CREATED)
    ts = f"{int(steps[0].at.timestamp())}.000200"  # what chat.postMessage answered for the first post
    sections = "\n\n".join(_section(number, step, ts) for number, step in enumerate(steps, start=1))
    final = " and ".join(f"`{k}`" for k in sorted(FINAL))
    return f"""# The Slack app's message, in each state

What the [`slack_app` channel](slack-app.md) posts about one lock acquisition: one message, updated in place as the
lock goes stale, still stale and blocked, and then reaped or released, with a short reply in its thread for each
change. The acquisition is a production apply by `runner@ci-runner-7` on
`{LOCK_PATH}`, taken at {_clock(CREATED)}, judged by the real sweep on a fixed clock
under this policy (so every reason is the engine's own words), then either reaped with **Reap now** or released by
Terraform:

```yaml{POLICY}```

Rendered by the channel's own `render_message` and `thread_reply`, with the Web API calls `SlackAppNotifier` makes
(channel `{CHANNEL}`; the message's `ts` is `{ts}`). Regenerate with
`.venv/bin/python scripts/render_slack_app_samples.py > docs/slack-app-samples.md`. The header's emoji are
shortcodes in the payload (`{EMOJI[K.STALE]}`), drawn here as Slack draws them.

{_summary(steps)}

While the lock is held the message carries **Reap now** (with a confirmation naming the lock), **Snooze** (a menu)
and **It's mine** (with a confirmation); each button's `value`, and the actions block's `block_id`, name the
acquisition (`v1|<pk>|<sk>|<info digest>`, see
[slack-app.md](slack-app.md#its-buttons-and-what-they-carry)). {final} are final: their update removes the controls.
The two endings are alternatives: each follows `reap_blocked`.

{_held_section(steps[2])}

{sections}
"""


if __name__ == "__main__":
    print(render(), end="")
