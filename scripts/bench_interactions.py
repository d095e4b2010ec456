"""Benchmark (not a test): how long the interactions function takes to answer a Slack app press, against Slack's
3 seconds and against a bare DynamoDB round trip to the same endpoint.

The stack as deployed, on loopback: a moto server (HTTP, its own process) as AWS (the lock table, the state table,
the signing secret and the bot token, through ``AWS_ENDPOINT_URL``), Slack's Web API as the tests' stand-in
(``tests/slack_api.py``), the function's handler behind the tests' loopback function URL (``tests/function_url.py``:
AWS's event, payload format 2.0), and a loopback ``response_url``. ``--locks`` stale locks (default 20) each get
their message from a sweep through the ``slack_app`` channel; then each message gets, in turn, a *Snooze* (the hold
recorded, the message updated in place with the hold line and a thread reply), an *It's mine*, and a *Reap now*
(the lock read again, the conditional delete and its records, the ``reaped`` alert updating the message), each
signed as Slack signs it and timed from the request sent to the answer read (what Slack waits for).

The first press of the run is timed apart: the function's warm wiring is made afresh before it (its settings, AWS
clients, the policy, the signing secret read through Powertools Parameters), as on a cold start's first request;
the modules are already imported (their cost is ``scripts/bench_coldstart.py``'s). The baseline, in the same run:
a consistent ``GetItem`` of one state-table item, bare, on the same moto server, as many times.

Run as `PYTHONPATH=tests .venv/bin/python scripts/bench_interactions.py [--locks 20]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from offline_env import use_offline_aws

REGION = "us-east-1"
SLACK_LIMIT_MS = 3000.0
SIGNING_SECRET = "bench-signing-secret-0123456789abcdef"  # a dummy value for the loopback stack  # noqa: S105
SIGNING_SECRET_NAME = "tflock-reaper/slack-signing-secret"  # a secret's name  # noqa: S105
TOKEN_SECRET = "tflock-reaper/slack-bot-token"  # a secret's name  # noqa: S105
APPROVER, APPROVER_NAME = "U0APPROVER1", "alice"
POLICY = """\
mode: enforce
channels:
  chatops: {{type: slack_app, bot_token: {{secret: {token_secret}}}, channel_id: {channel}, api_url: "{api_url}"}}
defaults:
  warn_after: 30m
  reap_after: 12h
  min_observed: 0s
  trust_holder_clock: true
  holder: {{assume: gone}}
  notify: {{channels: [chatops], renotify_every: 1h}}
  approvers: [{approver}]
