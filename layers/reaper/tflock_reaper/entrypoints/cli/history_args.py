"""The command line of ``history``, ``backtest`` and ``suggest`` (run by ``entrypoints.cli.history``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from tflock_reaper.domain.history import DEFAULT_SWEEP_EVERY


# -- the command line ----------------------------------------------------------------------------------------
def add_history_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    *,
    formatter: Any,  # argparse's _FormatterClass: the parser's own
    epilog: Callable[..., str],
    duration: Callable[[str], timedelta],
    prog: str,
    wrap: Callable[[str], str],
) -> None:
    """``history``, ``backtest`` and ``suggest``, with the options they share."""
    window = argparse.ArgumentParser(add_help=False)
    where = window.add_argument_group("the history (the deployed stack's state table)")
    where.add_argument("--state-table", required=True, metavar="TABLE", help="the reaper's state table (required)")
    where.add_argument(
        "--since",
        type=duration,
        default=timedelta(days=30),
        metavar="DURATION",
        help="acquisitions of the last DURATION: 7d, 30d, 12h (default: 30d; the history keeps HistoryRetentionDays)",
    )
    where.add_argument("--path", metavar="GLOB", help="only lock paths matching this glob (* matches / too)")
    where.add_argument(
        "--table",
        dest="lock_table",
        metavar="TABLE",
        help="only the locks of this lock table; with a --path without wildcards, that one state's history is read "
        "from its own partition of the state table",
    )
    where.add_argument(
        "--sweep-every",
        type=duration,
        default=DEFAULT_SWEEP_EVERY,
        metavar="DURATION",
        help="the sweeper's schedule the replay assumes (default: 1m, the stack's SweepSchedule default)",
    )

    show = commands.add_parser(
        "history",
        parents=[window, common],
        formatter_class=formatter,
        help="hold times and outcomes of the recorded acquisitions: per operation, rule and state",
        description=wrap(
            "Every acquisition the audit recorded in the window: count, hold-time p50/p95/p99/max, how many went "
            "stale, were reaped, were force-unlocked by hand (tflock-reaper unlock, or a Terraform release after "
            "an alert), and the longest held now; per operation, per rule (with --policy) and per state, with a "
            "hold-time histogram. --html writes one self-contained page with the charts."
        ),
        epilog=epilog(
            f"  {prog} history --state-table tflock-reaper-state --since 7d\n"
            f"  {prog} history --state-table tflock-reaper-state --path 'tf-state/prod/*' --output json\n"
            f"  {prog} history --state-table tflock-reaper-state --policy policy.yaml --html history.html"
        ),
    )
    options = show.add_argument_group("report")
    options.add_argument("--policy", metavar="FILE", help="group by this policy's rules too (the deployed one)")
    options.add_argument("--html", metavar="FILE", type=Path, help="also write an HTML page with the charts")

    replay = commands.add_parser(
        "backtest",
        parents=[window, common],
        formatter_class=formatter,
        help="replay the recorded history against a candidate policy: alerts, reaps, wrongful reaps",
        description=wrap(
            "Replay every recorded acquisition against the candidate policy (and the deployed one, side by side): "
            "the alerts it would have sent, the locks it would have reaped, and the reaps that would have hit a "
            "lock its holder later released itself (wrongful), each listed. A rule whose holder is assume: unknown "
            "without checks never reaps; for one with checks, the replay assumes they would have allowed the reap: "
            "it measures the thresholds. A Terraform release cannot be told from a force-unlock; one that came after "
            "an alert is marked."
        ),
        epilog=epilog(
            f"  {prog} backtest --state-table tflock-reaper-state --policy candidate.yaml --deployed policy.yaml\n"
            f"  {prog} backtest --state-table tflock-reaper-state --policy candidate.yaml --fail-on wrongful   # CI"
        ),
    )
    candidate = replay.add_argument_group("policies")
    candidate.add_argument("--policy", required=True, metavar="CANDIDATE.yaml", help="the policy to try (required)")
    _deployed(candidate)
    candidate.add_argument(
        "--fail-on",
        choices=("wrongful",),
        help="exit 4 when the candidate would have reaped a lock its holder later released",
    )

    propose = commands.add_parser(
        "suggest",
        parents=[window, common],
        formatter_class=formatter,
        help="propose warn_after and reap_after per rule from the recorded hold times, with the reasoning",
        description=wrap(
            "Propose warn_after (the p99 hold, rounded up) and reap_after (at least twice the p99 hold, and never "
            "a value the backtest shows would have reaped a lock its holder released) for each rule of the deployed "
            "policy, and per path glob for the locks no rule matches where the data calls for it; --write writes "
            "the policy with them (checked by a backtest before it is written)."
        ),
        epilog=epilog(
            f"  {prog} suggest --state-table tflock-reaper-state --deployed policy.yaml\n"
            f"  {prog} suggest --state-table tflock-reaper-state --deployed policy.yaml --write suggested.yaml"
        ),
    )
    suggestion = propose.add_argument_group("policies")
    _deployed(suggestion)
    suggestion.add_argument("--write", metavar="FILE", type=Path, help="write the suggested policy here")


def _deployed(group: argparse._ArgumentGroup) -> None:
    deployed = group.add_mutually_exclusive_group()
    deployed.add_argument("--deployed", metavar="FILE", help="the deployed policy file (default: the defaults)")
    deployed.add_argument(
        "--deployed-parameter",
        metavar="NAME",
        help="the deployed policy's SSM parameter (the stack's PolicyParameterName)",
    )
