"""The base of the holder checks that ask over HTTP: GitHub, GitLab and the generic ``http`` check.

What they share: the sweep's session (one pool and time budget, and the instances not to ask again), the credential
read when a request first needs it, and one ``GET`` that turns every failure into a :class:`NoAnswerError` with a
secret-free reason (the failure ladder), which the check answers as ``unknown``. A failure that would repeat (no
answer, a rate limit) stops the sweep asking that instance again; the next sweep asks afresh. GitHub and GitLab
add the rungs of a CI system's API (:class:`CiApiCheck`): rate limits, a rejected token, denied access, not found.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ValidationError

from tflock_reaper.adapters.holders.clock import when
from tflock_reaper.adapters.holders.web import (
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    HTTP_OK,
    HTTP_TOO_MANY_REQUESTS,
    HTTP_UNAUTHORIZED,
    Answer,
    UnreachableError,
    Web,
    read_credential,
    secret_reader,
)
from tflock_reaper.adapters.secret_store import SecretUnavailableError
from tflock_reaper.domain.liveness import HolderCheck, HolderState, HolderStatus, ProviderBuilder
from tflock_reaper.domain.lock import LockRecord
from tflock_reaper.domain.policy import SecretRef

_Key = TypeVar("_Key", bound=Hashable)
_Value = TypeVar("_Value")
_Settings = TypeVar("_Settings")
_Session = TypeVar("_Session", bound="WebSession")


def host_of(who: str) -> str:
    """The host part of Terraform's ``Who`` (``user@host``); empty when there is none."""
    return who.rpartition("@")[2].strip() if "@" in who else ""


