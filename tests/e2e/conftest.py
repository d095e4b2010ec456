"""Fixtures for e2e tests: one moto server per session, a fresh backend and fresh Terraform directories per test.

A backend (bucket + lock table) costs a few milliseconds, so every test gets its own, named uniquely: tests
never see each other's locks and the server never needs a reset. Terraform directories are closed at teardown,
which SIGKILLs any apply a test left running.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tables import create_state_table
from tflab import Backend, CliResult, MotoServer, TerraformWorkspace, create_backend, delete_backend, run_reaper

DEFAULT_KEY = "dev/network/terraform.tfstate"


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    log_path = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with MotoServer(log_path=log_path) as server:
        yield server


@pytest.fixture(scope="session")
def session_backend(moto_server: MotoServer) -> Backend:
    """The conventional `tf-state` / `tf-locks` pair, shared by the session (read-only users only)."""
    return create_backend(moto_server, bucket="tf-state", table="tf-locks")


@pytest.fixture
def backend(moto_server: MotoServer) -> Iterator[Backend]:
    """A bucket and lock table of this test's own."""
    suffix = uuid.uuid4().hex[:10]
    created = create_backend(moto_server, bucket=f"tf-state-{suffix}", table=f"tf-locks-{suffix}")
    yield created
    delete_backend(created)


@pytest.fixture
def state_table(moto_server: MotoServer) -> Iterator[str]:
    """The reaper's state table (pk/sk, as template.yaml declares it), of this test's own."""
    name = f"reaper-state-{uuid.uuid4().hex[:10]}"
    client = moto_server.client("dynamodb")
    create_state_table(client, name)
    yield name
    client.delete_table(TableName=name)


@pytest.fixture
def make_workspace(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., TerraformWorkspace]]:
    """Factory: `make_workspace(key=..., init=True)` gives an initialised Terraform directory on `backend`."""
    made: list[TerraformWorkspace] = []

    def make(key: str = DEFAULT_KEY, *, init: bool = True, **kwargs: object) -> TerraformWorkspace:
        workspace = TerraformWorkspace(backend, key, base_dir=tmp_path, **kwargs)  # type: ignore[arg-type]
        made.append(workspace)
        if init:
            workspace.init()
        return workspace

    yield make
    for workspace in made:
        workspace.close()


@pytest.fixture
def workspace(make_workspace: Callable[..., TerraformWorkspace]) -> TerraformWorkspace:
    """An initialised Terraform directory for `dev/network/terraform.tfstate` on this test's backend."""
    return make_workspace()


@pytest.fixture
def reaper(backend: Backend) -> Callable[..., CliResult]:
    """`reaper("sweep", "--policy", p, "--enforce")`: the CLI in a subprocess against this test's lock table.

    `--table`, `--endpoint-url`, `--region` and `--json` are added (`json=False` for the text output).
    """

    def run(command: str, *args: str, json: bool = True, table: str | None = None) -> CliResult:
        return run_reaper(backend.server, command, *args, table=table or backend.table, json=json)

    return run


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    """Write a policy (dedented YAML) to a file of this test's own and return its path."""
    paths: list[Path] = []

    def write(text: str) -> Path:
        path = tmp_path / f"policy-{len(paths) + 1}.yaml"
        path.write_text(textwrap.dedent(text))
        paths.append(path)
        return path

    return write
