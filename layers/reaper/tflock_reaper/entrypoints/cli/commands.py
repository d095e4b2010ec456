"""The commands that read locks (``locks``, ``sweep``, ``explain``) and ``enable-stream``: each wires the real
adapters (``entrypoints.wiring``), calls one service function, and shows its result."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.table_admin import (
    StreamConfigError,
    aws_managed_key,
    enable_stream,
    grant_stream_read,
    reader_principal,
)
from tflock_reaper.domain.lock import DigestRecord, DynamoItem, SkippedItem
from tflock_reaper.domain.policy import Policy, load_policy
from tflock_reaper.domain.report import LockReport, Mode, SweepReport
from tflock_reaper.entrypoints.cli.codes import EXIT_DECLINED, EXIT_FAIL_ON, EXIT_NOT_FOUND, EXIT_OK
from tflock_reaper.entrypoints.cli.errors import ConfigError
from tflock_reaper.entrypoints.cli.listing import Filters, failed_conditions, status_of
from tflock_reaper.entrypoints.cli.prompt import ReapPrompt, interactive
from tflock_reaper.entrypoints.cli.render import explain_text, print_locks, print_sweep, release_commands
from tflock_reaper.entrypoints.wiring import holder_checks, lock_sources, make_alerter, state_store
from tflock_reaper.services.sweep import explain, sweep

_LOG_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class StderrFormatter(logging.Formatter):
    """``tflock-reaper WARNING lock reaped {"lock_path": ..., "deleted_item": ...}``: readable, and complete."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _LOG_RECORD_FIELDS}
        fields = f" {json.dumps(extras, default=str, sort_keys=True)}" if extras else ""
        return f"tflock-reaper {record.levelname} {record.getMessage()}{fields}"


def configure_logging(*, verbose: bool) -> None:
    log = logging.getLogger("tflock_reaper")
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StderrFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


@dataclass
class Run:
    """One command's arguments and streams (stdout for its output; stderr for messages and questions)."""

    args: argparse.Namespace
    out: TextIO
    err: TextIO
    stdin: TextIO
    _clients: AwsClients | None = field(default=None, init=False, repr=False)

    @property
    def clients(self) -> AwsClients:
        if self._clients is None:
            self._clients = AwsClients(
                region=self.args.region, endpoint_url=self.args.endpoint_url, profile=self.args.profile
            )
        return self._clients

    @property
    def json(self) -> bool:
        return bool(self.args.output == "json")

    def write_json(self, payload: Any) -> None:
        json.dump(payload, self.out, indent=2, default=str)
        self.out.write("\n")

    def complain(self, message: str) -> None:
        self.err.write(f"tflock-reaper: {message}\n")


def sources(args: argparse.Namespace, clients: AwsClients) -> tuple[list[LockTable], LockfileBuckets | None]:
    """The lock tables (``--table``, each once) and the lockfile buckets (``--bucket``): at least one of them."""
    if not args.tables and not args.bucket:
        raise ConfigError("give the lock table (--table T), the state bucket(s) (--bucket B[/PREFIX]), or both")
    for bucket in args.bucket:
        try:
            BucketLocation.parse(bucket)
        except ValueError as err:
            raise ConfigError(f"--bucket: {err}") from err
    return lock_sources(clients, tables=list(dict.fromkeys(args.tables)), buckets=args.bucket)


def requested_mode(args: argparse.Namespace, policy: Policy) -> Mode:
    """The CLI is a dry run unless --enforce; --enforce on a dry-run policy is refused, not silently ignored."""
    if not getattr(args, "enforce", False):
        return "dry-run"
    if policy.mode != "enforce":
        raise ConfigError(
            f"--enforce given but {args.policy} says mode: {policy.mode}. Reaping needs both keys: "
            "set mode: enforce in the policy, then run with --enforce."
        )
    return "enforce"


