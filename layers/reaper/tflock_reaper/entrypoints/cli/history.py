"""``history``, ``backtest`` and ``suggest``: the audit's record of every acquisition (the state table's history
index), summed up, replayed against a candidate policy, and turned into thresholds. Only reads AWS; ``--html`` and
``suggest --write`` write local files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain import history
from tflock_reaper.domain.durations import format_duration
from tflock_reaper.domain.history import BacktestResult, HistoryRecord, HoldStats, Suggestion
from tflock_reaper.domain.policy import Policy, load_policy, parse_policy
from tflock_reaper.domain.text import one_line
from tflock_reaper.entrypoints.cli.codes import EXIT_FAIL_ON, EXIT_OK
from tflock_reaper.entrypoints.cli.commands import Run
from tflock_reaper.entrypoints.cli.errors import ConfigError
from tflock_reaper.services.sweep import utcnow

#: Rows of the per-state table in ``history`` (the JSON output has every state).
TOP_STATES = 20
#: What makes ``--path`` a glob rather than one state's path (``fnmatch``'s special characters).
_WILDCARDS = frozenset("*?[")


# -- reading -------------------------------------------------------------------------------------------------
def _records(run: Run, now: datetime) -> list[HistoryRecord]:
    args = run.args
    if args.since <= timedelta(0):
        raise ConfigError("--since must be a positive duration, e.g. 30d")
    since = now - args.since
    client = run.clients.dynamodb()
    table = StateTable(client, args.state_table)
    if args.lock_table and args.path and not _WILDCARDS.intersection(args.path):
        # One state of one table: its own partition (a consistent Query), not the days of the index.
        arn = str(client.describe_table(TableName=args.lock_table)["Table"]["TableArn"])
        return history.select(table.state_history(arn, args.path), since=since)
    records = history.select(table.history(since, now), since=since, path_glob=args.path)
    return [r for r in records if r.table == args.lock_table] if args.lock_table else records


@dataclass(frozen=True)
class _Deployed:
    name: str
    policy: Policy
    text: str
    """The policy's YAML as deployed (empty for the defaults): what ``suggest --write`` starts from."""


def _deployed_policy(run: Run) -> _Deployed:
    args = run.args
    if args.deployed:
        try:
            text = Path(args.deployed).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read {args.deployed}: {err.strerror or err}") from err
        return _Deployed(args.deployed, parse_policy(text, args.deployed), text)
    if args.deployed_parameter:
        name = args.deployed_parameter
        text = str(run.clients.client("ssm").get_parameter(Name=name)["Parameter"]["Value"])
        return _Deployed(f"ssm:{name}", parse_policy(text, f"ssm:{name}"), text)
    return _Deployed("defaults", Policy(), "")


# -- history -------------------------------------------------------------------------------------------------
def run_history(run: Run) -> int:
    now = utcnow()
    records = _records(run, now)
    policy = load_policy(run.args.policy) if run.args.policy else None

    def rule_of(record: HistoryRecord) -> str:
        if policy is None:
            return "all"
        return policy.rule_for_fields(record.lock_path, record.operation, record.who).name

    overall = history.hold_stats(records, now)
    groups = {
        "operation": history.group_by(records, lambda r: r.operation),
        "rule": history.group_by(records, rule_of) if policy else {},
        "path": history.group_by(records, lambda r: r.lock_path),
    }
    stats = {name: {key: history.hold_stats(rs, now) for key, rs in group.items()} for name, group in groups.items()}
    bins = history.histogram(records, now)
    if run.args.html:
        _write_html(run, records, now, rule_of)
    if run.json:
        run.write_json(
            {
                "since": (now - run.args.since).isoformat(),
                "until": now.isoformat(),
                "path": run.args.path,
                "overall": overall.as_json(),
                "by_operation": {k: v.as_json() for k, v in stats["operation"].items()},
                "by_rule": {k: v.as_json() for k, v in stats["rule"].items()},
                "by_path": {k: v.as_json() for k, v in stats["path"].items()},
                "histogram": [{"low_seconds": b.low.total_seconds(), "count": b.count, "label": b.label} for b in bins],
                "stale_per_day": history.stale_per_day(records),
            }
        )
        return EXIT_OK
    _print_history(run, overall, stats, bins)
    return EXIT_OK


