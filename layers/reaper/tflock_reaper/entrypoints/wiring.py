"""Wiring for the deployed sweeper: settings in, the real adapters built, one sweep out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter

from tflock_reaper.adapters.aws import AwsClients, default_clients
from tflock_reaper.adapters.channels.factory import make_channel_factory, secret_resolver
from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.adapters.holders import make_providers
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.memory import MemoryLedger, MemoryStateStore
from tflock_reaper.adapters.notification_ledger import DynamoLedger
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.notification import Notification
from tflock_reaper.domain.notifier import NotificationLedger
from tflock_reaper.domain.policy import Channel, Policy, load_policy, parse_policy
from tflock_reaper.domain.ports import LockSource
from tflock_reaper.domain.report import SweepReport, combine_reports
from tflock_reaper.entrypoints.settings import Settings
from tflock_reaper.services.alerting import Alerter
from tflock_reaper.services.dispatch import DispatchResult, dispatch
from tflock_reaper.services.sweep import TIME_RESERVE_SECONDS, HolderChecks, out_of_time, sweep

logger = logging.getLogger(__name__)

_CHANNELS: TypeAdapter[dict[str, Channel]] = TypeAdapter(dict[str, Channel])

#: How long a policy read from SSM is cached between invocations of a warm function.
POLICY_CACHE_SECONDS = 300
#: Outbound requests (holder checks, Slack, PagerDuty) stop this long before the sweep's time reserve: the reaps
#: and alert records of the locks already judged still fit before it, and the reserve is left whole for recording
#: the sweep's state (``service.TIME_RESERVE_SECONDS``), whatever the endpoints do.
OUTBOUND_MARGIN_SECONDS = 5.0


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
    budget: Budget = UNBOUNDED,
) -> Alerter:
    """Alerts through the policy's channels; exactly once per event through the state table when there is one."""
    ledger: NotificationLedger = DynamoLedger(clients.dynamodb(), state_table) if state_table else MemoryLedger()
    factory = make_channel_factory(clients, default_topic_arn=default_topic_arn, budget=budget)
    return Alerter(policy, table=table, factory=factory, ledger=ledger, state=state, send=send)


def holder_checks(clients: AwsClients, state: StateStore, budget: Budget = UNBOUNDED) -> HolderChecks:
    """The sweep's holder checks, wired to AWS, the CI systems' APIs and the state table."""
    secrets = secret_resolver(clients)
    return HolderChecks(providers=make_providers(clients=clients, secrets=secrets, state=state, budget=budget))


def outbound_budget(remaining_seconds: Callable[[], float] | None) -> Budget:
    """The sweep's time for outbound HTTP requests: the invocation's remaining time less the time reserve and
    :data:`OUTBOUND_MARGIN_SECONDS`; unbounded without a clock (the CLI), each request keeping its own deadline."""
    if remaining_seconds is None:
        return UNBOUNDED
    return Budget.keeping(remaining_seconds, TIME_RESERVE_SECONDS + OUTBOUND_MARGIN_SECONDS)


def state_store(clients: AwsClients, state_table: str | None) -> StateStore:
    """The reaper's state table, or (without one) a memory of this run only: first seen = now."""
    return StateTable(clients.dynamodb(), state_table) if state_table else MemoryStateStore()


@dataclass(frozen=True)
class SweepTarget:
    """What one sweep covers: lock tables and buckets of one account, with that account's clients."""

    label: str
    lock_tables: tuple[str, ...]
    buckets: tuple[str, ...]
    role_arn: str | None = None
    region: str | None = None
    external_id: str | None = None


def sweep_targets(settings: Settings) -> list[SweepTarget]:
    """This account's tables and buckets (if any), then each other account's."""
    home = SweepTarget("this account", settings.lock_table_names, settings.state_buckets)
    others = [
        SweepTarget(f"account {t.account}", t.lock_tables, t.buckets, t.role_arn, t.region, t.external_id)
        for t in settings.targets
    ]
    return [home, *others] if home.lock_tables or home.buckets else others


def _sources(
    clients: AwsClients, target: SweepTarget, segments: int | None
) -> tuple[list[LockSource], LockfileBuckets | None]:
    dynamodb = clients.dynamodb()
    tables: list[LockSource] = [LockTable(dynamodb, name, segments=segments) for name in target.lock_tables]
    lockfiles = (
        LockfileBuckets(clients.client("s3"), [BucketLocation.parse(b) for b in target.buckets])
        if target.buckets
        else None
    )
    return tables, lockfiles


def run_sweep(
    settings: Settings,
    clients: AwsClients | None = None,
    *,
    remaining_seconds: Callable[[], float] | None = None,
) -> SweepReport:
    """One sweep of every target. A target that cannot be reached (its role, its tables) is reported in the
    report's errors and the others are still swept; if none can be, the error is raised."""
    clients = clients or default_clients()
    policy = load_deployed_policy(settings)
    state = state_store(clients, settings.state_table_name)
    holders = holder_checks(clients, state, outbound_budget(remaining_seconds))
    reports: list[SweepReport] = []
    errors: list[str] = []
    for target in sweep_targets(settings):
        if out_of_time(remaining_seconds):
            errors.append(f"{target.label}: not swept, the sweep ran out of time")
            continue
        try:
            reports.append(
                _sweep_target(
                    target,
                    settings=settings,
                    clients=clients,
                    policy=policy,
                    state=state,
                    holders=holders,
                    remaining_seconds=remaining_seconds,
                )
            )
        except (AwsAccessError, ClientError, BotoCoreError) as err:
            message = str(err) if isinstance(err, AwsAccessError) else describe(err)
            logger.error("target not swept", extra={"target": target.label, "error": message})
            errors.append(f"{target.label}: {message}")
    if not reports:
        raise AwsAccessError("; ".join(errors) or "nothing to sweep")
    return combine_reports(reports, errors)


def _sweep_target(
    target: SweepTarget,
    *,
    settings: Settings,
    clients: AwsClients,
    policy: Policy,
    state: StateStore,
    holders: HolderChecks,
    remaining_seconds: Callable[[], float] | None,
) -> SweepReport:
    """State, alerts and holder checks stay with the reaper's own account; the locks are the target's."""
    source_clients = (
        clients.assume_role(target.role_arn, region=target.region, external_id=target.external_id)
        if target.role_arn
        else clients
    )
    lock_tables, lockfiles = _sources(source_clients, target, settings.scan_segments)
    alerts = make_alerter(
        policy,
        table=", ".join(target.lock_tables or target.buckets),
        clients=clients,
        state=state,
        state_table=settings.state_table_name,
        default_topic_arn=settings.alert_topic_arn,
        budget=outbound_budget(remaining_seconds),
    )
    return sweep(
        lock_table=lock_tables,
        lockfiles=lockfiles,
        state=state,
        policy=policy,
        mode=settings.reaper_mode,
        alerts=alerts,
        holders=holders,
        remaining_seconds=remaining_seconds,
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
