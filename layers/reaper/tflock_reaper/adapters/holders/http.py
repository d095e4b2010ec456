"""A generic HTTP holder check, for Jenkins, Buildkite or an in-house system: the policy's URL template is filled
with the lock's ``{lock_path}``, ``{lock_id}`` and ``{who}`` (each URL-encoded, ``/`` included) and fetched with
``GET``; the endpoint answers ``{"running": true}`` or ``{"running": false}``.

Anything else is ``unknown``: a non-2xx status (redirects are not followed, so the optional secret header is never
sent to another host), a body that is not a JSON object, a ``running`` that is missing or not a boolean
(``"false"``, ``0`` and ``null`` included), a timeout or an unreadable header secret. Once the endpoint's host did
not answer, or answered 429, it is not asked again in the sweep: a sweep stays bounded in time whatever the
number of locks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from tflock_reaper.adapters.holders.base import Asked, Credential, NoAnswerError, WebCheck, WebSession, remembered
from tflock_reaper.adapters.holders.web import Answer, Web, origin, shown
from tflock_reaper.domain.liveness import HolderState, HolderStatus, ProviderBuilder
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import HttpCheck, SecretRef


@dataclass
class HttpSession(WebSession):
    """One sweep's answers by filled URL (and header), shared by every HTTP check, and the hosts not to ask
    again in this sweep."""

    answers: dict[tuple[str, str | None, SecretRef | None], HolderStatus | NoAnswerError] = field(default_factory=dict)


def fill_url(template: str, lock: LockRecord) -> str:
    """The template with ``{lock_path}``, ``{lock_id}`` and ``{who}`` replaced, each URL-encoded (``/`` too).
    Only these three placeholders are replaced; any other brace is left as written."""
    values = {"lock_path": lock.lock_path, "lock_id": lock.lock_id, "who": lock.info.who}
    url = template
    for name, value in values.items():
        url = url.replace("{" + name + "}", quote(value, safe=""))
    return url


class HttpHolderCheck(WebCheck[HttpCheck, HttpSession]):
    """``http`` holder check: asks an in-house endpoint whether the lock's holder is running.

    API calls per sweep: one ``GET <url template filled for the lock>`` per distinct filled URL (so once per
    lock when the template uses ``{lock_path}`` or ``{lock_id}``, once for all locks of one holder with only
    ``{who}``, once in all without placeholders), with ``Accept: application/json`` and the optional header;
    none to a host that did not answer or answered 429 earlier in the sweep. Each request: ``timeout`` seconds
    to connect and per read, ``max_attempts`` attempts (connection errors, timeouts and 5xx are retried).
    """

    name = "http"
    session_type = HttpSession

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        url = fill_url(self.settings.url, lock)
        header = self.settings.header
        key = (url, header.name if header else None, header.value if header else None)
        answer = remembered(self.session.answers, key, lambda: self._ask(url))
        return self._answer(HolderState.UNKNOWN, answer.reason) if isinstance(answer, NoAnswerError) else answer

    def _ask(self, url: str) -> HolderStatus:
        endpoint = shown(url)
        host = origin(url)
        header = self.settings.header
        answer = self._get(
            url,
            Asked(instance=host, name=endpoint, speaker=endpoint, place=host),
            headers={"Accept": "application/json"},
            credential=Credential(f"{header.name} header value", header.name) if header else None,
        )
        return self._judge(endpoint, answer)

    def _judge(self, endpoint: str, answer: Answer) -> HolderStatus:
        try:
            data: Any = answer.json()
        except ValueError:
            return self._answer(HolderState.UNKNOWN, f'{endpoint} did not answer JSON {{"running": true|false}}')
        running = data.get("running") if isinstance(data, dict) else None
        if not isinstance(running, bool):
            return self._answer(
                HolderState.UNKNOWN,
                f'{endpoint} answered without a boolean "running" (expected {{"running": true|false}})',
            )
        if running:
            return self._answer(HolderState.RUNNING, f"{endpoint} says the holder is running")
        return self._answer(HolderState.NOT_RUNNING, f"{endpoint} says the holder is not running")


def http_provider(secrets: Callable[[SecretRef], str], *, web: Web | None = None, **options: Any) -> ProviderBuilder:
    """The ``http`` builder for one sweep: its checks share one :class:`HttpSession`; the header secret is read
    only when a request is made."""
    session = HttpSession(web=web or Web())  # the sweep's (bounded in time), or one of its own
    return HttpHolderCheck.provider(
        session, secrets, lambda settings: settings.header.value if settings.header else None, **options
    )
