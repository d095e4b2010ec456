"""Running the product's CLI (`python -m tflock_reaper`) against a moto server, as an operator would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tflab.backend import HeldLock
from tflab.server import REGION, MotoServer

REPO_ROOT = Path(__file__).resolve().parents[2]
REAPER_SRC = REPO_ROOT / "layers" / "reaper"


@dataclass(frozen=True)
class CliResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except json.JSONDecodeError as err:
            raise AssertionError(f"not JSON ({err}):\n{self}") from err

    def __str__(self) -> str:
        return (
            f"tflock-reaper {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}"
        )


def reaper_env(server: MotoServer) -> dict[str, str]:
    """The CLI's environment: dummy credentials, and the product importable even before `make venv`."""
    pythonpath = os.pathsep.join(p for p in (str(REAPER_SRC), os.environ.get("PYTHONPATH", "")) if p)
    return server.env(PYTHONPATH=pythonpath)


def reaper_argv(server: MotoServer, command: str, *args: str, table: str | None, json: bool = True) -> list[str]:
    """`table=None`: no `--table` (lockfiles only, given with `--bucket` in `args`)."""
    return [
        sys.executable,
        "-m",
        "tflock_reaper",
        command,
        *(["--table", table] if table is not None else []),
        "--endpoint-url",
        server.endpoint,
        "--region",
        REGION,
        *(["--json"] if json else []),
        *args,
    ]


def run_reaper(
    server: MotoServer, command: str, *args: str, table: str | None, json: bool = True, timeout: float = 60
) -> CliResult:
    """`tflock-reaper COMMAND --table TABLE --endpoint-url ... [--json] ARGS...` in a subprocess."""
    argv = reaper_argv(server, command, *args, table=table, json=json)
    started = time.monotonic()
    proc = subprocess.run(argv, env=reaper_env(server), capture_output=True, text=True, timeout=timeout, check=False)
    return CliResult(tuple(argv[3:]), proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def wait_until_older_than(lock: HeldLock, seconds: float, margin: float = 0.3) -> None:
    """Sleep until the lock's own `Created` is `seconds` old (plus a margin): age thresholds are then passed."""
    created = datetime.fromisoformat(lock.info["Created"])
    remaining = seconds + margin - (datetime.now(UTC) - created).total_seconds()
    if remaining > 0:
        time.sleep(remaining)


def policy_yaml(
    *rules: tuple[str, str],
    mode: str = "enforce",
    max_reaps: int = 3,
    warn_after: str = "1s",
    reap_after: str = "2s",
    min_observed: str = "0s",
    trust_holder_clock: bool = True,
) -> str:
    """A reaper policy with short durations. `rules` are `(match glob, holder assume)` pairs, in order.

    `min_observed: 0s` and `trust_holder_clock: true` because without a state table the CLI first sees every lock in
    the current run, and only a trusted `Created` can then date a lock item (Terraform runs on this very machine, so
    its clock is the reaper's); a lockfile is dated by S3's LastModified either way.
    """
    trust = ", trust_holder_clock: true" if trust_holder_clock else ""
    lines = [
        f"mode: {mode}",
        f"max_reaps_per_sweep: {max_reaps}",
        f"defaults: {{warn_after: {warn_after}, reap_after: {reap_after}, min_observed: {min_observed}{trust}}}",
        "rules:" if rules else "rules: []",
    ]
    for match, assume in rules:
        lines += [f"  - match: {json.dumps(match)}", f"    holder: {{assume: {assume}}}"]
    return "\n".join(lines) + "\n"
