"""Slack and PagerDuty notifiers against a real HTTP server on loopback, with injected faults."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from drip_server import DripServer
from http_stub import Reply, StubServer
from notify_factories import HOSTILE, LOCK_ID, notification
from tflock_reaper.adapters.channels.pagerduty import PagerDutyNotifier, render_event
from tflock_reaper.adapters.channels.slack import SlackNotifier, render_slack
from tflock_reaper.adapters.log_redaction import LogRedaction, install_log_redaction
from tflock_reaper.adapters.memory import MemoryLedger
from tflock_reaper.domain.deadline import Budget
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.services.dispatch import dispatch

SLACK_PATH = "/services/T0000/B0000/XXXXSECRETXXXX"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"
PD_PATH = "/v2/enqueue"
#: What the wiring gives the notifiers it builds: the secrets they read are cut from urllib3's logs.
REDACTION = LogRedaction()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    stub = StubServer().start()
    yield stub
    stub.stop()


@pytest.fixture
def secrets_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log line at DEBUG, with the log redaction the wiring installs; after the test, neither secret
    may appear in any of them."""
    install_log_redaction(REDACTION)
    caplog.set_level(logging.DEBUG)
    yield caplog
    logged = "\n".join(record.getMessage() for record in caplog.get_records("call"))
    assert "XXXXSECRET" not in logged
    assert ROUTING_KEY not in logged


def slack(server: StubServer, **kwargs: float) -> SlackNotifier:
    options = {"timeout": 2.0, "backoff": 0.05, "redaction": REDACTION, **kwargs}
    return SlackNotifier(lambda: server.url(SLACK_PATH), **options)  # type: ignore[arg-type]


def pagerduty(server: StubServer, **kwargs: float) -> PagerDutyNotifier:
    options = {"timeout": 2.0, "backoff": 0.05, "redaction": REDACTION, **kwargs}
    return PagerDutyNotifier(lambda: ROUTING_KEY, url=server.url(PD_PATH), **options)  # type: ignore[arg-type]


def assert_secret_free(err: NotifyError) -> None:
    assert "XXXXSECRET" not in str(err)
    assert ROUTING_KEY not in str(err)
    assert err.__cause__ is None  # the chained urllib error may carry the URL


# -- Slack -----------------------------------------------------------------------------------------------------
def test_slack_posts_the_block_kit_message(server, secrets_logged):
    n = notification("stale", path="tf-state/env:/dev/network/terraform.tfstate")
    slack(server).send(n)
    (request,) = server.requests
    assert request.path == SLACK_PATH
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.json() == render_slack(n)


def test_slack_hostile_who_and_path_arrive_escaped(server):
    hostile = " ".join(HOSTILE)
    n = notification("reap_blocked", path=f"tf-state/{hostile}/terraform.tfstate", who=hostile)
    slack(server).send(n)
    body = server.requests[0].body.decode()
    assert "<" not in body  # JSON escapes none of these: the raw body is what Slack parses
    assert ">" not in body
    assert "&lt;!channel&gt;" in body


def test_slack_429_waits_for_retry_after(server, secrets_logged):
    server.reply(Reply(429, "rate_limited", {"Retry-After": "1"}), Reply(200, "ok"))
    slack(server).send(notification())
    first, second = server.requests
    assert second.at - first.at >= 0.95
    assert first.body == second.body


def test_slack_500_then_200_is_retried(server):
    server.reply(Reply(500, "rollup_error"), Reply(200, "ok"))
    slack(server).send(notification())
    assert len(server.requests) == 2


def test_slack_always_500_fails_after_bounded_attempts(server, secrets_logged):
    server.reply(Reply(500, "rollup_error"))
    with pytest.raises(NotifyError) as err:
        slack(server, max_attempts=3).send(notification())
    assert len(server.requests) == 3
    assert err.value.retryable
    assert "HTTP 500" in str(err.value)
    assert_secret_free(err.value)


def test_slack_bad_webhook_is_not_retried(server, secrets_logged):
    server.reply(Reply(404, "no_service"))
    with pytest.raises(NotifyError, match="HTTP 404: no_service") as err:
        slack(server).send(notification())
    assert len(server.requests) == 1
    assert not err.value.retryable
    assert_secret_free(err.value)


