"""A real HTTP server on 127.0.0.1 that answers from a script and records every request (fault injection).

Each scripted answer is a :class:`Reply`; once the script is used up, the last answer repeats. ``route`` gives a
path (without its query string) a script of its own, so that one server can play an API with several endpoints
(GET and POST alike); other paths follow the server-wide script. ``hang`` makes
the server read the request and then say nothing for that long (or until the test ends), so that the client's
timeout has to fire; ``delay`` makes it answer after that long (a slow but working endpoint).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    hang: float = 0.0
    delay: float = 0.0


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    method: str = "POST"

    @property
    def route(self) -> str:
        """The path without its query string."""
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body)


class StubServer:
    def __init__(self) -> None:
        self.script: list[Reply] = [Reply()]
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Request] = []
        self._released = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self._answer("POST")

            def do_GET(self) -> None:
                self._answer("GET")

            def _answer(self, method: str) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with stub._lock:
                    request = Request(self.path, dict(self.headers), body, time.monotonic(), method)
                    stub.requests.append(request)
                    script = stub.routes.get(request.route)
                    if script is None:
                        script, index = stub.script, len(stub.requests) - 1
                    else:
                        index = sum(1 for r in stub.requests if r.route == request.route) - 1
                    reply = script[min(index, len(script) - 1)]
                if reply.hang:
                    stub._released.wait(reply.hang)
                    self.close_connection = True
                    return
                if reply.delay:
                    stub._released.wait(reply.delay)
                payload = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = serve_loopback(Handler, quiet_errors=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def reply(self, *replies: Reply) -> None:
        self.script = list(replies)

    def route(self, path: str, *replies: Reply) -> None:
        """Answer requests to ``path`` (query string ignored) from their own script."""
        self.routes[path] = list(replies)

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.route == path]

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    quiet_errors = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not self.quiet_errors:
            super().handle_error(request, client_address)


def serve_loopback(
    handler: type[BaseHTTPRequestHandler], *, quiet_errors: bool = False
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """A test's HTTP server on 127.0.0.1 (a free port), a daemon thread per request, and the (not yet started)
    thread that serves it. ``quiet_errors``: no traceback for a client that timed out and hung up (expected there)."""
    server = _LoopbackServer(("127.0.0.1", 0), handler)
    server.quiet_errors = quiet_errors
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    return server, thread