def run_locks(run: Run) -> int:
    args = run.args
    policy = load_policy(args.policy) if args.policy else Policy()
    tables, lockfiles = sources(args, run.clients)
    state = state_store(run.clients, args.state_table)
    report = sweep(
        lock_table=tables,
        lockfiles=lockfiles,
        state=state,
        policy=policy,
        mode="dry-run",
        holders=holder_checks(run.clients, state),
    )
    filters = Filters(stale=args.stale, older_than=args.older_than, path=args.path, sort=args.sort)
    return _show(run, report, filters, listing=True)


def run_sweep(run: Run) -> int:
    args = run.args
    policy = load_policy(args.policy)
    clients = run.clients
    tables, lockfiles = sources(args, clients)
    state = state_store(clients, args.state_table)
    mode = requested_mode(args, policy)
    alerts = None
    if args.show_notifications or args.notify:
        alerts = make_alerter(
            policy,
            table=", ".join(table.name for table in tables) or (lockfiles.name if lockfiles else ""),
            clients=clients,
            state=state,
            state_table=args.state_table,
            default_topic_arn=args.alert_topic_arn,
            send=args.notify,
        )
    asks = mode == "enforce" and not args.yes and interactive(run.stdin, run.err)
    prompt = ReapPrompt(run.stdin, run.err) if asks else None
    report = sweep(
        lock_table=tables,
        lockfiles=lockfiles,
        state=state,
        policy=policy,
        mode=mode,
        alerts=alerts,
        holders=holder_checks(clients, state),
        confirm=prompt,
    )
    code = _show(run, report, Filters(), listing=False)
    return EXIT_DECLINED if prompt is not None and prompt.declined else code


def _show(run: Run, report: SweepReport, filters: Filters, *, listing: bool) -> int:
    """Print the report (the locks the filters keep, in their order), then check ``--fail-on``."""
    remembers = bool(run.args.state_table)
    statuses = {id(entry): status_of(entry, remembers=remembers) for entry in report.locks}
    shown = [(entry, statuses[id(entry)]) for entry in filters.locks(report.locks)]
    skipped = filters.skipped(report.skipped)
    if run.json:
        payload = report.to_dict()
        payload["locks"] = [
            {**entry.to_dict(), "status": status.kind.value, "status_text": status.text} for entry, status in shown
        ]
        kept = {id(item) for item in skipped}
        payload["skipped"] = [
            row for item, row in zip(report.skipped, payload["skipped"], strict=True) if id(item) in kept
        ]
        run.write_json(payload)
    elif listing:
        print_locks(report, shown, skipped, run.out, statuses=list(statuses.values()))
    else:
        print_sweep(report, run.out)
    held = failed_conditions(run.args.fail_on, report, shown, skipped)
    for message in held:
        run.complain(f"--fail-on {message}")
    return EXIT_FAIL_ON if held else EXIT_OK


def run_explain(run: Run) -> int:
    args = run.args
    policy = load_policy(args.policy)
    tables, lockfiles = sources(args, run.clients)
    state = state_store(run.clients, args.state_table)
    table, item = _first_holding(tables, args.lock_path)
    result = explain(
        args.lock_path,
        item=item,
        table=table.name if table else None,
        table_arn=table.describe()[0] if table else None,
        lockfile=lockfiles.get(args.lock_path) if lockfiles else None,
        state=state,
        policy=policy,
        holders=holder_checks(run.clients, state),
    )
    if result is None:
        missing = (
            [f"no item with LockID {args.lock_path!r} in {', '.join(repr(t.name) for t in tables)}"] if tables else []
        )
        if lockfiles:
            missing.append(f"no lockfile {args.lock_path + '.tflock'!r} in {lockfiles.name}")
        run.complain("; ".join(missing))
        return EXIT_NOT_FOUND
    if isinstance(result, DigestRecord):
        payload: dict[str, Any] = {"path": result.lock_path, "kind": "digest", "action": "never touched"}
        text = f"{result.lock_path}: Terraform's state digest item, not a lock. It is never touched."
    elif isinstance(result, SkippedItem):
        payload = {"path": result.lock_id, "kind": "skipped", "reason": result.reason}
        text = f"{result.lock_id}: skipped, never deleted: {result.reason}"
    else:
        payload = {"kind": "lock", **result.to_dict(), **release_commands(result)}
        if payload["holder"] is not None:
            payload["holder"]["checks"] = _holder_checks(result)
        text = explain_text(result)
    if run.json:
        run.write_json(payload)
    else:
        run.out.write(text + "\n")
    return EXIT_OK


