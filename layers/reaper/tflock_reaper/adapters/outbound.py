"""Outbound HTTP with a total deadline: the holder checks' ``GET`` and the Slack and PagerDuty ``POST`` (adapter).

urllib3's timeouts bound one socket operation (a connect, a read), not a request: an endpoint that sends a byte
every two seconds, headers or body, never trips a 5 s read timeout and keeps the request alive as long as it
likes. Here every request runs in a worker thread against a :class:`~tflock_reaper.domain.deadline.Deadline` that covers
all of it (name lookup, connect, TLS, headers, body, every retry and every wait between them):

* each socket the request uses is watched: at the deadline it is shut down (``shutdown(SHUT_RDWR)`` on a
  duplicate of its descriptor, which also ends a TLS handshake in progress), so the blocked read in the worker
  returns at once and the request fails;
* a retry is made only when its wait (backoff or ``Retry-After``) leaves time for another attempt
  (:class:`DeadlineRetry`);
* the caller waits for the worker until the deadline, then :data:`ABANDON_AFTER_SECONDS` more for it to notice
  its shut sockets; a worker still busy then (only a name lookup cannot be interrupted) is left behind, and can
  no longer connect anywhere once it wakes up.

So :meth:`DeadlinePool.request` returns or raises by the deadline (plus at most half a second), whatever the
endpoint does. Works with urllib3 1.26 (the Lambda runtime's, with botocore) and 2.x.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, MaxRetryError, ResponseError
from urllib3.util.retry import Retry

from tflock_reaper.domain.deadline import Deadline

#: A request is not started, nor retried, with less time than this left before its deadline.
MIN_ATTEMPT_SECONDS = 0.1
#: How long a request may outlive its deadline while its worker notices that its sockets were shut down.
ABANDON_AFTER_SECONDS = 0.5


class DeadlineExceededError(Exception):
    """No complete answer before the request's deadline. ``seconds``: how long the request was allowed."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"no complete answer within {seconds:.1f}s")


