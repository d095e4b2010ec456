"""Wiring for the deployed sweeper: settings in, the real adapters built, one sweep out."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter

if TYPE_CHECKING:
    from tflock_reaper.adapters.lockfiles import LockfileBuckets
    from tflock_reaper.domain.notification import Notification
    from tflock_reaper.services.dispatch import DispatchResult

from tflock_reaper.adapters.aws import AwsClients, default_clients
from tflock_reaper.adapters.channels.factory import make_channel_factory, secret_resolver
from tflock_reaper.adapters.errors import AwsAccessError, describe
from tflock_reaper.adapters.holders import make_providers
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.log_redaction import LogRedaction, install_log_redaction
from tflock_reaper.adapters.notification_ledger import DynamoLedger
from tflock_reaper.adapters.state_table import HISTORY_RETENTION, StateTable
from tflock_reaper.domain.deadline import UNBOUNDED, Budget
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.notifier import NotificationLedger
from tflock_reaper.domain.policy import Channel, Policy, load_policy, parse_policy
from tflock_reaper.domain.report import SweepReport, combine_reports
from tflock_reaper.entrypoints.settings import Settings
from tflock_reaper.services.alerting import Alerter, ChannelFactory
from tflock_reaper.services.reconcile import Reconciler
from tflock_reaper.services.sweep import TIME_RESERVE_SECONDS, HolderChecks, out_of_time, sweep

logger = logging.getLogger(__name__)


@cache
def _channels() -> TypeAdapter[dict[str, Channel]]:
    """Built on first use (the stream function's ``resolved``), not at import: cold start."""
    return TypeAdapter(dict[str, Channel])


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


@cache
def _process_redaction() -> LogRedaction:
    return LogRedaction()


def log_redaction() -> LogRedaction:
    """The process's log redaction (the secrets it has read), installed on the AWS SDK's and urllib3's loggers
    (again, idempotently, on every call). Called where the wiring builds what reads secrets or speaks HTTP, so that
    it is in place before the first request, and for the life of a warm process."""
    redaction = _process_redaction()
    install_log_redaction(redaction)
    return redaction


def notification_ledger(clients: AwsClients, state_table: str | None) -> NotificationLedger:
    """Exactly once per event through the state table; without one (the CLI), once per run."""
    if state_table:
        return DynamoLedger(clients.dynamodb(), state_table)
    from tflock_reaper.adapters.memory import MemoryLedger  # noqa: PLC0415 - the CLI's, never the Lambda's

    return MemoryLedger()


def channel_factory(
    clients: AwsClients, *, default_topic_arn: str | None, state_table: str | None, budget: Budget = UNBOUNDED
) -> ChannelFactory:
    """The policy's channels, their secrets read through Powertools Parameters and kept out of every log; the Slack
    app's messages (one per acquisition, updated in place) remembered in ``state_table``."""
    return make_channel_factory(
        clients,
        default_topic_arn=default_topic_arn,
        redaction=log_redaction(),
        budget=budget,
        state_table=state_table,
    )


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
    factory: ChannelFactory | None = None,
) -> Alerter:
    """Alerts through the policy's channels, exactly once per event (:func:`notification_ledger`); ``factory``:
    the channels' (default: :func:`channel_factory`'s, with ``budget``), for a caller that builds channels too."""
    if factory is None:
        factory = channel_factory(clients, default_topic_arn=default_topic_arn, state_table=state_table, budget=budget)
    ledger = notification_ledger(clients, state_table)
    return Alerter(policy, table=table, factory=factory, ledger=ledger, state=state, send=send)


def holder_checks(clients: AwsClients, state: StateStore, budget: Budget = UNBOUNDED) -> HolderChecks:
    """The sweep's holder checks, wired to AWS, the CI systems' APIs and the state table."""
    log_redaction()  # the checks read their tokens from Secrets Manager or SSM
    secrets = secret_resolver(clients)
    return HolderChecks(providers=make_providers(clients=clients, secrets=secrets, state=state, budget=budget))


def outbound_budget(remaining_seconds: Callable[[], float] | None) -> Budget:
    """The sweep's time for outbound HTTP requests: the invocation's remaining time less the time reserve and
    :data:`OUTBOUND_MARGIN_SECONDS`; unbounded without a clock (the CLI), each request keeping its own deadline."""
    if remaining_seconds is None:
        return UNBOUNDED
    return Budget.keeping(remaining_seconds, TIME_RESERVE_SECONDS + OUTBOUND_MARGIN_SECONDS)


def state_store(
    clients: AwsClients, state_table: str | None, *, history_retention: timedelta = HISTORY_RETENTION
) -> StateStore:
    """The reaper's state table, or (without one) a memory of this run only: first seen = now. Acquisitions the
    table records are kept ``history_retention`` after their release (the stack's ``HistoryRetentionDays``)."""
    if state_table:
        return StateTable(clients.dynamodb(), state_table, history_retention=history_retention)
    from tflock_reaper.adapters.memory import MemoryStateStore  # noqa: PLC0415 - the CLI's, never the Lambda's

    return MemoryStateStore()


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


def lock_sources(
    clients: AwsClients, *, tables: Sequence[str], buckets: Sequence[str], segments: int | None = None
) -> tuple[list[LockTable], LockfileBuckets | None]:
    """The lock tables, and the lockfiles of the buckets (``B`` or ``B/prefix`` each), to sweep. Raises
    :class:`ValueError` for a bucket that is not one."""
    lock_tables = [LockTable(clients.dynamodb(), name, segments=segments) for name in tables]
    if not buckets:
        return lock_tables, None
    from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets  # noqa: PLC0415 - with buckets only

    locations = [BucketLocation.parse(bucket) for bucket in buckets]
    return lock_tables, LockfileBuckets(clients.client("s3"), locations)


