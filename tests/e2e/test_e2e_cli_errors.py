"""The CLI's exit codes for what an operator gets wrong: nothing is deleted, and the cause is named."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tflab import (
    Backend,
    CliResult,
    TerraformWorkspace,
    policy_yaml,
    reaper_argv,
    reaper_env,
    wait_until_older_than,
)

pytestmark = pytest.mark.e2e


def test_invalid_policy_exits_2_and_deletes_nothing(
    workspace: TerraformWorkspace,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a stale lock and a policy with a typo in a duration
    stale = workspace.leave_stale_lock()
    items_before = workspace.backend.all_items()
    policy = write_policy(
        policy_yaml((f"{workspace.backend.bucket}/*", "gone")).replace("reap_after: 2s", "reap_after: 2 hours")
    )
    wait_until_older_than(stale, 2)

    # When
    result = reaper("sweep", "--policy", str(policy), "--enforce")

    # Then
    assert result.returncode == 2, result
    assert "reap_after" in result.stderr
    assert workspace.backend.all_items() == items_before


def test_missing_lock_table_exits_3(reaper: Callable[..., CliResult], write_policy: Callable[[str], Path]) -> None:
    policy = write_policy(policy_yaml())

    result = reaper("sweep", "--policy", str(policy), "--enforce", table="no-such-table")

    assert result.returncode == 3, result
    assert "no-such-table" in result.stderr


def test_unreachable_endpoint_exits_3(backend: Backend, write_policy: Callable[[str], Path]) -> None:
    # Given an endpoint nothing listens on (a port just freed)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = reaper_argv(backend.server, "sweep", "--policy", str(write_policy(policy_yaml())), table=backend.table)
    argv[argv.index(backend.server.endpoint)] = f"http://127.0.0.1:{port}"

    # When
    proc = subprocess.run(
        argv, env=reaper_env(backend.server), capture_output=True, text=True, timeout=120, check=False
    )

    # Then
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert backend.table in proc.stderr
