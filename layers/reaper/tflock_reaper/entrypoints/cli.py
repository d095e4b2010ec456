"""``tflock-reaper``: the operator CLI. Runs the same engine as the Lambda from a laptop.

Exit codes: 0 done (a completed sweep, whatever it found); 1 the lock asked about does not exist;
2 bad usage or configuration (policy file, mode); 3 AWS could not be used (table missing, denied, unreachable).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, TextIO

from tflock_reaper import __version__
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import LockfileBuckets
from tflock_reaper.adapters.table_admin import StreamConfigError, enable_stream
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.liveness import describe_answers
from tflock_reaper.domain.lock import DigestRecord, SkippedItem
from tflock_reaper.domain.memory import StateStore
from tflock_reaper.domain.notifier import AlertingFailed, NotificationRecord
from tflock_reaper.domain.policy import Policy, PolicyError, load_policy
from tflock_reaper.domain.report import LockReport, Mode, SweepReport
from tflock_reaper.entrypoints.wiring import holder_checks, lock_sources, make_alerter, state_store
from tflock_reaper.services.sweep import HolderChecks, explain, sweep

EXIT_OK, EXIT_NOT_FOUND, EXIT_CONFIG, EXIT_AWS = 0, 1, 2, 3
_PREVIEW_MAX = 140

_LOG_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class _ConfigError(Exception):
    pass


class _StderrFormatter(logging.Formatter):
    """``tflock-reaper WARNING lock reaped {"lock_path": ..., "deleted_item": ...}``: readable, and complete."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _LOG_RECORD_FIELDS}
        fields = f" {json.dumps(extras, default=str, sort_keys=True)}" if extras else ""
        return f"tflock-reaper {record.levelname} {record.getMessage()}{fields}"