def deployment_marker(settings: Settings, policy: Policy) -> str:
    """What a deployment changes: the code (the layer's version), the settings and the policy. The first sweep
    after it changes is full."""
    hasher = hashlib.sha256()
    for part in (settings.deployment_id, settings.model_dump_json(), policy.model_dump_json()):
        hasher.update(part.encode() + b"\0")
    return hasher.hexdigest()[:32]


def reconciler(
    settings: Settings, clients: AwsClients, state: StateStore, policy: Policy, *, full_reason: str | None = None
) -> Reconciler | None:
    """Decides full or incremental reads of this account's lock tables: with a state table, and with the audit's
    health readable (its stream mappings, failure queue and function); None without a state table (every read is
    full)."""
    if not isinstance(state, StateTable):  # no state table: the run's memory only
        return None
    probe = None
    if settings.audit_stream_mappings and settings.audit_function_name and settings.audit_failure_queue_url:
        from tflock_reaper.adapters.audit_health import AuditHealthProbe  # noqa: PLC0415 - with the audit only

        probe = AuditHealthProbe(
            lambda_client=clients.client("lambda"),
            sqs_client=clients.client("sqs"),
            cloudwatch_client=clients.client("cloudwatch"),
            mappings=settings.audit_stream_mappings,
            function_name=settings.audit_function_name,
            queue_url=settings.audit_failure_queue_url,
            lockfile_rule=settings.audit_lockfile_rule,
            events_client=clients.client("events") if settings.audit_lockfile_rule else None,
            s3_client=clients.client("s3") if settings.audit_lockfile_rule else None,
        )
    return Reconciler(
        store=state,
        probe=probe,
        deployment=deployment_marker(settings, policy),
        reconcile_every=timedelta(minutes=settings.reconcile_every_minutes),
        force_full=full_reason,
    )


def run_sweep(
    settings: Settings,
    clients: AwsClients | None = None,
    *,
    remaining_seconds: Callable[[], float] | None = None,
    full_reason: str | None = None,
) -> SweepReport:
    """One sweep of every target. A target that cannot be reached (its role, its tables) is reported in the
    report's errors and the others are still swept; if none can be, the error is raised. ``full_reason``: read
    every lock table in full, for this reason (an operator's request)."""
    clients = clients or default_clients()
    policy = load_deployed_policy(settings)
    state = state_store(
        clients, settings.state_table_name, history_retention=timedelta(days=settings.history_retention_days)
    )
    holders = holder_checks(clients, state, outbound_budget(remaining_seconds))
    reconciling = reconciler(settings, clients, state, policy, full_reason=full_reason)
    sweep_target = _TargetSweep(settings, clients, policy, state, holders, remaining_seconds, reconciling)
    reports: list[SweepReport] = []
    errors: list[str] = []
    for target in sweep_targets(settings):
        if out_of_time(remaining_seconds):
            errors.append(f"{target.label}: not swept, the sweep ran out of time")
            continue
        try:
            reports.append(sweep_target(target))
        except (AwsAccessError, ClientError, BotoCoreError) as err:
            message = str(err) if isinstance(err, AwsAccessError) else describe(err)
            logger.error("target not swept", extra={"target": target.label, "error": message})
            errors.append(f"{target.label}: {message}")
    if not reports:
        raise AwsAccessError("; ".join(errors) or "nothing to sweep")
    return combine_reports(reports, errors)


@dataclass(frozen=True)
class _TargetSweep:
    """The sweep of one target. State, alerts and holder checks stay with the reaper's own account (``clients``);
    the locks are the target's."""

    settings: Settings
    clients: AwsClients
    policy: Policy
    state: StateStore
    holders: HolderChecks
    remaining_seconds: Callable[[], float] | None
    reconciler: Reconciler | None = None
    """This account's tables only: another account's tables have no audit here, so they are read in full."""

    def __call__(self, target: SweepTarget) -> SweepReport:
        settings = self.settings
        source_clients = (
            self.clients.assume_role(target.role_arn, region=target.region, external_id=target.external_id)
            if target.role_arn
            else self.clients
        )
        lock_tables, lockfiles = lock_sources(
            source_clients, tables=target.lock_tables, buckets=target.buckets, segments=settings.scan_segments
        )
        alerts = make_alerter(
            self.policy,
            table=", ".join(target.lock_tables or target.buckets),
            clients=self.clients,
            state=self.state,
            state_table=settings.state_table_name,
            default_topic_arn=settings.alert_topic_arn,
            budget=outbound_budget(self.remaining_seconds),
        )
        return sweep(
            lock_table=lock_tables,
            lockfiles=lockfiles,
            state=self.state,
            policy=self.policy,
            mode=settings.reaper_mode,
            alerts=alerts,
            holders=self.holders,
            remaining_seconds=self.remaining_seconds,
            reconciler=None if target.role_arn else self.reconciler,
        )


def send_resolved(
    notification: Notification, channels_json: str, *, settings: Settings, clients: AwsClients
) -> DispatchResult:
    """Announce a release on the channels that were alerted about the lock (recorded by the sweeper)."""
    channels = _channels().validate_json(channels_json)
    factory = channel_factory(
        clients, default_topic_arn=settings.alert_topic_arn, state_table=settings.state_table_name
    )
    ledger = notification_ledger(clients, settings.state_table_name)
    from tflock_reaper.services.dispatch import dispatch  # noqa: PLC0415 - the stream function's, on a release only

    return dispatch(notification, [factory(name, channel) for name, channel in channels.items()], ledger)