class NoAnswerError(Exception):
    """No usable answer; ``reason`` says why (secret-free), ``stop`` (when set) why the sweep must not ask that
    instance again."""

    def __init__(self, reason: str, *, stop: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.stop = stop


@dataclass
class WebSession:
    """What the checks of one kind share in a sweep: the pool and time budget, and the instances not to ask again
    in this sweep, with why."""

    web: Web = field(default_factory=Web)
    stopped: dict[str, str] = field(default_factory=dict)


def remembered(
    cache: dict[_Key, _Value | NoAnswerError], key: _Key, fetch: Callable[[], _Value]
) -> _Value | NoAnswerError:
    """``cache[key]``, fetched on first use. A failure is remembered too: the sweep does not ask again."""
    if key not in cache:
        try:
            cache[key] = fetch()
        except NoAnswerError as failure:
            cache[key] = failure
    return cache[key]


@dataclass(frozen=True)
class Asked:
    """Whom a request asks, and for what, as the evidence names them."""

    instance: str
    """The key the sweep stops asking by: an API's base URL, an endpoint's origin."""
    name: str
    """Who answers: ``GitHub``, or the endpoint."""
    speaker: str
    """Who did not answer: ``the GitHub API``, or the endpoint."""
    place: str
    """Where, in the note that stops the sweep asking: ``the GitHub API at <url>``, or the endpoint's origin."""
    what: str | None = None
    """What is asked for: ``the runs of <repository>``; ``None`` where the name says it."""

    @property
    def about(self) -> str:
        return f" for {self.what}" if self.what else ""


@dataclass(frozen=True)
class Credential:
    """A check's secret, sent as one request header (``header: prefix + value``); ``what`` names it in evidence."""

    what: str
    header: str
    prefix: str = ""


class WebCheck(Generic[_Settings, _Session]):
    """The base of a holder check that asks over HTTP. ``secret`` reads its credential when a request first needs
    it (``None``: no reader was configured); ``session`` is the sweep's (its own when none is given). Each request:
    ``timeout`` seconds to connect and per read, ``max_attempts`` attempts."""

    name: ClassVar[str]
    session_type: type[_Session]

    def __init__(
        self,
        settings: _Settings,
        secret: Callable[[], str] | None,
        *,
        timeout: float = 5.0,
        max_attempts: int = 2,
        session: _Session | None = None,
    ) -> None:
        self.settings = settings
        self._secret = secret
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.session = session or self.session_type()

    @classmethod
    def provider(
        cls,
        session: _Session,
        secrets: Callable[[SecretRef], str],
        secret_of: Callable[[_Settings], SecretRef | None],
        **options: Any,
    ) -> ProviderBuilder:
        """The builder of this kind's checks for one sweep: they share ``session``; each reads the secret that
        ``secret_of(settings)`` names through ``secrets`` only when a request first needs it."""

        def build(settings: _Settings) -> HolderCheck:
            ref = secret_of(settings)
            return cls(settings, None if ref is None else secret_reader(secrets, ref), session=session, **options)

        return build

    def status(self, lock: LockRecord, now: datetime, acquired_by: datetime) -> HolderStatus:
        raise NotImplementedError

    def _answer(self, state: HolderState, evidence: str) -> HolderStatus:
        return HolderStatus(state, evidence, self.name)

    def _get(
        self, url: str, asked: Asked, *, headers: Mapping[str, str], credential: Credential | None = None
    ) -> Answer:
        """``GET url`` with ``headers`` (and the credential, read now), or :class:`NoAnswerError`: nothing is sent
        to an instance the sweep stopped asking; no answer, or one the failure ladder rejects, stops it when the
        failure would repeat."""
        stopped = self.session.stopped.get(asked.instance)
        if stopped:
            raise NoAnswerError(f"{asked.name} was not asked{asked.about}: {stopped} earlier in this sweep")
        secrets: tuple[str, ...] = ()
        if credential is not None:
            value = self._read(credential.what)
            headers = {**headers, credential.header: credential.prefix + value}
            secrets = (value,)
        try:
            answer = self.session.web.get(
                url, headers=headers, timeout=self.timeout, max_attempts=self.max_attempts, secrets=secrets
            )
        except UnreachableError as err:
            self.session.stopped[asked.instance] = f"{asked.place} did not answer"
            raise NoAnswerError(f"{asked.speaker} did not answer{asked.about}: {err}") from None
        failure = self._failure(answer, asked, secrets)
        if failure is not None:
            if failure.stop:
                self.session.stopped[asked.instance] = failure.stop
            raise failure
        used_up = self._used_up(answer)
        if used_up:  # usable, but the next request would be refused
            self.session.stopped[asked.instance] = used_up
        return answer

    def _read(self, what: str) -> str:
        if self._secret is None:
            raise NoAnswerError(f"no reader for the {what} was configured")
        try:
            return read_credential(self._secret, what)
        except SecretUnavailableError as err:
            raise NoAnswerError(str(err)) from None

    def _failure(self, answer: Answer, asked: Asked, secrets: Sequence[str]) -> NoAnswerError | None:
        """The last rung of the ladder: any status but 2xx is no answer, and a 429 stops the sweep asking."""
        if answer.status in HTTP_OK:
            return None
        stop = f"{asked.place} answered 429 Too Many Requests" if answer.status == HTTP_TOO_MANY_REQUESTS else None
        return NoAnswerError(
            f"{asked.name} answered HTTP {answer.status}{asked.about}: {answer.detail(*secrets)}", stop=stop
        )

    def _used_up(self, answer: Answer) -> str | None:
        """Why the sweep stops asking after a usable ``answer``: ``None`` to go on (a plain endpoint announces no
        rate limit)."""
        return None


@dataclass(frozen=True, kw_only=True)
class CiApi:
    """A CI system's REST API as its holder check speaks to it and names it in evidence."""

    name: str
    """``GitHub``."""
    speaker: str
    """Who does not answer: ``the GitHub API``."""
    base_url: Callable[[Any], str]
    """The API's base URL in a check's settings (``attrgetter("api_url")``)."""
    auth_header: str
    """The header that carries the token, after ``auth_prefix`` (``Bearer ``)."""
    auth_prefix: str = ""
    headers: Mapping[str, str]
    """Sent with every request, besides the token."""
    scope: str
    """What a token needs to read runs: a 403 that is no rate limit says so."""
    not_found: str
    """What a 404 most likely means."""
    remaining: str
    """The header that counts the requests left: ``0`` is a rate limit."""
    reset: str | None = None
    """The header with the epoch second the rate limit resets at, if the API sends one."""
    secondary_limits: bool = False
    """A 403 with ``retry-after`` or a rate-limit message is a rate limit too (GitHub's secondary limits)."""

    @property
    def credential(self) -> Credential:
        return Credential(f"{self.name} token", self.auth_header, self.auth_prefix)

    def asking(self, base: str, what: str) -> Asked:
        return Asked(base, self.name, self.speaker, f"{self.speaker} at {base}", what)

    def rate_limited(self, answer: Answer) -> bool:
        if answer.status == HTTP_TOO_MANY_REQUESTS:
            return True
        if answer.status != HTTP_FORBIDDEN:
            return False
        if answer.header(self.remaining) == "0":
            return True
        return self.secondary_limits and (
            answer.header("retry-after") is not None or "rate limit" in answer.detail().lower()
        )

    def resets(self, answer: Answer) -> str:
        """When the rate limit resets, as an evidence suffix (empty when not said)."""
        reset = answer.header(self.reset) if self.reset else None
        if reset and reset.isdigit():
            return f" (resets at {when(datetime.fromtimestamp(int(reset), UTC))})"
        return ""


class CiApiCheck(WebCheck[_Settings, _Session]):
    """The base of a check that asks a CI system's API (:attr:`api`) with a token, and reads its answers as
    documented JSON. Any error, timeout, 401/403/404, rate limit or malformed answer is ``unknown`` with the
    reason, never ``not_running``."""

    api: ClassVar[CiApi]

    @property
    def base(self) -> str:
        """The API's base URL: the instance a sweep stops asking after a failure that would repeat."""
        return self.api.base_url(self.settings).rstrip("/")

    def _ask(self, url: str, what: str) -> Answer:
        """``GET url`` for ``what``, or :class:`NoAnswerError`."""
        api = self.api
        return self._get(url, api.asking(self.base, what), headers=api.headers, credential=api.credential)

    def _parse(self, answer: Answer, validate: Callable[[Any], _Value]) -> _Value:
        """The answer's body, validated as the documented JSON; or :class:`NoAnswerError`."""
        try:
            return validate(answer.json())
        except (ValueError, ValidationError) as err:
            detail = err.errors(include_url=False)[0] if isinstance(err, ValidationError) else None
            where = f" ({'.'.join(str(p) for p in detail['loc'])}: {detail['msg']})" if detail else ""
            raise NoAnswerError(f"{self.api.name}'s answer is not the documented JSON{where}") from None

    def _failure(self, answer: Answer, asked: Asked, secrets: Sequence[str]) -> NoAnswerError | None:
        if answer.status in HTTP_OK:
            return None
        api = self.api
        detail = answer.detail(*secrets)
        if api.rate_limited(answer):
            retry = answer.header("retry-after")
            wait = f", retry after {retry}s" if retry else api.resets(answer)
            reason = f"{api.name} rate limit reached (HTTP {answer.status}{wait}): {detail}"
            return NoAnswerError(reason, stop=reason)
        if answer.status == HTTP_UNAUTHORIZED:
            return NoAnswerError(f"{api.name} rejected the token (HTTP 401: {detail})")
        if answer.status == HTTP_FORBIDDEN:
            return NoAnswerError(
                f"{api.name} denied access to {asked.what} (HTTP 403: {detail}): the token needs {api.scope}"
            )
        if answer.status == HTTP_NOT_FOUND:
            return NoAnswerError(f"{api.name} found no {asked.what} (HTTP 404): {api.not_found}")
        return super()._failure(answer, asked, secrets)

    def _used_up(self, answer: Answer) -> str | None:
        if answer.header(self.api.remaining) == "0":
            return f"{self.api.name}'s rate limit was used up{self.api.resets(answer)}"
        return None
