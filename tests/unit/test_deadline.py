"""Deadlines and the sweep's outbound budget on an injected clock, and the retries they allow (no network)."""

from __future__ import annotations

import math

import pytest
from tflock_reaper.adapters.outbound import DeadlineRetry
from tflock_reaper.domain.deadline import UNBOUNDED, Budget, Deadline
from tflock_reaper.entrypoints.wiring import OUTBOUND_MARGIN_SECONDS, outbound_budget
from tflock_reaper.services.sweep import TIME_RESERVE_SECONDS
from urllib3 import HTTPResponse
from urllib3.exceptions import MaxRetryError, ReadTimeoutError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_deadline_counts_down_to_zero_and_stays_there():
    clock = Clock()
    deadline = Deadline.after(3.0, clock=clock)
    assert deadline.remaining() == 3.0
    clock.now += 2.5
    assert deadline.remaining() == 0.5
    assert not deadline.expired
    clock.now += 1.0
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_a_request_gets_its_own_total_or_what_is_left_of_the_budget_whichever_is_sooner():
    clock = Clock()
    lambda_left = [40.0]
    budget = Budget.keeping(lambda: lambda_left[0], 25.0, clock=clock)  # 15 s for outbound requests
    assert budget.remaining() == 15.0
    assert budget.deadline(10.0).remaining() == 10.0
    lambda_left[0] = 29.0
    assert budget.deadline(10.0).remaining() == 4.0
    lambda_left[0] = 24.0  # into what is kept: spent, never negative
    assert budget.remaining() == 0.0
    assert budget.spent()
    assert budget.deadline(10.0).expired


def test_spent_means_too_little_left_for_a_request():
    assert Budget(lambda: 0.05).spent(at_least=0.1)
    assert not Budget(lambda: 0.5).spent(at_least=0.1)


def test_without_a_countdown_only_the_request_deadline_applies():
    assert UNBOUNDED.remaining() == math.inf
    assert not UNBOUNDED.spent(at_least=1e9)
    assert 9.9 < UNBOUNDED.deadline(10.0).remaining() <= 10.0


def test_the_sweeps_budget_keeps_the_reserve_and_a_margin_of_the_lambdas_remaining_time():
    assert outbound_budget(None) is UNBOUNDED
    budget = outbound_budget(lambda: 40.0)
    assert budget.remaining() == 40.0 - TIME_RESERVE_SECONDS - OUTBOUND_MARGIN_SECONDS


# -- retries within a deadline ---------------------------------------------------------------------------------
def _answer(status: int, **headers: str) -> HTTPResponse:
    return HTTPResponse(body=b"", status=status, headers=headers, preload_content=True)


def _retry(left: float, **options: object) -> DeadlineRetry:
    clock = Clock()
    settings = {"total": 2, "status_forcelist": {429, 503}, "backoff_factor": 1.0, **options}
    return DeadlineRetry.within(Deadline.after(left, clock=clock), **settings)  # type: ignore[arg-type]


def test_a_retry_after_that_fits_is_waited_for_one_that_does_not_is_not():
    fits = _retry(10.0).increment("POST", "/x", response=_answer(429, **{"Retry-After": "5"}))
    assert fits.get_retry_after(_answer(429, **{"Retry-After": "5"})) == 5.0
    with pytest.raises(MaxRetryError):
        _retry(10.0).increment("POST", "/x", response=_answer(429, **{"Retry-After": "20"}))


def test_a_retry_after_beyond_the_cap_is_capped_or_given_up():
    answer = _answer(429, **{"Retry-After": "3600"})
    capped = _retry(60.0, max_retry_after=30.0).increment("POST", "/x", response=answer)
    assert capped.get_retry_after(answer) == 30.0
    with pytest.raises(MaxRetryError):
        _retry(60.0, max_retry_after=30.0, give_up_beyond_cap=True).increment("POST", "/x", response=answer)


def test_an_unreadable_retry_after_counts_as_absent():
    answer = _answer(503, **{"Retry-After": "soon"})
    assert _retry(10.0).increment("POST", "/x", response=answer).get_retry_after(answer) is None


def test_an_error_is_retried_only_while_an_attempt_still_fits():
    error = ReadTimeoutError(None, "/x", "read timed out")  # type: ignore[arg-type]
    assert _retry(1.0).increment("GET", "/x", error=error).total == 1  # first retry: no backoff
    with pytest.raises(MaxRetryError):
        _retry(0.05).increment("GET", "/x", error=error)
    assert _retry(3.0).increment("GET", "/x", error=error).increment("GET", "/x", error=error).total == 0
    second = _retry(1.5).increment("GET", "/x", error=error)
    with pytest.raises(MaxRetryError):  # the next waits 2 s (a 1 s backoff, doubled): more than the 1.5 s left
        second.increment("GET", "/x", error=error)
