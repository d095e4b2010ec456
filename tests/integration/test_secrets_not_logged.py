"""Secret values never reach the logs: a Slack webhook URL and a PagerDuty routing key, kept in Secrets Manager,
through both Lambda handlers, when the channels work and when they fail (HTTP 500 echoing the secret, a timeout).

Everything a deployed function could write is captured: the Powertools JSON logs of both handlers (and the
engine's ``tflock_reaper`` loggers they configure), every standard-library logger at DEBUG (urllib3,
botocore, Powertools internals) with tracebacks rendered, and stdout/stderr (EMF metrics, prints). The secrets
must appear in none of it, nor in what the handlers return or record in the state table.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alert_stack import ROUTING_KEY, SLACK_PATH, AlertStack
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from factories import lock_item
from fakes import FakeLambdaContext
from http_stub import Reply
from streams import stream_record
from tables import LOCK_TABLE, STATE_TABLE, put, table_items

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sweeper_schedule.json").read_text())
PROD = "tf-state/prod/network/terraform.tfstate"
#: The webhook's secret part (the URL's host is the loopback stub) and the routing key.
SECRETS = (SLACK_PATH, SLACK_PATH.rsplit("/", 1)[1], ROUTING_KEY)


class _Everything(logging.Handler):
    """Every record of every logger, formatted with its traceback, whatever the record's level."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + " " + json.dumps(record.__dict__, default=str))


class Captured:
    def __init__(self, powertools: io.StringIO, everything: _Everything) -> None:
        self.powertools = powertools
        self.everything = everything
        self.out = io.StringIO()  # the handlers' stdout and stderr (EMF metrics, prints)

    def sweep(self) -> dict[str, Any]:
        import sweeper_handler  # noqa: PLC0415

        with contextlib.redirect_stdout(self.out), contextlib.redirect_stderr(self.out):
            return sweeper_handler.lambda_handler(EVENT, FakeLambdaContext())

    def stream(self, *records: dict[str, Any]) -> Any:
        import stream_handler  # noqa: PLC0415

        with contextlib.redirect_stdout(self.out), contextlib.redirect_stderr(self.out):
            return stream_handler.handle_batch({"Records": list(records)}, FakeLambdaContext())

    def emf(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines() if line.startswith('{"_aws"')]

    def text(self) -> str:
        return "\n".join([self.powertools.getvalue(), *self.everything.lines, self.out.getvalue()])

    def powertools_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.powertools.getvalue().splitlines() if line.startswith("{")]

    def assert_secret_free(self, *extra: Any) -> None:
        text = self.text() + "\n".join(json.dumps(e, default=str) for e in extra)
        for secret in SECRETS:
            assert secret not in text, f"secret {secret[:6]}... found in the logs"


@pytest.fixture
def captured(dynamodb, alerts: AlertStack, monkeypatch) -> Iterator[Captured]:
    monkeypatch.setenv("LOCK_TABLE_NAME", LOCK_TABLE)
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    monkeypatch.setenv("POLICY_PATH", str(alerts.policy_path))
    monkeypatch.setenv("REAPER_MODE", "enforce")
    monkeypatch.setenv("ALERT_TOPIC_ARN", alerts.topic_arn)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tflock-reaper")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TflockReaper")
    import stream_handler  # noqa: PLC0415 - imported once the environment is set, as Lambda does
    import sweeper_handler  # noqa: PLC0415
    from tflock_reaper.adapters.channels.pagerduty import PagerDutyNotifier  # noqa: PLC0415
    from tflock_reaper.adapters.channels.slack import SlackNotifier  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415
    from tflock_reaper.entrypoints.stream import default_store  # noqa: PLC0415
    from tflock_reaper.entrypoints.wiring import default_clients  # noqa: PLC0415

    monkeypatch.setattr(sweeper_handler.metrics, "namespace", "TflockReaper")
    monkeypatch.setattr(stream_handler.metrics, "namespace", "TflockReaper")
    # Short timeouts and backoffs so that the failing channels fail fast (the deployed defaults are seconds).
    for notifier in (SlackNotifier, PagerDutyNotifier):
        defaults = notifier.__init__.__kwdefaults__
        monkeypatch.setitem(defaults, "timeout", 0.3)
        monkeypatch.setitem(defaults, "backoff", 0.01)
    caches: list[Any] = [get_settings, default_store, default_clients]
    for cache in caches:
        cache.cache_clear()

    powertools = io.StringIO()
    handlers = {sweeper_handler.logger.registered_handler, stream_handler.logger.registered_handler}
    previous = [(handler, handler.setStream(powertools)) for handler in handlers]
    everything = _Everything()
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(everything)
    root.setLevel(logging.DEBUG)
    # Loggers that set their own level (or stop propagating) are opened up too: the most a deployment could log.
    opened = {
        name: logging.getLogger(name) for name in ("tflock_reaper.adapters.channels.slack.sdk", "urllib3", "botocore")
    }
    saved = {name: (lg.level, lg.propagate) for name, lg in opened.items()}
    for lg in opened.values():
        lg.setLevel(logging.DEBUG)
        lg.propagate = True
    try:
        yield Captured(powertools, everything)
    finally:
        for name, (level, propagate) in saved.items():
            opened[name].setLevel(level)
            opened[name].propagate = propagate
        root.removeHandler(everything)
        root.setLevel(saved_level)
        for handler, stream in previous:
            handler.setStream(stream)
        for cache in caches:
            cache.cache_clear()


def _acquire(captured: Captured, dynamodb: Any, path: str, age: timedelta) -> dict[str, Any]:
    created = datetime.now(UTC).replace(microsecond=0) - age
    item = lock_item(path, created=created)
    put(dynamodb, item)
    assert captured.stream(stream_record("INSERT", new=item, at=created)) == {"batchItemFailures": []}
    return item


