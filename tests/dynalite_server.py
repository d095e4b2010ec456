"""dynalite (npm) on loopback: a DynamoDB that enforces DynamoDB's real limits, which moto does not.

moto accepts a 1,100-byte sort key or a 3,000-byte partition key; DynamoDB (and dynalite) refuse them with a
ValidationException. Every key the reaper builds from lock data (anyone who runs Terraform writes lock data) is
therefore tested against dynalite too. ``make dynalite`` (run by ``make test`` and CI) installs it into
``tests/dynalite/node_modules``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DYNALITE_DIR = Path(__file__).parent / "dynalite"
DYNALITE_BIN = DYNALITE_DIR / "node_modules" / "dynalite" / "cli.js"
STARTUP_SECONDS = 20.0


class DynaliteMissingError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Dynalite:
    process: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_dynalite() -> Dynalite:
    """An in-memory dynalite on a free loopback port; tables become ACTIVE (and are deleted) at once."""
    node = shutil.which("node")
    if node is None or not DYNALITE_BIN.exists():
        raise DynaliteMissingError(
            "dynalite is not installed: run `make dynalite` (needs Node.js and npm; `make test` does it)"
        )
    port = _free_port()
    process = subprocess.Popen(
        [
            node,
            str(DYNALITE_BIN),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--createTableMs",
            "0",
            "--deleteTableMs",
            "0",
            "--updateTableMs",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise DynaliteMissingError(f"dynalite exited at start ({process.returncode}): {error[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Dynalite(process, f"http://127.0.0.1:{port}")
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise DynaliteMissingError(f"dynalite did not listen on port {port} within {STARTUP_SECONDS:g}s")
