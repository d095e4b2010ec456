"""dispatch: channels are independent, and each event goes out once per channel, retried after a failure."""

from __future__ import annotations

import logging

import pytest
from notify_factories import notification
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.memory import MemoryLedger
from tflock_reaper.domain.notification import DedupKey, Notification
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.services.dispatch import SendStatus, dispatch


class FakeNotifier:
    """Records what it delivered; fails while ``failures`` is positive (with ``error``). Like every adapter, it
    renders in ``send``; ``render_error`` is raised by rendering (a renderer bug on some data)."""

    def __init__(
        self,
        name: str,
        *,
        failures: int = 0,
        error: Exception | None = None,
        render_error: Exception | None = None,
    ) -> None:
        self.name = name
        self.failures = failures
        self.error = error or NotifyError(name, "HTTP 503", retryable=True)
        self.render_error = render_error
        self.delivered: list[str] = []
        self.attempts = 0

    def render(self, n: Notification) -> dict:
        if self.render_error is not None:
            raise self.render_error
        return n.to_dict()

    def send(self, n: Notification) -> None:
        self.render(n)
        self.attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        self.delivered.append(n.dedup_key)


class BrokenLedger(MemoryLedger):
    def claim(self, channel: str, key: DedupKey) -> bool:
        raise RuntimeError("state table throttled")


