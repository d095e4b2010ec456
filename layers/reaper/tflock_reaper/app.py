"""Wiring for the deployed sweeper: settings in, the real adapters built, one sweep out."""

from __future__ import annotations

from pathlib import Path

from tflock_reaper.aws import AwsClients
from tflock_reaper.dal.lock_table import LockTable
from tflock_reaper.dal.state_table import StateTable
from tflock_reaper.policy import Policy, load_policy, parse_policy
from tflock_reaper.service import SweepReport, sweep
from tflock_reaper.settings import Settings
from tflock_reaper.state import MemoryStateStore, StateStore

#: How long a policy read from SSM is cached between invocations of a warm function.
POLICY_CACHE_SECONDS = 300


def load_deployed_policy(settings: Settings) -> Policy:
    """The policy from SSM (cached by Powertools Parameters) or from the file packaged with the function."""
    if settings.policy_parameter:
        from aws_lambda_powertools.utilities.parameters import get_parameter  # noqa: PLC0415 - cold start

        text = get_parameter(settings.policy_parameter, max_age=POLICY_CACHE_SECONDS)
        return parse_policy(str(text), source=f"ssm:{settings.policy_parameter}")
    path = Path(settings.policy_path)
    if not path.is_absolute():
        path = Path(settings.task_root) / path
    return load_policy(path)


def run_sweep(settings: Settings, clients: AwsClients | None = None) -> SweepReport:
    clients = clients or AwsClients()
    policy = load_deployed_policy(settings)
    dynamodb = clients.dynamodb()
    state: StateStore = (
        StateTable(dynamodb, settings.state_table_name) if settings.state_table_name else MemoryStateStore()
    )
    return sweep(
        lock_table=LockTable(dynamodb, settings.lock_table_name),
        state=state,
        policy=policy,
        mode=settings.reaper_mode,
    )
