"""A loopback HTTP endpoint that answers too slowly for any read timeout to notice (fault injection).

``mode``:

* ``"body"``: the status line and headers at once, then the body one byte every ``interval`` seconds;
* ``"headers"``: the whole answer, status line and headers included, one byte every ``interval`` seconds;
* ``"silent"``: accepts the connection, reads the request, and says nothing until the test ends.

The answer is a complete, valid one (by default ``{"running": false}``, 18 bytes: 36 s at one byte every 2 s):
a client that waits long enough gets it, so a test can tell "cut off" from "waited for it".
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Literal

Mode = Literal["body", "headers", "silent"]
GONE = b'{"running": false}'


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    at: float


class DripServer:
    def __init__(self, mode: Mode, *, interval: float = 2.0, body: bytes = GONE, status: str = "200 OK") -> None:
        self.mode = mode
        self.interval = interval
        self.body = body
        self.status = status
        self.requests: list[Received] = []
        self.stopped = threading.Event()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                sock.settimeout(10)
                with contextlib.suppress(OSError):  # the client gave up and hung up: expected
                    server._serve(sock)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _serve(self, sock: socket.socket) -> None:
        while True:  # one request after another on a kept-alive connection
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                head += chunk
            header, _, rest = head.partition(b"\r\n\r\n")
            lines = header.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            fields = dict(line.lower().split(":", 1) for line in lines[1:] if ":" in line)
            length = int(fields.get("content-length", "0"))
            while len(rest) < length:
                rest += sock.recv(4096)
            self.requests.append(Received(method, path, time.monotonic()))
            self._answer(sock)

    def _answer(self, sock: socket.socket) -> None:
        head = (
            f"HTTP/1.1 {self.status}\r\nContent-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        ).encode()
        if self.mode == "silent":
            self.stopped.wait()
            raise OSError("stopped")
        if self.mode == "body":
            sock.sendall(head)
            self._drip(sock, self.body)
        else:
            self._drip(sock, head + self.body)

    def _drip(self, sock: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self.stopped.wait(self.interval):
                raise OSError("stopped")
            sock.sendall(data[i : i + 1])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> DripServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