def _first_holding(tables: Sequence[LockTable], lock_path: str) -> tuple[LockTable | None, DynamoItem | None]:
    """The first table (in the order given) that holds an item at ``lock_path``, with it; else the first table."""
    for table in tables:
        item = table.get(lock_path)
        if item is not None:
            return table, item
    return (tables[0] if tables else None), None


def _holder_checks(report: LockReport) -> list[dict[str, str]]:
    status = report.verdict.holder
    if status is None:
        return []
    # Combined checks carry each check's own answer in ``details``; a single check is its own answer.
    return [{"check": a.check, "state": a.state.value, "evidence": a.evidence} for a in (status.details or (status,))]


def run_enable_stream(run: Run) -> int:
    """Each table's stream on (in the order given, each once), then, with --grant-read-to, readable by another
    account's stack; prints the LockTableStreamArns to deploy with."""
    args = run.args
    client = run.clients.dynamodb()
    tables = list(dict.fromkeys(args.tables))
    for reader in args.readers:  # refused before any table is changed
        reader_principal(reader)
    streams = []
    for table in tables:
        status = enable_stream(client, table)
        if status.arn is None:
            raise AwsAccessError(f"the stream of {table!r} has no ARN yet: run this again in a minute")
        granted = None
        if args.readers:
            principals = [reader_principal(reader, partition=status.arn.split(":")[1]) for reader in args.readers]
            granted = _grant(run, table, status.arn, status.kms_key_arn, principals)
        streams.append({"table": table, "stream_arn": status.arn, "changed": status.changed, "granted": granted})
        if not run.json:
            verb = "enabled" if status.changed else "already enabled"
            run.out.write(f"Stream {verb} on {table} ({status.view_type}).\n")
            if granted is not None:
                done = "granted to" if granted else "already granted to"
                run.out.write(f"  Read {done} {', '.join(args.readers)} (its resource-based policy).\n")
    arns = ",".join(str(stream["stream_arn"]) for stream in streams)
    if run.json:
        payload: dict[str, Any] = {"streams": streams, "lock_table_stream_arns": arns}
        if len(streams) == 1:  # the one-table shape of 0.x, kept for scripts that read it
            payload.update({key: streams[0][key] for key in ("table", "stream_arn", "changed")})
        run.write_json(payload)
    else:
        run.out.write(f"LockTableStreamArns={arns}\n")
    return EXIT_OK


def _grant(run: Run, table: str, stream_arn: str, kms_key_arn: str | None, principals: list[str]) -> bool:
    """The stream's policy lets ``principals`` read it; refused where AWS does not support it (an AWS managed key)."""
    if kms_key_arn:
        managed = aws_managed_key(run.clients.client("kms"), kms_key_arn)
        if managed:
            raise StreamConfigError(
                f"lock table {table!r} is encrypted with the AWS managed key (aws/dynamodb): AWS does not let another "
                "account read its stream through a resource-based policy. Its stream can be audited only by a stack "
                "in its own account."
            )
        if managed is None:
            run.complain(
                f"warning: cannot tell whether {table!r}'s KMS key is AWS managed (kms:DescribeKey refused): if it is, "
                "another account cannot read its stream"
            )
    return grant_stream_read(run.clients.dynamodb(), stream_arn, principals)
