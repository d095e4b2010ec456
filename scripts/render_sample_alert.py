"""Print docs/sample-alert.md: a realistic ``reap_blocked`` alert, rendered by the real Slack and SNS renderers.

The lock (a production apply by ``runner@ci-runner-7``, held 3h12m, holder unknown) is judged by the real sweep
on a fixed clock, so the reasons are the engine's own words. Regenerate the document after changing a renderer:

    .venv/bin/python scripts/render_sample_alert.py > docs/sample-alert.md

(``tests/unit/test_sample_alert.py`` fails while the document and this script disagree.)
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from tflock_reaper.adapters.channels.slack import ZWSP, render_slack
from tflock_reaper.adapters.channels.sns import render_publish
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.lock import DynamoItem
from tflock_reaper.domain.memory import LockState
from tflock_reaper.domain.notification import Notification, NotificationKind
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.services.alerting import notifications_for
from tflock_reaper.services.sweep import sweep

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=3, minutes=12)
LOCK_PATH = "acme-tf-state/prod/network/terraform.tfstate"
LOCK_ID = "c5a0e2f4-7b1d-4e39-9f6a-2d8b3c41e0a7"
TABLE = "terraform-locks"
TOPIC_ARN = "arn:aws:sns:us-east-1:123456789012:tflock-reaper-alerts"
POLICY = """
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 10m}
rules:
  - match: "acme-tf-state/prod/*"
    reap_after: 3h
"""


class _OneLock:
    """The lock table, holding one lock; the sample is a dry run, so nothing is ever deleted."""

    name = TABLE
    arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}"

    def __init__(self, item: DynamoItem) -> None:
        self._item = item

    def scan(self) -> Iterator[DynamoItem]:
        yield self._item

    def read(self, lock_paths: Sequence[str]) -> list[DynamoItem]:
        return [self._item] if self._item["LockID"]["S"] in lock_paths else []

    def size_bytes(self) -> int:
        return 0

    def latest_stream_arn(self) -> str | None:
        return None

    def delete_if_unchanged(self, lock_path: str, raw_info: str) -> Any:
        raise AssertionError("a dry run never deletes")


def sample_notification() -> Notification:
    info = {
        "ID": LOCK_ID,
        "Operation": "OperationTypeApply",
        "Info": "",
        "Who": "runner@ci-runner-7",
        "Version": "1.15.5",
        "Created": CREATED.isoformat().replace("+00:00", "Z"),
        "Path": LOCK_PATH,
    }
    item = {"LockID": {"S": LOCK_PATH}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}
    # Seen since its acquisition (the stream function recorded the server's time); warned at warn_after.
    state = MemoryStateStore()
    state.states[(_OneLock.arn, LOCK_PATH, LOCK_ID)] = LockState(
        first_seen=CREATED + timedelta(seconds=30), acquired_at=CREATED, warned_at=CREATED + timedelta(minutes=30)
    )
    report = sweep(
        lock_table=_OneLock(item), state=state, policy=parse_policy(POLICY), mode="dry-run", clock=lambda: NOW
    )
    (entry,) = report.locks
    notifications = notifications_for(entry, table=TABLE, now=NOW)
    return next(n for n in notifications if n.kind is NotificationKind.REAP_BLOCKED)


def _plain(mrkdwn: str) -> str:
    """Slack mrkdwn as it displays: no bold marks, code fences or backticks, entities decoded."""
    text = re.sub(r"\*([^*\n]+)\*", r"\1", mrkdwn).replace("`", "")
    return html.unescape(text).replace(ZWSP, "")


def slack_as_text(payload: dict[str, Any]) -> str:
    """How the message reads in Slack, block by block."""
    parts: list[str] = []
    for block in payload["blocks"]:
        if block["type"] == "header":
            parts.append(block["text"]["text"])
        elif block["type"] == "section" and "fields" in block:
            rows = [_plain(f["text"]).split("\n", 1) for f in block["fields"]]
            width = max(len(label) for label, _ in rows)
            parts.append("\n".join(f"{label.ljust(width)}  {value}" for label, value in rows))
        elif block["type"] == "section":
            parts.append(_plain(block["text"]["text"]))
        else:
            parts.append(" ".join(_plain(e["text"]) for e in block["elements"]))
    return "\n\n".join(parts)


def render() -> str:
    n = sample_notification()
    slack = render_slack(n)
    publish = render_publish(n, TOPIC_ARN)
    attributes = ", ".join(f"`{k}={v['StringValue']}`" for k, v in publish["MessageAttributes"].items())
    return f"""# A sample alert

What on-call receives when a lock is past `reap_after` and the reaper may not clear it (`reap_blocked`): a
production apply by `runner@ci-runner-7`, held 3h12m, whose holder may still be running. Rendered by the real
`render_slack` and `render_publish`; regenerate with
`.venv/bin/python scripts/render_sample_alert.py > docs/sample-alert.md`.

## Slack

How it reads (the header, the fields, the reasons, the command, the context line):

```text
{slack_as_text(slack)}
```

The Block Kit payload posted to the incoming webhook:

```json
{json.dumps(slack, indent=2, ensure_ascii=False)}
```

## SNS

One message per event. Message attributes, for subscription filters: {attributes}.

Subject:

```text
{publish["Subject"]}
```

Body (readable text, then the event as one line of JSON):

```text
{publish["Message"].rstrip()}
```
"""


if __name__ == "__main__":
    print(render(), end="")
