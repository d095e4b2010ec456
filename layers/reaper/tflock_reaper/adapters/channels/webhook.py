"""Delivery for the channels that ``POST`` JSON to an HTTP endpoint (Slack's incoming webhook, PagerDuty's Events
API): one request per notification, with bounded retries, within a total deadline, and no secret shown.

Retries: at most ``max_attempts`` requests per notification, every cause (429, 5xx, connection errors, timeouts)
counted together (:meth:`~tflock_reaper.adapters.outbound.DeadlineRetry.attempts`); a ``Retry-After`` is waited for
up to ``max_retry_after`` seconds, otherwise the wait backs off exponentially from ``backoff`` seconds.

Time: ``timeout`` bounds each connect and each read; a whole send, every attempt and wait included, ends within
``total`` seconds or what is left of the sweep's :class:`~tflock_reaper.domain.deadline.Budget`, whichever is sooner
(:mod:`tflock_reaper.adapters.outbound`): an endpoint that drips its answer is cut off there, and a retry whose wait
would not fit is not made. Once the budget is spent, a send fails at once (retryably), without a request.

Secrets: the channel's secret (the webhook URL, the routing key) is read on every send (a cached Powertools
Parameters lookup in the Lambda), so that a rotated secret is picked up. It never appears in an error: urllib3's
exception (whose cause may hold the URL) is not chained, and an error body that echoes it is redacted whole, then
cut. With the wiring's :class:`~tflock_reaper.adapters.log_redaction.LogRedaction`, it is cut from urllib3's logs too.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Container
from typing import Any, ClassVar

from tflock_reaper.adapters.log_redaction import LogRedaction
from tflock_reaper.adapters.outbound import MIN_ATTEMPT_SECONDS, DeadlineExceededError, DeadlinePool, DeadlineRetry
from tflock_reaper.adapters.secret_store import SecretUnavailableError
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.notifier import HTTP_SERVER_ERRORS, HTTP_TOO_MANY_REQUESTS, NotifyError, retryable_status
from tflock_reaper.domain.text import one_line, redact

RETRYABLE_STATUSES = frozenset({HTTP_TOO_MANY_REQUESTS, *HTTP_SERVER_ERRORS})


class WebhookNotifier(ABC):
    """A notifier that posts JSON (see the module). A channel says what it posts where (:meth:`request`), what
    its secret must look like (:meth:`check`) and which parts of it are secret (:meth:`secret_parts`).

    ``secret_provider`` is called on every send. ``url``: the endpoint, for a channel whose secret is not its URL
    (PagerDuty's). ``redaction``: the process's log redaction, told of every secret read.
    """

    #: Names the endpoint in errors ("Slack webhook unreachable").
    service: ClassVar[str]
    #: Names the secret in errors ("cannot read the Slack webhook URL").
    credential: ClassVar[str]
    content_type: ClassVar[str]
    #: The statuses that mean delivered.
    accepted: ClassVar[Container[int]]
    #: How much of an error answer's body an error shows.
    error_body_max: ClassVar[int]
    #: A ``Retry-After`` longer than ``max_retry_after`` fails the send now, instead of waiting the cap.
    give_up_beyond_cap: ClassVar[bool] = False
    default_name: ClassVar[str]
    default_url: ClassVar[str | None] = None

    def __init__(
        self,
        secret_provider: Callable[[], str],
        *,
        url: str | None = None,
        name: str | None = None,
        timeout: float = 5.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
        total: float = 15.0,
        budget: Budget = UNBOUNDED,
        redaction: LogRedaction | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._secret_provider = secret_provider
        self.url = url or self.default_url
        self._name = name or self.default_name
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_retry_after = max_retry_after
        self.total = total
        self.budget = budget
        self._redaction = redaction
        self._http = DeadlinePool()

    @property
    def name(self) -> str:
        return self._name

    @abstractmethod
    def render(self, notification: Notification) -> dict[str, Any]:
        """What :meth:`send` posts, without the secret."""

    @abstractmethod
    def request(self, notification: Notification, secret: str) -> tuple[str, dict[str, Any]]:
        """The URL and the JSON body of the ``POST``."""

    @abstractmethod
    def check(self, secret: str) -> None:
        """Raise :class:`NotifyError` (not retryable) for a secret that cannot be right."""

    def secret_parts(self, secret: str) -> tuple[str, ...]:
        """What of the secret must never be shown."""
        return (secret,)

    def unusable(self) -> str | None:
        """Why nothing can be sent here (the secret cannot be read, or cannot be right), else ``None``: for a dry
        run, which reads the secret and sends nothing."""
        try:
            self._secret()
        except NotifyError as err:
            return err.message
        return None

    def _secret(self) -> str:
        try:
            secret = self._secret_provider().strip()
        except SecretUnavailableError as err:  # names the secret and AWS's error, never the value
            raise NotifyError(self.name, f"cannot read the {self.credential} ({err})", retryable=True) from None
        except Exception as err:  # noqa: BLE001 - any failure to fetch the secret is a failed send
            raise NotifyError(
                self.name, f"cannot read the {self.credential}: {type(err).__name__}", retryable=True
            ) from None
        self.check(secret)
        if self._redaction is not None:
            self._redaction.add(*self.secret_parts(secret))
        return secret

    def send(self, notification: Notification) -> None:
        """Deliver, or raise :class:`NotifyError`: retryable for a failure of the endpoint (unreachable, 429, 5xx),
        not for an answer that refuses this notification or this configuration (4xx)."""
        if self.budget.spent(at_least=MIN_ATTEMPT_SECONDS):
            raise NotifyError(self.name, "not sent: no time left in this sweep for outbound requests", retryable=True)
        secret = self._secret()
        hidden = self.secret_parts(secret)
        url, payload = self.request(notification, secret)
        deadline = self.budget.deadline(self.total)
        retries = DeadlineRetry.attempts(
            deadline,
            self.max_attempts,
            method="POST",
            statuses=RETRYABLE_STATUSES,
            backoff=self.backoff,
            max_retry_after=self.max_retry_after,
            give_up_beyond_cap=self.give_up_beyond_cap,
        )
        try:
            response = self._http.request(
                "POST",
                url,
                body=json.dumps(payload).encode(),
                headers={"Content-Type": self.content_type},
                deadline=deadline,
                timeout=self.timeout,
                retries=retries,
            )
        except DeadlineExceededError as err:
            raise NotifyError(self.name, f"{self.service} unreachable: {err}", retryable=True) from None
        except Exception as err:  # noqa: BLE001 - urllib3 raises many types; the cause may hold the URL
            reason = getattr(err, "reason", None) or err
            detail = redact(f"{type(reason).__name__}: {reason}", *hidden)
            raise NotifyError(
                self.name,
                f"{self.service} unreachable (after up to {self.max_attempts} attempts): {detail}",
                retryable=True,
            ) from None
        if response.status in self.accepted:
            return
        # Redacted whole, then cut: a cut first could leave half a secret that no longer matches.
        text = one_line(redact(response.data.decode("utf-8", "replace"), *hidden)[: self.error_body_max])
        raise NotifyError(
            self.name,
            f"{self.service} answered HTTP {response.status}: {text or '(empty body)'}",
            retryable=retryable_status(response.status),
        )