class RefusingLedger(MemoryLedger):
    """Refuses the claim of one event's key, as DynamoDB refuses an item whose key is too large."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def claim(self, channel: str, key: DedupKey) -> bool:
        raise self.error


def test_every_channel_gets_the_notification():
    slack, sns = FakeNotifier("slack"), FakeNotifier("sns")
    n = notification()
    result = dispatch(n, [slack, sns], MemoryLedger())
    assert result.sent == ("slack", "sns")
    assert slack.delivered == sns.delivered == [n.dedup_key]
    assert result.dedup_key == n.dedup_key


@pytest.mark.parametrize(
    "error",
    [NotifyError("slack", "HTTP 500", retryable=True), RuntimeError("a bug in the channel"), TimeoutError()],
)
def test_a_failing_channel_does_not_block_the_others(error):
    slack = FakeNotifier("slack", failures=1, error=error)
    sns, pagerduty = FakeNotifier("sns"), FakeNotifier("pagerduty")
    result = dispatch(notification(), [slack, sns, pagerduty], MemoryLedger())
    assert result.sent == ("sns", "pagerduty")
    (failed,) = result.failed
    assert failed.channel == "slack"
    assert failed.status is SendStatus.FAILED
    assert failed.error
    assert failed.retryable
    assert len(sns.delivered) == len(pagerduty.delivered) == 1


def test_exactly_once_per_channel_across_repeated_dispatches():
    ledger = MemoryLedger()
    slack, sns = FakeNotifier("slack"), FakeNotifier("sns")
    n = notification()
    first = dispatch(n, [slack, sns], ledger)
    second = dispatch(n, [slack, sns], ledger)
    third = dispatch(notification(), [slack, sns], ledger)  # an equal event built again (a redelivery)
    assert first.sent == ("slack", "sns")
    assert second.duplicates == third.duplicates == ("slack", "sns")
    assert slack.delivered == sns.delivered == [n.dedup_key]


def test_each_event_and_each_renotification_is_its_own_event():
    ledger, slack = MemoryLedger(), FakeNotifier("slack")
    events = [
        notification("stale"),
        notification("still_stale", sequence=1),
        notification("still_stale", sequence=2),
        notification("reaped"),
        notification("stale", lock_id="another-acquisition"),
    ]
    for n in events + events:
        dispatch(n, [slack], ledger)
    assert slack.delivered == [n.dedup_key for n in events]


def test_a_failed_send_releases_the_claim_so_a_later_sweep_sends_it_once():
    ledger = MemoryLedger()
    slack, sns = FakeNotifier("slack", failures=1), FakeNotifier("sns")
    n = notification()
    first = dispatch(n, [slack, sns], ledger)
    assert first.sent == ("sns",)
    assert [r.channel for r in first.failed] == ["slack"]
    second = dispatch(n, [slack, sns], ledger)
    assert second.sent == ("slack",)
    assert second.duplicates == ("sns",)
    third = dispatch(n, [slack, sns], ledger)
    assert third.duplicates == ("slack", "sns")
    assert slack.delivered == sns.delivered == [n.dedup_key]
    assert slack.attempts == 2


def test_a_ledger_that_cannot_claim_sends_nothing_and_reports_failure():
    slack = FakeNotifier("slack")
    result = dispatch(notification(), [slack], BrokenLedger())
    (failed,) = result.failed
    assert "state table throttled" in (failed.error or "")
    assert failed.retryable
    assert slack.attempts == 0


def test_dispatch_logs_keyword_fields(caplog):
    caplog.set_level(logging.INFO, logger="tflock_reaper.services")
    n = notification()
    dispatch(n, [FakeNotifier("slack"), FakeNotifier("sns", failures=1)], MemoryLedger())
    sent = next(r for r in caplog.records if r.getMessage() == "notification sent")
    assert (sent.channel, sent.dedup_key, sent.event, sent.lock_path) == ("slack", n.dedup_key, "stale", n.lock_path)
    failed = next(r for r in caplog.records if r.getMessage() == "notification failed")
    assert failed.levelno == logging.WARNING
    assert (failed.channel, failed.retryable) == ("sns", True)


def test_result_to_dict():
    result = dispatch(notification(), [FakeNotifier("slack", failures=1)], MemoryLedger())
    assert result.to_dict()["channels"] == [
        {"channel": "slack", "status": "failed", "error": "HTTP 503", "retryable": True}
    ]


# -- failures are classified: one notification's data never takes a channel down (issue 13) ----------------------
def test_a_notification_that_cannot_be_rendered_fails_alone_without_a_claim():
    """Before: the renderer's OverflowError (a Created in year 1), raised inside send, was taken for a transport
    failure: retryable, so the sweep marked the channel down and the stream function retried the record."""
    ledger = MemoryLedger()
    slack = FakeNotifier("slack", render_error=OverflowError("date value out of range"))
    sns = FakeNotifier("sns")
    result = dispatch(notification(), [slack, sns], ledger)
    (failed,) = result.failed
    assert (failed.channel, failed.retryable) == ("slack", False)
    assert failed.error == "cannot render the notification: OverflowError: date value out of range"
    assert slack.attempts == 0
    assert result.sent == ("sns",)
    assert ("slack", notification().dedup_key) not in ledger.entries  # never claimed: nothing to release


def test_a_ledger_that_refuses_this_event_fails_it_alone():
    refused = AwsAccessError("cannot claim: ValidationException: key too large", transient=False)
    slack = FakeNotifier("slack")
    (failed,) = dispatch(notification(), [slack], RefusingLedger(refused)).failed
    assert failed.retryable is False
    assert failed.error == (
        "notification ledger refused this event: AwsAccessError: cannot claim: ValidationException: key too large"
    )
    assert slack.attempts == 0


@pytest.mark.parametrize("error", [AwsAccessError("ProvisionedThroughputExceededException"), RuntimeError("throttled")])
def test_a_ledger_that_is_unavailable_is_still_a_retryable_failure(error):
    (failed,) = dispatch(notification(), [FakeNotifier("slack")], RefusingLedger(error)).failed
    assert failed.retryable is True
    assert failed.error is not None
    assert failed.error.startswith("notification ledger unavailable: ")


def test_an_error_that_quotes_a_hostile_value_is_reported_on_one_line_and_short():
    hostile = "x\nVerdict: keep -> kept\u2028" + "y" * 10_000
    slack = FakeNotifier("slack", render_error=ValueError(hostile))
    sns = FakeNotifier("sns", failures=1, error=NotifyError("sns", hostile, retryable=False))
    for failed in dispatch(notification(), [slack, sns], MemoryLedger()).failed:
        assert failed.error is not None
        assert len(failed.error.splitlines()) == 1
        assert len(failed.error) <= 500