def _write_html(run: Run, records: list[HistoryRecord], now: datetime, rule_of: Callable[[HistoryRecord], str]) -> None:
    # Imported here: only --html draws the page.
    from tflock_reaper.entrypoints.cli.history_render import html_page  # noqa: PLC0415

    page = html_page(
        title=f"tflock-reaper history: {run.args.state_table}",
        generated_at=now,
        since=now - run.args.since,
        records=records,
        now=now,
        rule_of=rule_of,
    )
    try:
        run.args.html.write_text(page, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write {run.args.html}: {err.strerror or err}") from err
    run.err.write(f"tflock-reaper: wrote {run.args.html}\n")


def _d(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))


_HEADER = (
    f"{'count':>7} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8} {'stale':>6} {'reaped':>6} {'by hand':>7} {'held':>5}"
)


def _row(label: str, s: HoldStats, width: int) -> str:
    return (
        f"{one_line(label)[:width]:<{width}} {s.count:>7} {_d(s.p50):>8} {_d(s.p95):>8} {_d(s.p99):>8} "
        f"{_d(s.max):>8} {s.stale:>6} {s.reaped:>6} {s.by_hand:>7} {s.held_now:>5}"
    )


def _print_history(
    run: Run, overall: HoldStats, stats: dict[str, dict[str, HoldStats]], bins: Sequence[history.Bin]
) -> None:
    from tflock_reaper.entrypoints.cli.history_render import terminal_histogram  # noqa: PLC0415

    args, out = run.args, run.out
    scope = f" under {args.path}" if args.path else ""
    out.write(f"History of the last {format_duration(args.since)}{scope}: {overall.count} acquisitions\n\n")
    width = 40
    out.write(f"{'':<{width}} {_HEADER}\n")
    out.write(_row("all", overall, width) + "\n")
    sections = [("operation", "By operation"), ("rule", "By rule"), ("path", f"By state (top {TOP_STATES} by p99)")]
    for name, title in sections:
        group = stats[name]
        if not group:
            continue
        out.write(f"\n{title}\n")
        rows = sorted(group.items(), key=lambda kv: -kv[1].p99) if name == "path" else list(group.items())
        for label, s in rows[:TOP_STATES] if name == "path" else rows:
            out.write(_row(label, s, width) + "\n")
    longest = overall.longest_held_now
    if longest is not None and overall.longest_held_seconds is not None:
        out.write(
            f"\nLongest held now: {one_line(longest.lock_path)} ({one_line(longest.operation)} by "
            f"{one_line(longest.who)}), held {_d(overall.longest_held_seconds)}, ID {one_line(longest.lock_id)}\n"
        )
    out.write("\nHold times\n")
    for line in terminal_histogram(bins):
        out.write(f"  {line}\n")
    out.write(
        "\nby hand: tflock-reaper unlock, or released by a Terraform principal after an alert (most likely "
        "terraform force-unlock: the stream cannot tell it from the holder's own release)\n"
    )


# -- backtest ------------------------------------------------------------------------------------------------
def run_backtest(run: Run) -> int:
    now = utcnow()
    args = run.args
    candidate = load_policy(args.policy)
    deployed = _deployed_policy(run)
    records = _records(run, now)
    results = [
        history.backtest(args.policy, records, candidate, now, sweep_every=args.sweep_every),
        history.backtest(deployed.name, records, deployed.policy, now, sweep_every=args.sweep_every),
    ]
    if run.json:
        run.write_json(
            {
                "since": (now - args.since).isoformat(),
                "until": now.isoformat(),
                "sweep_every_seconds": args.sweep_every.total_seconds(),
                "candidate": results[0].as_json(),
                "deployed": results[1].as_json(),
            }
        )
    else:
        _print_backtest(run, results)
    return EXIT_FAIL_ON if args.fail_on == "wrongful" and results[0].wrongful else EXIT_OK