class _Watch:
    """The sockets of one request, shut down when its deadline passes (:meth:`fire`, from the waiting thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handles: list[socket.socket] = []
        self.fired = False
        self._released = False

    def add(self, sock: socket.socket) -> None:
        # A duplicate descriptor of our own: shutting it down ends the connection for every descriptor of it, and
        # it cannot be closed (and its number reused) under us. An SSLSocket's descriptor is the TCP socket's.
        try:
            handle = socket.fromfd(sock.fileno(), sock.family, sock.type)
        except OSError:  # already closed: nothing left to interrupt
            return
        with self._lock:
            if self._released:
                handle.close()
                return
            self._handles.append(handle)
            if self.fired:
                _shut(handle)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            for handle in self._handles:
                _shut(handle)

    def release(self) -> None:
        """The request is over: close the duplicates (the connections themselves stay with the pool)."""
        with self._lock:
            self._released = True
            for handle in self._handles:
                handle.close()
            self._handles.clear()


def _shut(handle: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected (any more): nothing to interrupt
        handle.shutdown(socket.SHUT_RDWR)


#: The watch of the request the current worker thread makes.
_WATCH: ContextVar[_Watch | None] = ContextVar("tflock_reaper_outbound_watch", default=None)


def _connecting(conn: HTTPConnection) -> None:
    watch = _WATCH.get()
    if watch is not None and watch.fired:
        raise ConnectTimeoutError(conn, "not connecting: the request's deadline has passed")


def _connected(sock: socket.socket) -> socket.socket:
    watch = _WATCH.get()
    if watch is not None:
        watch.add(sock)
    return sock


# The connection classes register every socket they open (before TLS, so that a stalled handshake is covered too)
# and, when a pooled connection is reused, its socket, with the watch of the request in progress.
if TYPE_CHECKING:
    _Connection = HTTPConnection
else:
    _Connection = object  # a mixin: at run time its super() is the HTTP or HTTPS connection it is mixed into


class _Watched(_Connection):
    def _new_conn(self) -> socket.socket:
        _connecting(self)
        return _connected(super()._new_conn())

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:
            _connected(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class DeadlineRetry(Retry):
    """urllib3's ``Retry`` within a request's deadline: a retry whose wait (backoff, or ``Retry-After`` when
    respected) would not leave :data:`MIN_ATTEMPT_SECONDS` for another attempt is not made (a retryable status
    is then returned as the answer, an error raised). ``Retry-After`` is capped at ``max_retry_after`` (urllib3
    1.26 has no cap, 2.x allows 6 h); with ``give_up_beyond_cap`` a longer one is not waited for at all. An
    unreadable ``Retry-After`` counts as absent instead of failing the request."""

    deadline: Deadline | None = None
    max_retry_after: float | None = None
    give_up_beyond_cap: bool = False

    @classmethod
    def within(
        cls,
        deadline: Deadline,
        *,
        max_retry_after: float | None = None,
        give_up_beyond_cap: bool = False,
        **options: Any,
    ) -> DeadlineRetry:
        retry = cls(**options)
        retry.deadline = deadline
        retry.max_retry_after = max_retry_after
        retry.give_up_beyond_cap = give_up_beyond_cap
        return retry

    @classmethod
    def attempts(
        cls,
        deadline: Deadline,
        max_attempts: int,
        *,
        method: str,
        statuses: Collection[int],
        backoff: float,
        max_retry_after: float | None = None,
        give_up_beyond_cap: bool = False,
    ) -> DeadlineRetry:
        """At most ``max_attempts`` requests, every cause of a retry (connect, read, a status in ``statuses``,
        other errors) counted together; redirects not followed; a retryable status returned as the answer once no
        retry is left. ``Retry-After`` is respected when ``max_retry_after`` is given (and capped at it)."""
        counters = dict.fromkeys(("total", "connect", "read", "status", "other"), max_attempts - 1)
        return cls.within(
            deadline,
            max_retry_after=max_retry_after,
            give_up_beyond_cap=give_up_beyond_cap,
            redirect=False,
            status_forcelist=frozenset(statuses),
            allowed_methods=frozenset({method}),
            backoff_factor=backoff,
            respect_retry_after_header=max_retry_after is not None,
            raise_on_status=False,
            **counters,
        )

    def new(self, **kw: Any) -> Self:
        retry = super().new(**kw)
        retry.deadline = self.deadline
        retry.max_retry_after = self.max_retry_after
        retry.give_up_beyond_cap = self.give_up_beyond_cap
        return retry

    def _asked_wait(self, response: Any) -> float | None:
        try:
            seconds = super().get_retry_after(response)
        except InvalidHeader:
            return None
        return None if seconds is None else max(seconds, 0.0)

    def get_retry_after(self, response: Any) -> float | None:
        seconds = self._asked_wait(response)
        if seconds is None or self.max_retry_after is None:
            return seconds
        return min(seconds, self.max_retry_after)

    def _planned_wait(self, response: Any) -> float | None:
        """What :meth:`sleep` will wait before the next attempt; ``None``: that wait is not acceptable."""
        if self.respect_retry_after_header and response is not None:
            asked = self._asked_wait(response)
            cap = self.max_retry_after
            if self.give_up_beyond_cap and asked is not None and cap is not None and asked > cap:
                return None
            retry_after = self.get_retry_after(response)
            if retry_after:
                return retry_after
        return self.get_backoff_time()

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Self:
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = retry._planned_wait(response)
        too_late = self.deadline is not None and (wait or 0.0) + MIN_ATTEMPT_SECONDS > self.deadline.remaining()
        if wait is None or too_late:
            reason = error or ResponseError(f"no retry after HTTP {getattr(response, 'status', '?')} in time")
            raise MaxRetryError(_pool, url or "", reason) from reason
        return retry


class DeadlinePool:
    """One urllib3 pool (connections are reused across requests) whose requests end by their deadline."""

    def __init__(self, *, headers: Mapping[str, str] | None = None) -> None:
        self._headers = dict(headers or {"User-Agent": "tflock-reaper"})
        self._pool: urllib3.PoolManager | None = None

    def _manager(self) -> urllib3.PoolManager:
        if self._pool is None:
            self._pool = urllib3.PoolManager(headers=self._headers)
            self._pool.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return self._pool

    def request(
        self,
        method: str,
        url: str,
        *,
        deadline: Deadline,
        timeout: float,
        retries: Retry,
        headers: Mapping[str, str],
        body: bytes | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """``method url``, redirects not followed, the whole body read. ``timeout`` bounds each connect and each
        read (a silent endpoint fails an attempt early, and ``retries`` may make another); ``deadline`` bounds it
        all. Raises :class:`DeadlineExceededError` when the deadline ended the request (or left no time to start
        it), urllib3's errors otherwise."""
        allowed = deadline.remaining()
        if allowed < MIN_ATTEMPT_SECONDS:
            raise DeadlineExceededError(allowed)
        manager = self._manager()
        watch = _Watch()
        outcome: list[urllib3.BaseHTTPResponse | Exception] = []
        done = threading.Event()
        per_operation = urllib3.Timeout(connect=min(timeout, allowed), read=min(timeout, allowed))

        def attempt() -> None:
            _WATCH.set(watch)
            try:
                outcome.append(
                    manager.request(
                        method,
                        url,
                        body=body,
                        headers=dict(headers),
                        timeout=per_operation,
                        retries=retries,
                        redirect=False,
                    )
                )
            except Exception as err:  # noqa: BLE001 - handed to the waiting thread, which raises it
                outcome.append(err)
            finally:
                watch.release()
                done.set()

        threading.Thread(target=attempt, name="tflock-reaper-http", daemon=True).start()
        if not done.wait(deadline.remaining()):
            watch.fire()
            done.wait(ABANDON_AFTER_SECONDS)
        if not outcome:  # still resolving the host's name (or died without a word): left behind
            raise DeadlineExceededError(allowed)
        result = outcome[0]
        if isinstance(result, Exception):
            if watch.fired or deadline.expired:
                raise DeadlineExceededError(allowed) from None
            raise result
        return result
