"""``sweep --enforce`` on a terminal shows what it will reap and asks first, like ``terraform apply``; ``--yes`` or a
run off a terminal does not ask. Through ``main()`` with streams that say they are terminals, and through the console
script on a real pseudo-terminal."""

from __future__ import annotations

import io
import json
import os
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import lock_item
from tables import LOCK_TABLE, put, table_items
from tflab import MotoServer
from tflock_reaper.entrypoints.cli import EXIT_DECLINED, EXIT_OK, main

PATH = "tf-state/env:/dev/app.tfstate"
LOCK_ID = "c0ffee00-1111-4111-8111-111111111111"
POLICY = """\
mode: enforce
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/*"
    holder: {assume: gone}
"""
QUESTION = "Reap 1 lock(s)? Only 'yes' will be accepted.\n  Enter a value: "


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def stale(dynamodb):
    item = lock_item(PATH, created=datetime.now(UTC) - timedelta(hours=3), lock_id=LOCK_ID)
    put(dynamodb, item)
    return item


def enforce(policy: str, *extra: str, stdin: io.StringIO, err: io.StringIO) -> tuple[int, dict]:
    out = io.StringIO()
    argv = ["sweep", "--table", LOCK_TABLE, "--policy", policy, "--enforce", "--json", *extra]
    code = main(argv, out=out, stdin=stdin, err=err)
    return code, json.loads(out.getvalue())


def test_on_a_terminal_it_shows_the_locks_and_reaps_after_yes(dynamodb, stale, policy):
    err = Terminal()
    code, report = enforce(policy, stdin=Terminal("yes\n"), err=err)

    assert code == EXIT_OK
    asked = err.getvalue()
    assert asked.startswith(f"tflock-reaper will reap (delete) 1 lock(s):\n  Lock      {PATH}  (backend dynamodb")
    assert f"  ID        {LOCK_ID}\n" in asked
    assert asked.endswith(QUESTION)
    assert report["locks"][0]["outcome"] == "reaped"
    assert table_items(dynamodb) == []


def test_anything_but_yes_reaps_nothing(dynamodb, stale, policy):
    for answer in ("no\n", "y\n", ""):  # "" is the end of input (Ctrl-D)
        err = Terminal()
        code, report = enforce(policy, stdin=Terminal(answer), err=err)

        assert code == EXIT_DECLINED
        assert err.getvalue().endswith("Not confirmed: nothing reaped (the sweep goes on as a dry run).\n")
        assert report["mode"] == "dry-run"
        assert report["notes"] == ["the reaps were not confirmed: nothing was reaped, the sweep ran as a dry run"]
        assert [lk["outcome"] for lk in report["locks"]] == ["would-reap"]
        assert table_items(dynamodb) == [stale]


def test_yes_flag_or_no_terminal_skips_the_question(dynamodb, stale, policy):
    err = Terminal()
    code, report = enforce(policy, "--yes", stdin=Terminal(), err=err)
    assert (code, report["locks"][0]["outcome"]) == (EXIT_OK, "reaped")
    assert "Only 'yes'" not in err.getvalue()

    put(dynamodb, stale)
    err = io.StringIO()  # stderr captured (a pipeline): nobody would see a question
    code, report = enforce(policy, stdin=Terminal(), err=err)
    assert (code, report["locks"][0]["outcome"]) == (EXIT_OK, "reaped")
    assert "Only 'yes'" not in err.getvalue()


def test_nothing_to_reap_asks_nothing(dynamodb, policy):
    put(dynamodb, lock_item(PATH, created=datetime.now(UTC) - timedelta(minutes=5)))
    err = Terminal()
    code, report = enforce(policy, stdin=Terminal(), err=err)
    assert (code, [lk["outcome"] for lk in report["locks"]]) == (EXIT_OK, ["kept"])
    assert err.getvalue() == ""


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[tuple[MotoServer, str, str]]:
    with MotoServer() as server:
        table = f"tf-locks-{uuid.uuid4().hex[:8]}"
        server.client("dynamodb").create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        server.client("dynamodb").put_item(
            TableName=table, Item=lock_item(PATH, created=datetime.now(UTC) - timedelta(hours=3), lock_id=LOCK_ID)
        )
        path = tmp_path / "policy.yaml"
        path.write_text(POLICY)
        yield server, table, str(path)


def _read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                break
            if not chunk:
                break
            seen += chunk
    return seen


def test_the_console_script_asks_on_a_real_terminal(backend):
    server, table, policy = backend
    primary, secondary = os.openpty()
    argv = ["sweep", "--table", table, "--policy", policy, "--enforce", "--json", "--endpoint-url", server.endpoint]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "tflock-reaper"), *argv],
        env=server.env(),
        stdin=secondary,
        stderr=secondary,
        stdout=subprocess.PIPE,
    )
    os.close(secondary)
    try:
        asked = _read_until(primary, b"Enter a value: ", timeout=60)
        assert f"Lock      {PATH}".encode() in asked
        assert server.client("dynamodb").scan(TableName=table)["Count"] == 1  # nothing reaped before the answer
        os.write(primary, b"yes\n")
        stdout, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
        os.close(primary)

    assert proc.returncode == EXIT_OK
    assert json.loads(stdout)["locks"][0]["outcome"] == "reaped"
    assert server.client("dynamodb").scan(TableName=table)["Count"] == 0