def _print_backtest(run: Run, results: Sequence[BacktestResult]) -> None:
    out = run.out
    candidate, deployed = results
    out.write(
        f"Replayed {candidate.locks} acquisitions of the last {format_duration(run.args.since)}"
        f"{f' under {run.args.path}' if run.args.path else ''} (a sweep every "
        f"{format_duration(run.args.sweep_every)}; holder checks assumed to allow the reaps; assume: unknown never "
        "reaps)\n\n"
    )
    width = max(len("deployed: " + deployed.name), len("candidate: " + candidate.name), 20)
    out.write(f"{'':<{width}} {'alerts':>8} {'alerted locks':>14} {'reaps':>6} {'wrongful reaps':>15}\n")
    for label, r in (("candidate", candidate), ("deployed", deployed)):
        name = one_line(f"{label}: {r.name}")
        out.write(f"{name:<{width}} {r.alerts:>8} {r.alerted_locks:>14} {len(r.reaps):>6} {len(r.wrongful):>15}\n")
    for label, r in (("candidate", candidate), ("deployed", deployed)):
        if not r.wrongful:
            continue
        out.write(f"\nWrongful reaps of the {label} policy (the holder released the lock itself, later):\n")
        for reap in r.wrongful:
            rec = reap.record
            released = rec.released_at.isoformat() if rec.released_at else "?"
            note = "  (released after an alert: perhaps a force-unlock)" if rec.after_alert else ""
            out.write(
                f"  {one_line(rec.lock_path)}  {one_line(rec.operation)} by {one_line(rec.who)}: acquired "
                f"{rec.acquired_at.isoformat()}, would be reaped {reap.at.isoformat()} ({reap.rule}), released "
                f"{released}{note}\n"
            )
    if not candidate.wrongful:
        out.write("\nThe candidate would have reaped no lock its holder later released.\n")


# -- suggest -------------------------------------------------------------------------------------------------
def run_suggest(run: Run) -> int:
    now = utcnow()
    args = run.args
    deployed = _deployed_policy(run)
    records = _records(run, now)
    suggestions = history.suggest(records, deployed.policy, now, sweep_every=args.sweep_every)
    written: str | None = None
    if args.write:
        written = _write_policy(run, deployed, suggestions, records, now)
    if run.json:
        run.write_json(
            {
                "deployed": deployed.name,
                "locks": len(records),
                "suggestions": [s.as_json() for s in suggestions],
                "written": written,
            }
        )
        return EXIT_OK
    out = run.out
    out.write(f"From {len(records)} acquisitions of the last {format_duration(args.since)} ({deployed.name}):\n")
    for s in suggestions:
        where = f"new rule match: {s.glob}" if s.glob else s.rule
        verdict = "change" if s.changed else "keep"
        out.write(
            f"\n{one_line(where)}: {verdict} warn_after {format_duration(s.warn_after)}, reap_after "
            f"{format_duration(s.reap_after)}\n"
        )
        for line in s.reasoning:
            out.write(f"  {one_line(line)}\n")
    if written:
        out.write(f"\nWrote {written}: a backtest of it reaps no lock its holder released.\n")
    return EXIT_OK


def _write_policy(
    run: Run, deployed: _Deployed, suggestions: list[Suggestion], records: list[HistoryRecord], now: datetime
) -> str:
    import yaml  # noqa: PLC0415 - only --write dumps YAML

    data: dict[str, Any] = yaml.safe_load(deployed.text) or {} if deployed.text else {}
    text = yaml.safe_dump(history.apply_suggestions(data, suggestions), sort_keys=False)
    suggested = parse_policy(text, str(run.args.write))
    check = history.backtest("suggested", records, suggested, now, sweep_every=run.args.sweep_every)
    if check.wrongful:  # never happens by construction (each suggestion is replayed); refuse rather than write
        raise ConfigError(f"the suggested policy would have reaped {len(check.wrongful)} live locks: not written")
    header = (
        f"# Suggested by tflock-reaper suggest on {now.date().isoformat()} from {len(records)} acquisitions of the "
        f"last {format_duration(run.args.since)}.\n# A backtest of this policy over them reaps no lock its holder "
        "released. Comments of the deployed policy are not kept.\n"
    )
    try:
        run.args.write.write_text(header + text, encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write {run.args.write}: {err.strerror or err}") from err
    return str(run.args.write)