def test_slack_retry_after_beyond_the_cap_fails_now_instead_of_waiting(server):
    server.reply(Reply(429, "rate_limited", {"Retry-After": "3600"}))
    started = time.monotonic()
    with pytest.raises(NotifyError, match="HTTP 429") as err:
        slack(server, max_retry_after=5).send(notification())
    assert time.monotonic() - started < 2
    assert len(server.requests) == 1
    assert err.value.retryable


def test_slack_hanging_server_times_out_within_a_bounded_time(server, secrets_logged):
    server.reply(Reply(hang=30))
    started = time.monotonic()
    with pytest.raises(NotifyError, match="unreachable") as err:
        slack(server, timeout=0.3, max_attempts=2).send(notification())
    elapsed = time.monotonic() - started
    assert len(server.requests) == 2
    assert 0.6 <= elapsed < 3
    assert err.value.retryable
    assert_secret_free(err.value)


def test_slack_unreachable_endpoint(secrets_logged, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    notifier = SlackNotifier(
        lambda: f"http://127.0.0.1:{port}{SLACK_PATH}", timeout=1, backoff=0.01, redaction=REDACTION
    )
    with pytest.raises(NotifyError, match="unreachable") as err:
        notifier.send(notification())
    assert err.value.retryable
    assert_secret_free(err.value)


# -- PagerDuty -------------------------------------------------------------------------------------------------
def test_pagerduty_trigger_then_resolve_share_one_dedup_key(server, secrets_logged):
    server.reply(Reply(202, '{"status":"success","message":"Event processed"}'))
    notifier = pagerduty(server)
    stale, resolved = notification("stale"), notification("resolved")
    notifier.send(stale)
    notifier.send(resolved)
    trigger, resolve = (r.json() for r in server.requests)
    assert server.requests[0].path == PD_PATH
    assert trigger == {"routing_key": ROUTING_KEY, **render_event(stale)}
    assert trigger["event_action"] == "trigger"
    assert trigger["payload"]["custom_details"]["command"] == f"terraform force-unlock -force {LOCK_ID}"
    assert resolve == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": f"tflock-reaper/tf-state/dev/network/terraform.tfstate/{LOCK_ID}",
    }
    assert trigger["dedup_key"] == resolve["dedup_key"]


def test_pagerduty_429_waits_for_retry_after(server, secrets_logged):
    server.reply(Reply(429, '{"status":"throttle"}', {"Retry-After": "1"}), Reply(202, '{"status":"success"}'))
    pagerduty(server).send(notification())
    first, second = server.requests
    assert second.at - first.at >= 0.95


def test_pagerduty_500_then_202_is_retried(server):
    server.reply(Reply(500, "oops"), Reply(202, '{"status":"success"}'))
    pagerduty(server).send(notification())
    assert len(server.requests) == 2


def test_pagerduty_always_500_fails_after_bounded_attempts(server, secrets_logged):
    server.reply(Reply(500, f"internal error for {ROUTING_KEY}"))
    with pytest.raises(NotifyError, match="HTTP 500") as err:
        pagerduty(server, max_attempts=3).send(notification())
    assert len(server.requests) == 3
    assert err.value.retryable
    assert_secret_free(err.value)


def test_pagerduty_invalid_event_is_not_retried(server, secrets_logged):
    server.reply(Reply(400, '{"status":"invalid event","errors":["Event object is invalid"]}'))
    with pytest.raises(NotifyError, match="HTTP 400") as err:
        pagerduty(server).send(notification())
    assert len(server.requests) == 1
    assert not err.value.retryable


def test_pagerduty_hanging_server_times_out_within_a_bounded_time(server, secrets_logged):
    server.reply(Reply(hang=30))
    started = time.monotonic()
    with pytest.raises(NotifyError, match="unreachable") as err:
        pagerduty(server, timeout=0.3, max_attempts=2).send(notification())
    elapsed = time.monotonic() - started
    assert len(server.requests) == 2
    assert 0.6 <= elapsed < 3
    assert err.value.retryable
    assert_secret_free(err.value)