"""


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def _line(label: str, samples: list[float], baseline: float) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    median = statistics.median(ordered)
    slowest = ordered[-1]
    return (
        f"  {label:<22} n={len(ordered):<3} p50 {_ms(median):7.1f} ms  p95 {_ms(p95):7.1f} ms  max "
        f"{_ms(slowest):7.1f} ms  ({median / baseline:5.1f}x a GetItem; max {_ms(slowest) / SLACK_LIMIT_MS:.0%} of "
        "Slack's 3 s)"
    )


def run(locks: int) -> int:  # noqa: PLR0915 - one scenario, in order
    # The test lab's helpers (tests/ on the path): the moto server, the stand-ins, the tables, the lock items.
    from alert_stack import sweep_with_alerts  # noqa: PLC0415
    from factories import lock_item  # noqa: PLC0415
    from function_url import FunctionUrl, Slack, press_on  # noqa: PLC0415
    from http_stub import StubServer  # noqa: PLC0415
    from slack_api import CHANNEL, TOKEN, SlackApi  # noqa: PLC0415
    from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, create_state_table, put  # noqa: PLC0415
    from tflab import MotoServer  # noqa: PLC0415

    with MotoServer() as server, tempfile.TemporaryDirectory(prefix="bench-interactions-") as tmp:
        os.environ["AWS_ENDPOINT_URL"] = server.endpoint
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_lock_table(dynamodb)
        create_state_table(dynamodb)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        secrets.create_secret(Name=SIGNING_SECRET_NAME, SecretString=SIGNING_SECRET)
        secrets.create_secret(Name=TOKEN_SECRET, SecretString=TOKEN)
        api, answers = SlackApi().start(), StubServer().start()
        policy_path = Path(tmp) / "policy.yaml"
        policy_text = POLICY.format(token_secret=TOKEN_SECRET, channel=CHANNEL, api_url=api.base_url, approver=APPROVER)
        policy_path.write_text(policy_text)
        os.environ.update(
            LOCK_TABLE_NAMES=LOCK_TABLE,
            STATE_TABLE_NAME=STATE_TABLE,
            POLICY_PATH=str(policy_path),
            SLACK_SIGNING_SECRET_NAME=SIGNING_SECRET_NAME,
            SLACK_RESPONSE_URL_PREFIX=answers.url("/"),
        )
        import interactions_handler  # noqa: PLC0415 - after the environment is set, as Lambda imports it
        from tflock_reaper.adapters.lock_table import LockTable  # noqa: PLC0415
        from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
        from tflock_reaper.domain.lock import LockRecord, classify_item  # noqa: PLC0415
        from tflock_reaper.domain.policy import parse_policy  # noqa: PLC0415
        from tflock_reaper.domain.slack_actions import SlackAction, SnoozeFor  # noqa: PLC0415
        from tflock_reaper.entrypoints import interactions  # noqa: PLC0415

        interactions_handler.logger.registered_handler.setStream(io.StringIO())  # the lines are not the figure
        state = StateTable(dynamodb, STATE_TABLE)
        table = LockTable(dynamodb, LOCK_TABLE)
        now = datetime.now(UTC)
        for index in range(locks):
            item = lock_item(f"tf-state/bench/{index:03d}/terraform.tfstate", created=now - timedelta(hours=1))
            put(dynamodb, item)
            lock = classify_item(item, now, table=LOCK_TABLE, table_arn=table.arn)
            if not isinstance(lock, LockRecord):
                raise TypeError(f"not a lock: {lock}")
            state.record_acquired(lock, now - timedelta(hours=1), f"{index + 1}")
        sweep_with_alerts(dynamodb, parse_policy(policy_text), now)
        posts = [call for call in api.top_level() if call.ok]
        print(f"{locks} stale locks, one message each ({len(posts)} posted by a sweep through the slack_app channel)")

        # The handler's metrics (EMF lines on stdout) are not the figure either.
        with FunctionUrl(interactions_handler.lambda_handler) as url, contextlib.redirect_stdout(io.StringIO()):
            slack = Slack(SIGNING_SECRET, url.url)

            def press(post: Any, action: SlackAction, option: str | None = None) -> float:
                ts = post.answer["ts"]
                message = api.messages[(CHANNEL, ts)]
                payload = press_on(
                    message,
                    action.value,
                    channel=CHANNEL,
                    ts=ts,
                    user=APPROVER,
                    name=APPROVER_NAME,
                    response_url=answers.url("/actions/T0TEAM001/1/bench"),
                    option=option,
                )
                seconds, reply = _timed(lambda: slack.post(payload))
                if reply.status != 200:  # noqa: PLR2004
                    raise RuntimeError(f"{action.value} answered {reply.status}: {reply.body}")
                return float(seconds)

            interactions.default_interactions.cache_clear()  # the first request makes the warm wiring
            first = press(posts[0], SlackAction.SNOOZE, SnoozeFor.ONE_HOUR.value)
            calls_before = len(api.calls)
            snoozes = [press(post, SlackAction.SNOOZE, SnoozeFor.FOUR_HOURS.value) for post in posts]
            snooze_calls = len(api.calls) - calls_before
            claims = [press(post, SlackAction.MINE) for post in posts]
            calls_before = len(api.calls)
            reaps = [press(post, SlackAction.REAP_NOW) for post in posts]
            reap_calls = len(api.calls) - calls_before

        left = [i for i in dynamodb.scan(TableName=LOCK_TABLE)["Items"] if not i["LockID"]["S"].endswith("-md5")]
        key = {"pk": {"S": "bench"}, "sk": {"S": "bench"}}
        dynamodb.put_item(TableName=STATE_TABLE, Item=key)
        samples = len(snoozes) + len(claims) + len(reaps)
        get_items = [
            _timed(lambda: dynamodb.get_item(TableName=STATE_TABLE, Key=key, ConsistentRead=True))[0]
            for _ in range(samples)
        ]
        baseline = statistics.median(get_items)
        api.stop()
        answers.stop()

    print("moto server on loopback (AWS), the Slack Web API stand-in, the handler behind a loopback function URL")
    print(f"  baseline: a bare consistent GetItem, p50 {_ms(baseline):.1f} ms over {samples}")
    print(
        f"  first press (fresh wiring: settings, clients, policy, signing secret) {_ms(first):7.1f} ms "
        f"({first / baseline:.1f}x a GetItem; {_ms(first) / SLACK_LIMIT_MS:.0%} of Slack's 3 s)"
    )
    print(_line("Snooze (4 hours)", snoozes, baseline))
    print(_line("It's mine", claims, baseline))
    print(_line("Reap now", reaps, baseline))
    per_snooze = snooze_calls / len(snoozes)
    print(f"  Slack Web API calls per Snooze: {per_snooze:.1f} (the message updated with who holds it, a reply)")
    print(f"  Slack Web API calls per Reap now: {reap_calls / len(reaps):.1f} (the reaped alert's update and reply)")
    print(f"  locks left after the Reap now presses: {len(left)} of {locks}")
    slowest = max([first, *snoozes, *claims, *reaps])
    verdict = "PASS" if _ms(slowest) < SLACK_LIMIT_MS else "OVER"
    print(f"  every press answered within Slack's 3 s: {verdict} (slowest {_ms(slowest):.1f} ms)")
    return 0 if not left and verdict == "PASS" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description="Answer time of the Slack app's presses, against Slack's 3 s.")
    parser.add_argument("--locks", type=int, default=20, help="stale locks, each pressed three times (default 20)")
    args = parser.parse_args()
    use_offline_aws(
        REGION,
        ("layers/reaper", "functions/interactions"),
        POWERTOOLS_SERVICE_NAME="tflock-reaper",
        POWERTOOLS_METRICS_NAMESPACE="TflockReaperBench",
        POWERTOOLS_LOG_LEVEL="WARNING",
    )
    try:
        import tflab  # noqa: F401, PLC0415
    except ImportError:
        print("needs the test lab on the path: PYTHONPATH=tests", file=sys.stderr)
        return 2
    return run(args.locks)


if __name__ == "__main__":
    sys.exit(main())
