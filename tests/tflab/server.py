"""A moto server on loopback, started as a subprocess of the venv's own `moto_server` console script.

One server per test session: starting it costs about half a second, and every test gets its own bucket and
table on it instead (see `tflab.backend.create_backend`), so nothing has to be reset between tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config

REGION = "us-east-1"
# Dummy credentials: moto accepts anything, and nothing here must ever be able to reach real AWS.
ACCESS_KEY_ID = "testing"
SECRET_ACCESS_KEY = "testing"  # a dummy value for moto, not a secret

_START_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment minus anything that could point AWS SDKs or Terraform at real resources."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "TF_", "POWERTOOLS_")) and key not in {"CHECKPOINT_DISABLE"}
    }
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    env.update(extra)
    return env


class MotoServer:
    """`moto_server` on 127.0.0.1 and a free port; a context manager.

    >>> with MotoServer() as server:
    ...     server.client("dynamodb").list_tables()
    """

    def __init__(self, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._clients: dict[str, Any] = {}

    @property
    def executable(self) -> Path:
        return Path(sys.executable).parent / "moto_server"

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("moto server not started")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        if self._proc is not None:
            return self
        # A free port can be taken between probing and binding: retry with another one.
        last_error = ""
        for _ in range(3):
            self.port = _free_port()
            self._clients.clear()
            self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
            self._proc = subprocess.Popen(
                [str(self.executable), "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal must not reach it before we stop it
            )
            if self._wait_until_ready():
                return self
            last_error = f"exit code {self._proc.poll()}"
            self.stop()
        raise RuntimeError(f"moto_server did not start ({last_error}); log: {self.log_path}")

    def _wait_until_ready(self) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310 - loopback
                    return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        self._log = None

    def reset(self) -> None:
        """Drop every resource in every moto backend (`POST /moto-api/reset`)."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback only
            pass

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this server, with dummy credentials (cached: clients are
        thread-safe and making one costs ~0.1 s)."""
        if service not in self._clients:
            self._clients[service] = self._make_client(service)
        return self._clients[service]

    def _make_client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=30),
        )

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess using this server through AWS_ENDPOINT_URL (e.g. the reaper CLI)."""
        return clean_env(AWS_ENDPOINT_URL=self.endpoint, **extra)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