# -- both, through dispatch ------------------------------------------------------------------------------------
def test_a_failing_slack_does_not_block_pagerduty_and_is_retried_later(server, secrets_logged):
    """Both channels on one stub: Slack's path answers 500 until the stub is told otherwise."""
    server.reply(Reply(500, "rollup_error"))
    ledger = MemoryLedger()
    slack_notifier = slack(server, max_attempts=1)
    pd_server = StubServer().start()
    try:
        pd_server.reply(Reply(202, '{"status":"success"}'))
        pd_notifier = pagerduty(pd_server)
        n = notification()
        first = dispatch(n, [slack_notifier, pd_notifier], ledger)
        assert first.sent == ("pagerduty",)
        assert [r.channel for r in first.failed] == ["slack"]
        server.reply(Reply(200, "ok"))
        second = dispatch(n, [slack_notifier, pd_notifier], ledger)
        assert second.sent == ("slack",)
        assert second.duplicates == ("pagerduty",)
        assert len(pd_server.requests) == 1
        assert len(server.requests) == 2
    finally:
        pd_server.stop()


# -- a total deadline per send, and the sweep's budget (issue 13: hangs) -----------------------------------------
# A read timeout never fires on a webhook that sends a byte every second or two: a send lasted as long as the
# answer took (36 s for an 18-byte body at a byte every 2 s). Each send now ends by its deadline (``total``), here
# 3 s, and fails retryably: the ledger sends it again on a later sweep.
SLOW = {"body": {"interval": 2.0}, "headers": {"interval": 0.5}, "silent": {}}


@pytest.fixture(params=list(SLOW))
def slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DripServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = DripServer(request.param, **SLOW[request.param]).start()  # a 200 with an 18-byte body
    yield server
    server.stop()


def test_slack_dripping_or_silent_fails_retryably_at_the_send_deadline(slow, secrets_logged):
    notifier = SlackNotifier(lambda: slow.url(SLACK_PATH), timeout=5.0, max_attempts=3, total=3.0, redaction=REDACTION)
    started = time.monotonic()
    with pytest.raises(NotifyError, match=r"Slack webhook unreachable: no complete answer within 3\.0s") as err:
        notifier.send(notification())
    assert time.monotonic() - started < 8  # 3 s and a margin; before: 3 attempts of 5 s (silent), 36 s or more
    assert err.value.retryable
    assert_secret_free(err.value)


def test_pagerduty_dripping_or_silent_fails_retryably_at_the_send_deadline(slow, secrets_logged):
    notifier = PagerDutyNotifier(
        lambda: ROUTING_KEY, url=slow.url(PD_PATH), timeout=5.0, max_attempts=3, total=3.0, redaction=REDACTION
    )
    started = time.monotonic()
    with pytest.raises(NotifyError, match=r"PagerDuty Events API unreachable: no complete answer within 3\.0s") as err:
        notifier.send(notification())
    assert time.monotonic() - started < 8
    assert err.value.retryable
    assert_secret_free(err.value)


@pytest.mark.parametrize("make", [slack, pagerduty], ids=["slack", "pagerduty"])
def test_a_send_ends_with_the_sweeps_budget_and_none_is_made_once_it_is_spent(server, make):
    server.reply(Reply(hang=30))
    started = time.monotonic()
    budget = Budget(lambda: 1.5 - (time.monotonic() - started))  # 1.5 s left in the sweep
    with pytest.raises(NotifyError, match="unreachable") as cut:
        make(server, timeout=5.0, budget=budget).send(notification())
    assert time.monotonic() - started < 5
    assert cut.value.retryable

    spent = time.monotonic()
    with pytest.raises(NotifyError, match="not sent: no time left in this sweep") as unsent:
        make(server, budget=budget).send(notification())
    assert time.monotonic() - spent < 0.5
    assert unsent.value.retryable
    assert len(server.requests) == 1


def test_a_retry_after_that_would_outlast_the_send_deadline_is_not_waited_for(server):
    """PagerDuty waits for Retry-After (capped at 30 s), but not past the send's deadline: it answers now."""
    server.reply(Reply(429, '{"status":"throttle"}', {"Retry-After": "20"}), Reply(202, '{"status":"success"}'))
    started = time.monotonic()
    with pytest.raises(NotifyError, match="HTTP 429") as err:
        pagerduty(server, total=10.0).send(notification())
    assert time.monotonic() - started < 5
    assert err.value.retryable
    assert len(server.requests) == 1