def _failures(captured: Captured) -> list[dict[str, Any]]:
    return [line for line in captured.powertools_lines() if line.get("message") == "notification failed"]


def test_alerts_sent_and_resolved_log_no_secret(captured, dynamodb, alerts):
    item = _acquire(captured, dynamodb, PROD, timedelta(hours=1))
    result = captured.sweep()
    assert result["summary"]["stale"] == 1
    assert len(alerts.slack.requests) == 1
    assert alerts.slack.requests[0].path == SLACK_PATH  # the secret was really used...
    assert alerts.pagerduty_events()[0]["routing_key"] == ROUTING_KEY
    dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": item["LockID"]})
    assert captured.stream(stream_record("REMOVE", old=item, at=datetime.now(UTC))) == {"batchItemFailures": []}
    assert len(alerts.slack.requests) == 2  # ...twice: stale, then resolved
    sent = [line for line in captured.powertools_lines() if line.get("message") == "notification sent"]
    assert {line["channel"] for line in sent} == {"slack", "sns", "pagerduty"}
    # ...and never logged, returned, published or stored.
    captured.assert_secret_free(result, alerts.sns_messages(), table_items(dynamodb, STATE_TABLE))


def test_channels_answering_500_with_the_secret_in_the_body_log_no_secret(captured, dynamodb, alerts):
    # Each service echoes its own secret in its error body, as a proxy or a verbose server may.
    alerts.slack.reply(Reply(500, f"internal error posting to {alerts.slack.url(SLACK_PATH)}"))
    alerts.pagerduty.reply(Reply(500, f'{{"status":"error","message":"routing_key {ROUTING_KEY} failed"}}'))
    _acquire(captured, dynamodb, PROD, timedelta(hours=1))
    result = captured.sweep()
    assert len(alerts.slack.requests) == 3  # every attempt made, each with the secret URL
    failures = {line["channel"]: line["error"] for line in _failures(captured)}
    assert set(failures) == {"slack", "pagerduty"}
    assert "HTTP 500" in failures["slack"]
    assert "HTTP 500" in failures["pagerduty"]
    emf = [line for line in captured.emf() if "NotificationFailures" in line]
    assert emf
    assert emf[-1]["NotificationFailures"] == [2.0]
    captured.assert_secret_free(result, table_items(dynamodb, STATE_TABLE))


def test_channels_timing_out_log_no_secret(captured, dynamodb, alerts):
    alerts.slack.reply(Reply(hang=5))
    alerts.pagerduty.reply(Reply(hang=5))
    _acquire(captured, dynamodb, PROD, timedelta(hours=1))
    result = captured.sweep()
    failures = {line["channel"]: line["error"] for line in _failures(captured)}
    assert set(failures) == {"slack", "pagerduty"}
    assert "unreachable" in failures["slack"]
    assert "unreachable" in failures["pagerduty"]
    captured.assert_secret_free(result, table_items(dynamodb, STATE_TABLE))


def test_a_resolved_alert_failing_on_the_stream_logs_no_secret(captured, dynamodb, alerts):
    item = _acquire(captured, dynamodb, PROD, timedelta(hours=1))
    captured.sweep()
    alerts.slack.reply(Reply(503, f"down: {SLACK_PATH}"))
    alerts.pagerduty.reply(Reply(hang=5))
    dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": item["LockID"]})
    # Retryable failures fail the record; a batch of one failed record fails the invocation, whose exception
    # and traceback Lambda writes to the log.
    with pytest.raises(BatchProcessingError) as failed:
        captured.stream(stream_record("REMOVE", old=item, at=datetime.now(UTC)))
    assert "will retry" in str(failed.value)
    assert {line["channel"] for line in _failures(captured)} == {"slack", "pagerduty"}
    captured.assert_secret_free("".join(traceback.format_exception(failed.value)), table_items(dynamodb, STATE_TABLE))


# -- the adapters' own redaction, at the edges found by the tests above ------------------------------------------
def test_a_slack_error_body_echoing_the_bare_webhook_path_is_redacted(alerts):
    from notify_factories import notification  # noqa: PLC0415
    from tflock_reaper.adapters.channels.slack import SlackNotifier  # noqa: PLC0415
    from tflock_reaper.domain.notifier import NotifyError  # noqa: PLC0415

    # The path alone: no scheme, so no URL pattern matches it.
    alerts.slack.reply(Reply(400, f"no such hook: {SLACK_PATH}"))
    notifier = SlackNotifier(lambda: alerts.slack.url(SLACK_PATH), max_attempts=1)
    with pytest.raises(NotifyError) as failed:
        notifier.send(notification())
    assert "HTTP 400" in str(failed.value)
    for leaked in ("XXXXSECRET", "/services/T0000"):
        assert leaked not in str(failed.value)


def test_a_pagerduty_error_body_echoing_the_routing_key_across_the_cut_is_redacted(alerts):
    from notify_factories import notification  # noqa: PLC0415
    from tflock_reaper.adapters.channels.pagerduty import PagerDutyNotifier  # noqa: PLC0415
    from tflock_reaper.domain.notifier import NotifyError  # noqa: PLC0415

    # The key straddles the 300th character: cut first, its first half would no longer match it.
    alerts.pagerduty.reply(Reply(400, "y" * 290 + ROUTING_KEY))
    notifier = PagerDutyNotifier(lambda: ROUTING_KEY, url=alerts.pagerduty.url("/v2/enqueue"), max_attempts=1)
    with pytest.raises(NotifyError) as failed:
        notifier.send(notification())
    assert "HTTP 400" in str(failed.value)
    assert ROUTING_KEY[:10] not in str(failed.value)
