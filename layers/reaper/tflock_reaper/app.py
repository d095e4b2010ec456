"""Wiring for the deployed sweeper: settings in, the real adapters built, one sweep out."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import TypeAdapter

from tflock_reaper.alerting import Alerter
from tflock_reaper.aws import AwsClients
from tflock_reaper.dal.lock_table import LockTable
from tflock_reaper.dal.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.dal.notification_ledger import DynamoLedger
from tflock_reaper.dal.state_table import StateTable
from tflock_reaper.holders import make_providers
from tflock_reaper.notify.channels import make_channel_factory, secret_resolver
from tflock_reaper.notify.dispatch import DispatchResult, MemoryLedger, NotificationLedger, dispatch
from tflock_reaper.notify.events import Notification
from tflock_reaper.policy import Channel, Policy, load_policy, parse_policy
from tflock_reaper.service import HolderChecks, SweepReport, sweep
from tflock_reaper.settings import Settings
from tflock_reaper.state import MemoryStateStore, StateStore

_CHANNELS: TypeAdapter[dict[str, Channel]] = TypeAdapter(dict[str, Channel])

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


def make_alerter(
    policy: Policy,
    *,
    table: str,
    clients: AwsClients,
    state: StateStore,
    state_table: str | None,
    default_topic_arn: str | None,
    send: bool = True,
) -> Alerter:
    """Alerts through the policy's channels; exactly once per event through the state table when there is one."""
    ledger: NotificationLedger = DynamoLedger(clients.dynamodb(), state_table) if state_table else MemoryLedger()
    factory = make_channel_factory(clients, default_topic_arn=default_topic_arn)
    return Alerter(policy, table=table, factory=factory, ledger=ledger, state=state, send=send)


@lru_cache(maxsize=1)
def default_clients() -> AwsClients:
    """One boto3 session per process: a warm Lambda reuses its clients (and its cached secrets)."""
    return AwsClients()


def holder_checks(clients: AwsClients, state: StateStore) -> HolderChecks:
    """The sweep's holder checks, wired to AWS, the CI systems' APIs and the state table."""
    return HolderChecks(providers=make_providers(clients=clients, secrets=secret_resolver(clients), state=state))


def state_store(clients: AwsClients, state_table: str | None) -> StateStore:
    """The reaper's state table, or (without one) a memory of this run only: first seen = now."""
    return StateTable(clients.dynamodb(), state_table) if state_table else MemoryStateStore()


def run_sweep(settings: Settings, clients: AwsClients | None = None) -> SweepReport:
    clients = clients or default_clients()
    policy = load_deployed_policy(settings)
    dynamodb = clients.dynamodb()
    state = state_store(clients, settings.state_table_name)
    lockfiles = (
        LockfileBuckets(clients.client("s3"), [BucketLocation.parse(b) for b in settings.state_buckets])
        if settings.state_buckets
        else None
    )
    alerts = make_alerter(
        policy,
        table=settings.lock_table_name or ", ".join(settings.state_buckets),
        clients=clients,
        state=state,
        state_table=settings.state_table_name,
        default_topic_arn=settings.alert_topic_arn,
    )
    return sweep(
        lock_table=LockTable(dynamodb, settings.lock_table_name) if settings.lock_table_name else None,
        lockfiles=lockfiles,
        state=state,
        policy=policy,
        mode=settings.reaper_mode,
        alerts=alerts,
        holders=holder_checks(clients, state),
    )


def send_resolved(
    notification: Notification, channels_json: str, *, settings: Settings, clients: AwsClients
) -> DispatchResult:
    """Announce a release on the channels that were alerted about the lock (recorded by the sweeper)."""
    channels = _CHANNELS.validate_json(channels_json)
    factory = make_channel_factory(clients, default_topic_arn=settings.alert_topic_arn)
    ledger: NotificationLedger = (
        DynamoLedger(clients.dynamodb(), settings.state_table_name) if settings.state_table_name else MemoryLedger()
    )
    return dispatch(notification, [factory(name, channel) for name, channel in channels.items()], ledger)