def _parser() -> argparse.ArgumentParser:
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--table", help="the Terraform lock table (DynamoDB)")
    aws.add_argument("--region", help="AWS region (default: the standard AWS configuration)")
    aws.add_argument("--endpoint-url", help="AWS endpoint, e.g. http://127.0.0.1:5000 (or AWS_ENDPOINT_URL)")
    aws.add_argument("--profile", help="AWS named profile")
    aws.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    aws.add_argument("-v", "--verbose", action="store_true", help="log every verdict to stderr")
    common = argparse.ArgumentParser(add_help=False, parents=[aws])
    common.add_argument("--state-table", help="the reaper's state table (first-seen times, reap records)")
    common.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="BUCKET[/PREFIX]",
        help="a state bucket whose .tflock lockfiles (use_lockfile) to sweep too; repeatable",
    )

    parser = argparse.ArgumentParser(
        prog="tflock-reaper",
        description="Find, explain and safely reap stale Terraform/OpenTofu state locks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    locks = commands.add_parser("locks", parents=[common], help="list locks with their age and verdict")
    locks.add_argument("--policy", help="policy file (default: built-in defaults, dry-run)")

    run = commands.add_parser("sweep", parents=[common], help="judge every lock; reap only with --enforce")
    run.add_argument("--policy", required=True, help="policy file (YAML)")
    run.add_argument("--enforce", action="store_true", help="really delete (the policy must also say mode: enforce)")
    alerts = run.add_mutually_exclusive_group()
    alerts.add_argument(
        "--show-notifications",
        action="store_true",
        help="show the alerts the policy's channels would get (rendered; nothing is sent)",
    )
    alerts.add_argument("--notify", action="store_true", help="send the alerts through the policy's channels")
    run.add_argument("--alert-topic-arn", help="SNS topic for sns channels without topic_arn (the stack's topic)")

    why = commands.add_parser("explain", parents=[common], help="the verdict for one lock, with every reason")
    why.add_argument("--policy", required=True, help="policy file (YAML)")
    why.add_argument("lock_path", metavar="LOCK_PATH", help="the LockID, e.g. tf-state/env:/dev/app.tfstate")
    commands.add_parser(
        "enable-stream",
        parents=[aws],
        help="turn on the lock table's stream (NEW_AND_OLD_IMAGES) for the audit; prints its ARN",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    args = _parser().parse_args(argv)
    _configure_logging(verbose=args.verbose)
    try:
        if args.command == "enable-stream":
            return _enable_stream(args, out)
        policy = load_policy(args.policy) if args.policy else Policy()
        clients = AwsClients(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
        lock_table, lockfiles = _sources(args, clients)
        state = state_store(clients, args.state_table)
        if args.command == "explain":
            holders = holder_checks(clients, state)
            return _explain(
                args, table=lock_table, lockfiles=lockfiles, state=state, policy=policy, out=out, holders=holders
            )
        alerts = None
        if getattr(args, "show_notifications", False) or getattr(args, "notify", False):
            alerts = make_alerter(
                policy,
                table=args.table or (lockfiles.name if lockfiles else ""),
                clients=clients,
                state=state,
                state_table=args.state_table,
                default_topic_arn=args.alert_topic_arn,
                send=args.notify,
            )
        report = sweep(
            lock_table=lock_table,
            lockfiles=lockfiles,
            state=state,
            policy=policy,
            mode=_mode(args, policy),
            alerts=alerts,
            holders=holder_checks(clients, state),
        )
    except PolicyError as err:
        print(f"tflock-reaper: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except (_ConfigError, StreamConfigError) as err:
        print(f"tflock-reaper: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except AwsAccessError as err:
        print(f"tflock-reaper: {err}", file=sys.stderr)
        return EXIT_AWS
    if args.json:
        json.dump(report.to_dict(), out, indent=2)
        out.write("\n")
    else:
        _print_report(report, out, show_reasons=args.command == "sweep")
    return EXIT_OK


def _sources(args: argparse.Namespace, clients: AwsClients) -> tuple[LockTable | None, LockfileBuckets | None]:
    """The lock table (``--table``) and the lockfile buckets (``--bucket``): at least one of them."""
    if not args.table and not args.bucket:
        raise _ConfigError("give the lock table (--table T), the state bucket(s) (--bucket B[/PREFIX]), or both")
    try:
        tables, lockfiles = lock_sources(clients, tables=[args.table] if args.table else [], buckets=args.bucket)
    except ValueError as err:
        raise _ConfigError(f"--bucket: {err}") from err
    return (tables[0] if tables else None), lockfiles


def _enable_stream(args: argparse.Namespace, out: TextIO) -> int:
    if not args.table:
        raise _ConfigError("enable-stream needs the lock table: --table T")
    clients = AwsClients(region=args.region, endpoint_url=args.endpoint_url, profile=args.profile)
    status = enable_stream(clients.dynamodb(), args.table)
    if args.json:
        json.dump({"table": args.table, "stream_arn": status.arn, "changed": status.changed}, out, indent=2)
        out.write("\n")
    else:
        verb = "enabled" if status.changed else "already enabled"
        out.write(f"Stream {verb} on {args.table} ({status.view_type}).\nLockTableStreamArn={status.arn}\n")
    return EXIT_OK


def _mode(args: argparse.Namespace, policy: Policy) -> Mode:
    """The CLI is a dry run unless --enforce; --enforce on a dry-run policy is refused, not silently ignored."""
    if not getattr(args, "enforce", False):
        return "dry-run"
    if policy.mode != "enforce":
        raise _ConfigError(
            f"--enforce given but {args.policy} says mode: {policy.mode}. Reaping needs both keys: "
            "set mode: enforce in the policy, then run with --enforce."
        )
    return "enforce"


def _configure_logging(*, verbose: bool) -> None:
    log = logging.getLogger("tflock_reaper")
    log.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StderrFormatter())
    log.addHandler(handler)
    log.setLevel(logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _explain(
    args: argparse.Namespace,
    *,
    table: LockTable | None,
    lockfiles: LockfileBuckets | None,
    state: StateStore,
    policy: Policy,
    out: TextIO,
    holders: HolderChecks,
) -> int:
    result = explain(
        args.lock_path,
        item=table.get(args.lock_path) if table else None,
        table=table.name if table else None,
        table_arn=table.describe()[0] if table else None,
        lockfile=lockfiles.get(args.lock_path) if lockfiles else None,
        state=state,
        policy=policy,
        holders=holders,
    )
    if result is None:
        missing = [f"no item with LockID {args.lock_path!r} in {args.table!r}"] if table else []
        if lockfiles:
            missing.append(f"no lockfile {args.lock_path + '.tflock'!r} in {lockfiles.name}")
        print(f"tflock-reaper: {'; '.join(missing)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if isinstance(result, DigestRecord):
        payload: dict[str, Any] = {"path": result.lock_path, "kind": "digest", "action": "never touched"}
        text = f"{result.lock_path}: Terraform's state digest item, not a lock. It is never touched."
    elif isinstance(result, SkippedItem):
        payload = {"path": result.lock_id, "kind": "skipped", "reason": result.reason}
        text = f"{result.lock_id}: skipped, never deleted: {result.reason}"
    else:
        payload = {"kind": "lock", **result.to_dict()}
        if payload["holder"] is not None:
            payload["holder"]["checks"] = _holder_checks(result)
        text = _explain_text(result)
    if args.json:
        json.dump(payload, out, indent=2)
        out.write("\n")
    else:
        out.write(text + "\n")
    return EXIT_OK


def _explain_text(report: LockReport) -> str:
    info = report.lock.info
    lines = [
        f"Lock      {report.lock.lock_path}  (backend {report.lock.backend})",
        f"ID        {info.id}",
        f"Operation {info.operation}",
        f"Who       {info.who}",
        f"Version   {info.version}",
        f"Created   {info.created.isoformat()}  (workspace {report.lock.workspace})",
        f"Age       {format_duration(report.verdict.age)} (by {report.verdict.age_basis})",
        f"Reap age  {format_duration(report.verdict.reap_age)} (by {report.verdict.reap_age_basis}; gates the reap)",
        f"Rule      {report.verdict.rule.name}",
        f"Verdict   {report.verdict.action.value} -> {report.outcome.value}",
        "Reasons:",
        *(f"  - {reason}" for reason in report.reasons),
        "Holder:",
        *_holder_lines(report),
    ]
    if report.verdict.action.value != "keep":
        lines.append(f"By hand:  terraform force-unlock -force {info.id}   (in workspace {report.lock.workspace})")
    return "\n".join(lines)


def _holder_lines(report: LockReport) -> list[str]:
    """Each check's answer and evidence, one line per check."""
    status = report.verdict.holder
    if status is None:
        return ["  not asked: holder checks run only for locks past reap_after"]
    return [f"  {line}" for line in describe_answers(status)]


def _holder_checks(report: LockReport) -> list[dict[str, str]]:
    status = report.verdict.holder
    if status is None:
        return []
    # Combined checks carry each check's own answer in ``details``; a single check is its own answer.
    return [{"check": a.check, "state": a.state.value, "evidence": a.evidence} for a in (status.details or (status,))]


def _describe_notification(record: NotificationRecord) -> str:
    if isinstance(record, AlertingFailed):
        return f"alerting failed: {record.error}"
    event = record.event + (f" #{record.sequence}" if record.sequence else "")
    channels = ", ".join(f"{name} ({status})" for name, status in record.channels.items()) or "no channels"
    previews = [f"\n        {name}: {_preview(body)}" for name, body in (record.rendered or {}).items()]
    return f"{event} -> {channels}" + "".join(previews)


def _preview(rendered: Mapping[str, Any]) -> str:
    """One line of what a channel would receive: Slack's fallback text, the SNS subject, PagerDuty's summary."""
    text = rendered.get("text") or rendered.get("Subject") or rendered.get("payload", {}).get("summary")
    text = text or rendered.get("error") or json.dumps(rendered, default=str)
    line = str(text).splitlines()[0] if str(text) else ""
    return line if len(line) <= _PREVIEW_MAX else line[: _PREVIEW_MAX - 1] + "…"


def _age(seconds: timedelta) -> str:
    return format_duration(timedelta(seconds=int(seconds.total_seconds())))


def _print_report(report: SweepReport, out: TextIO, *, show_reasons: bool) -> None:
    sources = [*([f"Lock table {report.table}"] if report.table else []), *([report.buckets] if report.buckets else [])]
    out.write(f"{', '.join(sources)}: mode {report.mode}\n")
    for note in report.notes:
        out.write(f"note: {note}\n")
    rows = [("PATH", "OPERATION", "WHO", "AGE", "ACTION", "OUTCOME")] + [
        (
            r.lock.lock_path,
            r.lock.info.operation,
            r.lock.info.who,
            _age(r.verdict.age),
            r.verdict.action.value,
            r.outcome.value,
        )
        for r in report.locks
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        out.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() + "\n")
        if show_reasons and index > 0:
            for reason in report.locks[index - 1].reasons:
                out.write(f"    - {reason}\n")
            for sent in report.locks[index - 1].notifications:
                out.write(f"    > {_describe_notification(sent)}\n")
    if not report.locks:
        out.write("(no locks held)\n")
    if report.breaker:
        out.write(f"{report.breaker}\n")
    if report.skipped:
        out.write(f"Skipped {len(report.skipped)} item(s), never deleted:\n")
        for skipped in report.skipped:
            out.write(f"  {skipped.lock_id}: {skipped.reason}\n")
    summary = report.summary()
    counts = ", ".join(f"{value} {key.replace('_', '-')}" for key, value in summary.items() if value)
    out.write(f"Summary: {counts or 'nothing found'}\n")
