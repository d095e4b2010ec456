"""HTTP for the holder checks that ask a CI system: one urllib3 pool per provider per sweep, bounded attempts
and time, no redirects, and no secret in any message.

Only ``GET`` is sent. A connection error, a timeout or a 5xx is retried (``max_attempts`` in all, short
backoff); 403/429 are never retried here: a sweep must not sit out a rate limit, the answer is ``unknown``
and the next sweep asks again. ``Retry-After`` is therefore not waited for, only reported.

Time: ``timeout`` bounds each connect and each read, and the whole request (every attempt and backoff, name
lookup, TLS, headers and body) ends within ``total`` seconds (:data:`REQUEST_TOTAL_SECONDS`) or what is left
of the sweep's :class:`~tflock_reaper.domain.deadline.Budget`, whichever is sooner
(:mod:`tflock_reaper.adapters.outbound`): an endpoint that drips its answer a byte at a time is cut off there. Once
the budget is spent, nothing is sent: the check answers ``unknown`` (:class:`NoTimeLeftError`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from urllib3.exceptions import HTTPError as Urllib3Error

from tflock_reaper.adapters.outbound import MIN_ATTEMPT_SECONDS, DeadlineExceededError, DeadlinePool, DeadlineRetry
from tflock_reaper.adapters.secret_store import SecretUnavailableError, describe_ref, unavailable
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.policy import SecretRef
from tflock_reaper.domain.text import fit, one_line, redact

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
HTTP_OK = range(200, 300)
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_TOO_MANY_REQUESTS = 429
#: How much of an error body or exception text goes into an evidence line.
DETAIL_MAX = 160
#: Seconds one request may take in all, every attempt and backoff included (two attempts of 5 s).
REQUEST_TOTAL_SECONDS = 10.0


@dataclass(frozen=True)
class Answer:
    """An HTTP answer. ``headers`` is urllib3's case-insensitive mapping."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return None if value is None else str(value).strip()

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def detail(self, *secrets: str) -> str:
        """A short, secret-free, one-line excerpt of the body (an API's ``message`` when it has one)."""
        text = self.body[:2000].decode("utf-8", "replace")
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("message"), str | dict):
            text = str(data["message"])
        return fit(one_line(redact(text, *secrets)).strip(), DETAIL_MAX) or "(empty body)"


class UnreachableError(Exception):
    """No HTTP answer after every attempt (refused, timed out, reset, TLS failure, or not complete by the request's
    deadline). The message is secret-free."""


class NoTimeLeftError(UnreachableError):
    """Not asked: the sweep's time for outbound requests is spent."""


def origin(url: str) -> str:
    """``scheme://host[:port]``: what a sweep stops asking after a failure that would repeat."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def shown(url: str) -> str:
    """A URL as evidence may show it: without query string, fragment or credentials."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def describe_error(err: BaseException, *secrets: str) -> str:
    reason = getattr(err, "reason", None) or err
    return fit(one_line(redact(f"{type(reason).__name__}: {reason}", *secrets)), DETAIL_MAX)


def secret_reader(secrets: Callable[[SecretRef], str], ref: SecretRef) -> Callable[[], str]:
    """A lazy reader of ``ref``: called when a check first needs it, so that a missing or unreadable secret
    makes that check answer ``unknown`` (naming the secret and AWS's error) instead of failing the sweep's wiring."""

    def read() -> str:
        try:
            value = secrets(ref)
        except SecretUnavailableError:
            raise  # the resolver's: names the secret and AWS's error already
        except Exception as err:  # noqa: BLE001 - whatever the resolver raised, the credential is unavailable
            raise unavailable(ref, err) from None
        if not value.strip():
            raise SecretUnavailableError(f"{describe_ref(ref)} is empty")
        return value.strip()

    return read


def read_credential(reader: Callable[[], str], what: str) -> str:
    """The credential, or :class:`SecretUnavailableError` saying which one could not be read and why."""
    try:
        value = reader().strip()
    except SecretUnavailableError as err:
        raise SecretUnavailableError(f"cannot read the {what} ({err})") from None
    except Exception as err:  # noqa: BLE001 - a failing reader is an unavailable credential
        raise SecretUnavailableError(f"cannot read the {what} ({type(err).__name__})") from None
    if not value:
        raise SecretUnavailableError(f"the {what} is empty")
    return value


class Web:
    """One urllib3 pool for a sweep's holder checks (connections to one CI system are reused across checks), and
    the sweep's :class:`~tflock_reaper.domain.deadline.Budget` for outbound requests (unbounded by default: the CLI)."""

    def __init__(
        self, *, backoff: float = 0.2, budget: Budget = UNBOUNDED, total: float = REQUEST_TOTAL_SECONDS
    ) -> None:
        self.backoff = backoff
        self.budget = budget
        self.total = total
        self._http = DeadlinePool()

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        max_attempts: int,
        secrets: Sequence[str] = (),
    ) -> Answer:
        """``GET url``. Raises :class:`UnreachableError` when no answer came after ``max_attempts`` attempts (each
        connect and each read bounded by ``timeout``) or by the request's deadline (``total`` seconds, or the
        sweep's time left if sooner), and :class:`NoTimeLeftError`, without sending anything, once the sweep's
        time is spent."""
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.budget.spent(at_least=MIN_ATTEMPT_SECONDS):
            raise NoTimeLeftError("no time left in this sweep to ask")
        cut = " (all the time left in this sweep)" if self.budget.remaining() < self.total else ""
        deadline = self.budget.deadline(self.total)
        retry = DeadlineRetry.attempts(
            deadline, max_attempts, method="GET", statuses=RETRYABLE_STATUSES, backoff=self.backoff
        )
        try:
            response = self._http.request(
                "GET", url, headers=headers, deadline=deadline, timeout=timeout, retries=retry
            )
        except DeadlineExceededError as err:
            raise UnreachableError(f"{err}{cut}") from None
        except Urllib3Error as err:
            detail = describe_error(err, *secrets)
            raise UnreachableError(f"no answer after {max_attempts} attempt(s) of {timeout:g}s: {detail}") from None
        return Answer(response.status, response.headers, response.data)
