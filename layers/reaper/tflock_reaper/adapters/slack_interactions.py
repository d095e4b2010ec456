"""The Slack app's interactivity requests (adapter): their signature, the presser's private answer, and AWS clients
that fit in Slack's 3 seconds.

**Signature.** Slack signs each request with the app's signing secret: ``v0=`` and the hex HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}``. ``slack_sdk.signature.SignatureVerifier`` computes it and compares in
constant time (``hmac.compare_digest``), and refuses a timestamp more than five minutes from now (a replay). What it
would choke on is refused before it is asked: a timestamp that is not a number (``int()`` raises), a signature that
is not ``v0=`` and 64 hex digits (``compare_digest`` raises on non-ASCII text).

**Answer.** ``response_url`` takes the presser's private (``ephemeral``) answer for 30 minutes. It comes inside the
signed payload, so it is Slack's; it is still posted to only when it starts with the expected prefix
(``https://hooks.slack.com/``), within a total deadline (:mod:`tflock_reaper.adapters.outbound`).

**AWS clients.** The whole press (one state-table read, the lock read, at most one conditional delete and its
records) is done before the answer, so the clients time out early (1 s to connect, 2 s to read) and retry once.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.config import Config

from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.domain.deadline import Deadline
from tflock_reaper.domain.text import redact

if TYPE_CHECKING:
    from tflock_reaper.adapters.outbound import DeadlinePool

logger = logging.getLogger(__name__)

#: Slack refuses (and so does this) a request whose timestamp is further than this from now: a replay.
MAX_AGE_SECONDS = 5 * 60
_OK_FROM, _OK_BELOW = 200, 300
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")

#: Slack's own answer URLs (``response_url``); tests point this at a loopback server.
RESPONSE_URL_PREFIX = "https://hooks.slack.com/"
#: The presser's answer: each connect and read, and the whole POST with its one retry.
ANSWER_TIMEOUT_SECONDS = 1.5
ANSWER_TOTAL_SECONDS = 2.5

#: The AWS clients of a press: Slack wants its answer within 3 seconds.
INTERACTION_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 2},
    connect_timeout=1,
    read_timeout=2,
    user_agent_extra="tflock-reaper",
)


class InteractionClients(AwsClients):
    """:class:`AwsClients` whose clients give up early and retry once (see :data:`INTERACTION_CLIENT_CONFIG`)."""

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs: dict[str, Any] = {"config": INTERACTION_CLIENT_CONFIG}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]


class SignatureCheck(StrEnum):
    VALID = "valid"
    MISSING = "missing"
    """No timestamp or no signature header."""
    MALFORMED = "malformed"
    """A timestamp that is not a number, or a signature that is not ``v0=<64 hex digits>``."""
    STALE = "stale"
    """Signed more than five minutes from now: a replay (or a clock far off)."""
    INVALID = "invalid"
    """Not signed with the app's signing secret, or the body changed since."""


class _WallClock:
    """slack_sdk's ``Clock`` (its one method) on the given clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def _verifier(secret: str, now: Callable[[], float]) -> Any:
    # Imported on the first signature to check: ``slack_sdk``'s package imports its Web API client too (about
    # 0.1 s of a cold start), which a request refused for its headers never needs.
    from slack_sdk.signature import SignatureVerifier  # noqa: PLC0415

    return SignatureVerifier(secret, clock=_WallClock(now))  # type: ignore[arg-type]


class SlackSignature:
    """Checks a request's signature with the signing secret, read only when a request carries one to check
    (``secret``: a callable, cached by the caller; its value never leaves this object)."""

    def __init__(self, secret: Callable[[], str], *, now: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._now = now

    def check(self, body: str, timestamp: str | None, signature: str | None) -> SignatureCheck:
        if timestamp is None or signature is None:
            return SignatureCheck.MISSING
        if _TIMESTAMP.match(timestamp) is None or _SIGNATURE.match(signature) is None:
            return SignatureCheck.MALFORMED
        if abs(self._now() - int(timestamp)) > MAX_AGE_SECONDS:
            return SignatureCheck.STALE
        verifier = _verifier(self._secret(), self._now)
        return SignatureCheck.VALID if verifier.is_valid(body, timestamp, signature) else SignatureCheck.INVALID


def sign(secret: str, timestamp: str, body: str) -> str:
    """The ``X-Slack-Signature`` Slack sends with ``body`` at ``timestamp`` (for tools and tests)."""
    signature = _verifier(secret, time.time).generate_signature(timestamp=timestamp, body=body)
    return str(signature or "")


class ResponseUrl:
    """Posts the presser's answer to the payload's ``response_url``, only under ``prefix``. Never raises: an answer
    that cannot be posted is logged (the press itself stands)."""

    def __init__(self, *, prefix: str = RESPONSE_URL_PREFIX, pool: DeadlinePool | None = None) -> None:
        self.prefix = prefix
        self._pool = pool

    def _connections(self) -> DeadlinePool:
        # Imported on the first answer: urllib3's pool is not needed to refuse a request (cold start).
        from tflock_reaper.adapters.outbound import DeadlinePool  # noqa: PLC0415

        if self._pool is None:
            self._pool = DeadlinePool()
        return self._pool

    def post(self, url: str, message: Mapping[str, Any]) -> bool:
        if not url.startswith(self.prefix):
            logger.warning(
                "response_url refused: not Slack's",
                extra={"response_url": redact(url), "expected_prefix": self.prefix},
            )
            return False
        from tflock_reaper.adapters.outbound import DeadlineRetry  # noqa: PLC0415 - see _connections

        pool = self._connections()
        deadline = Deadline.after(ANSWER_TOTAL_SECONDS)
        retry = DeadlineRetry.attempts(
            deadline, 2, method="POST", statuses=(429, 500, 502, 503, 504), backoff=0.2, max_retry_after=1.0
        )
        try:
            answer = pool.request(
                "POST",
                url,
                deadline=deadline,
                timeout=ANSWER_TIMEOUT_SECONDS,
                retries=retry,
                headers={"Content-Type": "application/json; charset=utf-8"},
                body=json.dumps(message).encode(),
            )
        except Exception as err:  # noqa: BLE001 - urllib3's errors and the deadline's: the answer is lost, logged
            logger.warning("answer to the presser not posted", extra={"error": redact(f"{type(err).__name__}: {err}")})
            return False
        if not _OK_FROM <= answer.status < _OK_BELOW:
            logger.warning("answer to the presser refused by Slack", extra={"status": answer.status})
            return False
        return True
