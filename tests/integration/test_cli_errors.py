"""An operator's mistake is one line naming the cause and the fix, with its documented exit code: never a traceback.

Each case runs the installed console script (``tflock-reaper``) in a real process, as an operator would: no region,
a profile that does not exist, a region name that is not one, a region AWS does not have, no credentials, Ctrl-C
while botocore retries, and stdout closed by the reader (``| head``).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import lock_item
from tflab import MotoServer, clean_env
from tflock_reaper.entrypoints.cli import EXIT_BROKEN_PIPE, EXIT_CONFIG, EXIT_INTERRUPTED

CONSOLE_SCRIPT = Path(sys.executable).parent / "tflock-reaper"


def reaper(*argv: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *argv],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line(stderr: str) -> str:
    """The message, checked to be one line and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip("\n").splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tflock-reaper: "), stderr
    return lines[0]


@pytest.fixture
def env() -> dict[str, str]:
    """No AWS configuration but dummy keys and a region (each test takes away what it is about)."""
    return clean_env(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="*",
    )


def test_the_console_script_is_installed():
    assert CONSOLE_SCRIPT.exists(), f"{CONSOLE_SCRIPT}: run make venv"


def test_no_region_says_how_to_give_one(env):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        env.pop(name, None)

    done = reaper("locks", "--table", "tf-locks", env=env)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr) == (
        "tflock-reaper: no AWS region configured: give --region (e.g. --region eu-west-1), or set AWS_DEFAULT_REGION"
    )
    assert done.stdout == ""


def test_a_profile_that_does_not_exist_is_named(env):
    done = reaper("locks", "--table", "tf-locks", "--profile", "no-such-profile", env=env)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr) == (
        "tflock-reaper: AWS profile 'no-such-profile' not found (from --profile or AWS_PROFILE): "
        "`aws configure list-profiles` lists the profiles this machine has"
    )


def test_a_region_name_that_is_not_one(env):
    done = reaper("locks", "--table", "tf-locks", "--region", "us east", env=env)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr) == (
        "tflock-reaper: 'us east' is not an AWS region name (from --region, AWS_DEFAULT_REGION or the profile): "
        "give one like us-east-1 or eu-west-1"
    )


def test_a_region_aws_does_not_have(env):
    # Well formed, so botocore builds https://dynamodb.us-east-9.amazonaws.com/, which cannot be reached
    done = reaper("locks", "--table", "tf-locks", "--region", "us-east-9", env=env, timeout=120)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr) == (
        "tflock-reaper: cannot reach AWS in region 'us-east-9', which is not an AWS region botocore knows: "
        "check --region (or AWS_DEFAULT_REGION, or the profile's region)"
    )


def test_no_credentials_says_how_to_log_in(env):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name)
    with MotoServer() as server:
        done = reaper("locks", "--table", "tf-locks", "--endpoint-url", server.endpoint, env=env)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr) == (
        "tflock-reaper: no AWS credentials found: log in (`aws sso login`, `aws configure`), or choose a profile "
        "with --profile or AWS_PROFILE"
    )


@pytest.fixture
def silent_endpoint() -> Iterator[tuple[str, threading.Event]]:
    """An endpoint that accepts connections and never answers: the CLI waits in botocore's read and retries.
    ``connected`` is set once a DynamoDB request has come in, not on any connection: a client of another test that
    is still retrying against a port the system has since handed to this listener must not pass for the CLI."""
    listener = socket.create_server(("127.0.0.1", 0))
    connected = threading.Event()
    held: list[socket.socket] = []

    def read(conn: socket.socket) -> None:
        received = b""
        while b"DynamoDB_20120810." not in received:
            try:
                chunk = conn.recv(4096)
            except OSError:
                return
            if not chunk:
                return
            received = received[-64:] + chunk
        connected.set()

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)
            threading.Thread(target=read, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", connected
    listener.close()
    for conn in held:
        conn.close()


def test_ctrl_c_while_aws_does_not_answer_exits_130_with_one_line(env, silent_endpoint):
    endpoint, connected = silent_endpoint
    # Started with SIGINT at its default, as a terminal starts it: a suite run in the background of a shell without
    # job control (`make test &` in a script) inherits SIGINT ignored, and Python then leaves it ignored.
    as_in_a_terminal = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            as_in_a_terminal,
            str(CONSOLE_SCRIPT),
            "locks",
            "--table",
            "tf-locks",
            "--endpoint-url",
            endpoint,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # When the CLI is waiting for AWS (its request is in) and the operator presses Ctrl-C
        assert connected.wait(30), "the CLI never connected"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()

    assert proc.returncode == EXIT_INTERRUPTED
    assert one_line(stderr) == (
        "tflock-reaper: interrupted (Ctrl-C): stopped; locks reaped before it are logged above as "
        '"lock reaped"; `tflock-reaper locks` shows what is held now'
    )
    assert stdout == ""


@pytest.fixture(scope="module")
def many_locks() -> Iterator[tuple[MotoServer, str]]:
    """A lock table whose `locks --json` is far longer than a pipe holds (64 KiB): the writer must hit the closed
    pipe, whenever the reader leaves."""
    with MotoServer() as server:
        dynamodb = server.client("dynamodb")
        table = f"tf-locks-{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        created = datetime.now(UTC) - timedelta(hours=3)
        items = [lock_item(f"tf-state/team-{n}/terraform.tfstate", created=created) for n in range(300)]
        for start in range(0, len(items), 25):
            batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
            dynamodb.batch_write_item(RequestItems={table: batch})
        yield server, table


def test_a_closed_pipe_ends_quietly_with_141(many_locks):
    server, table = many_locks
    command = f"{CONSOLE_SCRIPT} locks --table {table} --endpoint-url {server.endpoint} --json | head -n 1"
    # Then bash reports each side's exit code: the CLI's first
    script = f'set -o pipefail; {command}; echo "exit codes: ${{PIPESTATUS[*]}}" >&2'

    done = subprocess.run(
        ["bash", "-c", script],
        env=server.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.stdout == "{\n"
    assert done.stderr == f"exit codes: {EXIT_BROKEN_PIPE} 0\n"  # nothing else: no traceback, no message


def test_the_whole_listing_goes_out_when_nobody_closes_the_pipe(many_locks):
    server, table = many_locks
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "locks", "--table", table, "--endpoint-url", server.endpoint, "--json"],
        env=server.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["locks"]) == 300


def test_aws_region_alone_is_named_as_not_read(env):
    """The Lambda runtime and the AWS CLI v2 read AWS_REGION; boto3 does not: say so, not only "no region"."""
    env.pop("AWS_DEFAULT_REGION")
    env["AWS_REGION"] = "eu-west-1"

    done = reaper("locks", "--table", "tf-locks", env=env)

    assert done.returncode == EXIT_CONFIG
    assert one_line(done.stderr).endswith(
        "or set AWS_DEFAULT_REGION (AWS_REGION is set, but boto3 reads AWS_DEFAULT_REGION)"
    )
