"""The sweeper's monthly AWS cost for estates of some sizes, per schedule, from the requests a sweep makes (as
`make bench` counts them) and DynamoDB's documented read units.

Schedules compared (30-day month, 43,200 minutes):

* today: a full sweep (Scan) every sweep, at rate(5 minutes) and at rate(1 minute);
* incremental: rate(1 minute), every sweep incremental but one an hour, a full reconciliation (ReconcileEveryMinutes
  60): 42,480 incremental and 720 full sweeps;
* one-time EventBridge Scheduler schedules per lock: the stream function creates a schedule at each acquisition (to
  fire at warn_after) and deletes it at the release; a schedule that fires runs one lock's check; the hourly full
  reconciliation stays (for a lock the stream never reported).

Per sweep, for S states of which H locks are held:

* full: a strongly consistent Scan (1 read unit per 4 KB of the table: S digest items + H lock items) and the open
  set's Query (eventually consistent: half a unit per 4 KB of H index entries); with the audit, one consistent
  GetItem of the reconciliation record and its UpdateItem (1 write unit);
* incremental: DescribeTable (free), one consistent GetItem of the reconciliation record, the open set's Query,
  ``ceil(H / 100)`` consistent BatchGetItem of the lock table (1 read unit per lock item: each rounded up to 4 KB);
* with the audit, its health: one SQS GetQueueAttributes, the stream's event source mapping (Lambda, free) and one
  CloudWatch GetMetricStatistics (IteratorAge);
* Lambda: one invocation of the modelled duration at 256 MB (arm64);
* CloudWatch Logs: one ``lock verdict`` line per lock read in a full sweep; in an incremental sweep one per stale
  lock only (a kept lock's line is at DEBUG), ``--stale-held`` of the held locks (0.2); plus the sweep's own lines.

Common to every schedule, and printed apart: the audit's writes, about 6 write units per acquisition (the stream
function records it, a sweep records first seen, the stream function records the release: each an UpdateItem and
an update of the held-locks index), at ``H / hold-minutes`` acquisitions a minute (Little's law). Fixed costs that do
not grow with the estate (custom metrics, alarms, the dashboard) are printed apart too. Free tiers are not counted.

Prices: us-east-1 on-demand list prices; edit ``PRICES`` for another region.

Run as `.venv/bin/python scripts/cost_estimate.py [--states 1000 50000 1000000] [--held 0.01] [--hold-minutes 5]`.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

PRICES = {
    "read_unit": 0.125 / 1e6,  # DynamoDB on-demand, per read request unit
    "write_unit": 0.625 / 1e6,  # per write request unit
    "lambda_gb_second": 0.0000133334,  # arm64
    "lambda_request": 0.20 / 1e6,
    "log_gb": 0.50,  # CloudWatch Logs ingestion (standard)
    "sqs_request": 0.40 / 1e6,  # SQS standard queue, GetQueueAttributes
    "cloudwatch_get_metric": 0.01 / 1e3,  # GetMetricStatistics, per metric requested
    "scheduler_invocation": 1.00 / 1e6,  # EventBridge Scheduler; creating and deleting schedules is not billed
    "metric": 0.30,  # custom metric per month (first 10,000)
    "alarm": 0.10,  # standard-resolution alarm per month
    "dashboard": 3.00,  # per dashboard per month (the first 3 of an account are free)
}
DAYS = 30
MINUTES = DAYS * 24 * 60
READ_UNIT_BYTES = 4096
PAGE_BYTES = 1024 * 1024
BATCH_GET_MAX = 100

DIGEST_ITEM_BYTES = 110  # "<bucket>/<key>-md5" + a 32-character Digest
LOCK_ITEM_BYTES = 270  # LockID + Info JSON (ID, Operation, Who, Version, Created, Path): under 4 KB, 1 unit
OPEN_SET_ENTRY_BYTES = 385  # a held-locks index entry as `make bench` measures it (keys are digests, scope an ARN)
RECONCILE_RECORD_BYTES = 200
VERDICT_LOG_BYTES = 1_050  # one "lock verdict" JSON line (1,011 bytes measured) and CloudWatch's 26 per event
SWEEP_LOG_BYTES = 4_000  # "sweep complete", the EMF metrics line, Lambda's START/END/REPORT
SCHEDULED_CHECK_LOG_BYTES = 2_000  # a fired schedule's check: one verdict line, START/END/REPORT
WRITE_UNITS_PER_ACQUISITION = 6

MEMORY_GB = 0.25
FIXED_SECONDS = 0.3  # per invocation: settings, clients, DescribeTable, the reconciliation record, the health reads
SCAN_SECONDS_PER_10K_ITEMS = 1.0  # fetching and parsing Scan pages at 256 MB (about 0.15 of a vCPU)
SECONDS_PER_LOCK = 0.0007  # classify, observe, judge and log one lock: 0.1 ms on a 2-vCPU VM (bench), ~7x at 256 MB
SECONDS_PER_QUERY_PAGE = 0.05
SECONDS_PER_BATCH_GET_ROUND = 0.03  # up to 16 BatchGetItem at a time
BATCH_GET_PARALLEL = 16
SCHEDULE_CALL_SECONDS = 0.025  # one CreateSchedule or DeleteSchedule in the stream function
SCHEDULED_CHECK_SECONDS = 0.3  # a fired schedule: one consistent GetItem of the lock, its verdict, its alert

METRICS = 25  # about: the sweeper's 17 EMF metrics, the stream function's (LockHoldSeconds per operation), ColdStart
ALARMS = 6


@dataclass(frozen=True)
class Estate:
    states: int
    held_share: float
    hold_minutes: float

    @property
    def held(self) -> int:
        return max(1, round(self.states * self.held_share))

    @property
    def acquisitions(self) -> float:
        """Lock acquisitions a month: ``held / hold_minutes`` a minute (Little's law)."""
        return self.held / self.hold_minutes * MINUTES

    @property
    def table_bytes(self) -> int:
        return self.states * DIGEST_ITEM_BYTES + self.held * LOCK_ITEM_BYTES


@dataclass(frozen=True)
class Sweep:
    """What one sweep costs: read and write units, health reads, Lambda seconds, log bytes."""

    kind: str
    read_units: float
    write_units: float
    lambda_seconds: float
    log_bytes: float
    health_reads: int

    @property
    def dynamodb(self) -> float:
        return self.read_units * PRICES["read_unit"] + self.write_units * PRICES["write_unit"]

    @property
    def health(self) -> float:
        return self.health_reads * (PRICES["sqs_request"] + PRICES["cloudwatch_get_metric"])

    @property
    def lambda_cost(self) -> float:
        return self.lambda_seconds * MEMORY_GB * PRICES["lambda_gb_second"] + PRICES["lambda_request"]

    @property
    def logs(self) -> float:
        return self.log_bytes / 1e9 * PRICES["log_gb"]


def _open_set_units(held: int) -> float:
    """The held-locks Query: eventually consistent, half a unit per 4 KB of entries (at least half a unit)."""
    return max(1, math.ceil(held * OPEN_SET_ENTRY_BYTES / READ_UNIT_BYTES)) / 2


def _open_set_pages(held: int) -> int:
    return max(1, math.ceil(held * OPEN_SET_ENTRY_BYTES / PAGE_BYTES))


def full_sweep(estate: Estate, *, audit: bool) -> Sweep:
    """A Scan of every item (and the open set's Query); ``audit``: with the reconciliation record and health."""
    held = estate.held
    reads = max(1, math.ceil(estate.table_bytes / READ_UNIT_BYTES)) + _open_set_units(held)
    reads += math.ceil(RECONCILE_RECORD_BYTES / READ_UNIT_BYTES) if audit else 0
    seconds = FIXED_SECONDS + SCAN_SECONDS_PER_10K_ITEMS * (estate.states + held) / 10_000
    seconds += SECONDS_PER_QUERY_PAGE * _open_set_pages(held) + SECONDS_PER_LOCK * held
    log_bytes = held * VERDICT_LOG_BYTES + SWEEP_LOG_BYTES
    return Sweep("full", reads, 1 if audit else 0, seconds, log_bytes, 1 if audit else 0)


def incremental_sweep(estate: Estate, stale_held: float = 0.2) -> Sweep:
    """DescribeTable, the reconciliation record, the open set's Query, BatchGetItem of the held locks."""
    held = estate.held
    per_lock = math.ceil(LOCK_ITEM_BYTES / READ_UNIT_BYTES)
    reads = math.ceil(RECONCILE_RECORD_BYTES / READ_UNIT_BYTES) + _open_set_units(held) + held * per_lock
    rounds = math.ceil(math.ceil(held / BATCH_GET_MAX) / BATCH_GET_PARALLEL)
    seconds = FIXED_SECONDS + SECONDS_PER_QUERY_PAGE * _open_set_pages(held) + SECONDS_PER_BATCH_GET_ROUND * rounds
    seconds += SECONDS_PER_LOCK * held
    lines = math.ceil(held * stale_held)  # an incremental sweep logs the verdicts of stale locks only
    return Sweep("incremental", reads, 0, seconds, lines * VERDICT_LOG_BYTES + SWEEP_LOG_BYTES, 1)


@dataclass
class Schedule:
    """A schedule's month: its sweeps, and (one-time schedules) the Scheduler's part."""

    name: str
    sweeps: list[tuple[int, Sweep]]
    schedule_calls: float = 0.0
    """CreateSchedule and DeleteSchedule calls made by the stream function (not billed by the Scheduler)."""
    schedule_invocations: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def invocations(self) -> int:
        """The sweeper's invocations (sweeps, and the checks fired schedules run)."""
        return sum(count for count, _ in self.sweeps)

    def part(self, name: str) -> float:
        """One column (a ``Sweep`` property: ``dynamodb``, ``health``, ``lambda_cost``, ``logs``) for the month."""
        return sum(count * float(getattr(sweep, name)) for count, sweep in self.sweeps) + self.extra.get(name, 0.0)

    @property
    def scheduler(self) -> float:
        return self.schedule_invocations * PRICES["scheduler_invocation"]

    @property
    def total(self) -> float:
        parts = ("dynamodb", "health", "lambda_cost", "logs")
        return sum(self.part(name) for name in parts) + self.scheduler


def schedules(estate: Estate, *, reconcile_minutes: int, stale_share: float, stale_held: float = 0.2) -> list[Schedule]:
    """The four schedules of the module's docstring, for one estate."""
    full_every = MINUTES // reconcile_minutes
    full = full_sweep(estate, audit=True)
    fired = estate.acquisitions * stale_share * 2  # each stale lock: a schedule at warn_after, another at reap_after
    calls = estate.acquisitions * 2  # one CreateSchedule at the acquisition, one DeleteSchedule at the release
    check = Sweep("scheduled check", 1, 0, SCHEDULED_CHECK_SECONDS, SCHEDULED_CHECK_LOG_BYTES, 0)
    stream_seconds = calls * SCHEDULE_CALL_SECONDS
    return [
        Schedule("today: full, rate(5 minutes)", [(MINUTES // 5, full_sweep(estate, audit=False))]),
        Schedule("today: full, rate(1 minute)", [(MINUTES, full_sweep(estate, audit=False))]),
        Schedule(
            f"incremental rate(1 minute) + full every {reconcile_minutes} min",
            [(MINUTES - full_every, incremental_sweep(estate, stale_held)), (full_every, full)],
        ),
        Schedule(
            f"Scheduler one-time per lock + full every {reconcile_minutes} min",
            [(full_every, full), (round(fired), check)],
            schedule_calls=calls,
            schedule_invocations=fired,
            extra={"lambda_cost": stream_seconds * MEMORY_GB * PRICES["lambda_gb_second"]},
        ),
    ]


def audit_writes(estate: Estate) -> float:
    """The audit's write units a month, the same with every schedule."""
    return estate.acquisitions * WRITE_UNITS_PER_ACQUISITION


def print_estate(estate: Estate, rows: Sequence[Schedule]) -> None:
    inc, full = incremental_sweep(estate), full_sweep(estate, audit=True)
    print(
        f"\n{estate.states:,} states, {estate.held:,} held; {estate.acquisitions:,.0f} acquisitions a month; "
        f"per sweep: incremental {inc.read_units:,.1f} RRU ({math.ceil(estate.held / BATCH_GET_MAX):,} BatchGetItem), "
        f"full {full.read_units:,.1f} RRU"
    )
    print(
        f"  {'schedule':<48} {'runs':>9} {'DynamoDB':>9} {'health':>7} {'Lambda':>8} {'Logs':>8} "
        f"{'Scheduler':>9} {'total':>9}"
    )
    for row in rows:
        print(
            f"  {row.name:<48} {row.invocations:>9,} {row.part('dynamodb'):>9.2f} {row.part('health'):>7.2f} "
            f"{row.part('lambda_cost'):>8.2f} {row.part('logs'):>8.2f} {row.scheduler:>9.2f} {row.total:>9.2f}"
        )
    incremental = rows[2]  # schedules() order: today (5 min), today (1 min), incremental, Scheduler
    lines = sum(count * (sweep.log_bytes - SWEEP_LOG_BYTES) for count, sweep in incremental.sweeps) / 1e9
    print(
        f"  {incremental.name}: {lines * PRICES['log_gb']:.2f} USD of its logs are the verdict lines "
        f"({VERDICT_LOG_BYTES:,} bytes each: every held lock in a full sweep, the stale ones in an incremental sweep)"
    )
    scheduler = rows[-1]
    print(
        f"  Scheduler: {scheduler.schedule_calls:,.0f} Create/DeleteSchedule calls (not billed; "
        f"{SCHEDULE_CALL_SECONDS * 1000:.0f} ms of the stream function each, in its Lambda column) and "
        f"{scheduler.schedule_invocations:,.0f} invocations (billed)"
    )
    writes = audit_writes(estate)
    print(
        f"  common to every schedule: the audit's {writes:,.0f} write units "
        f"({writes * PRICES['write_unit']:.2f} USD a month)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Monthly cost of the sweeper, per schedule, for estates of some sizes."
    )
    parser.add_argument("--states", type=int, nargs="+", default=[1_000, 50_000, 1_000_000])
    parser.add_argument("--held", type=float, default=0.01, help="share of states locked at any moment (0.01)")
    parser.add_argument("--hold-minutes", type=float, default=5.0, help="mean time a lock is held (5)")
    parser.add_argument("--reconcile-minutes", type=int, default=60, help="ReconcileEveryMinutes (60)")
    parser.add_argument(
        "--stale-share", type=float, default=0.02, help="share of acquisitions held past warn_after (0.02)"
    )
    parser.add_argument(
        "--stale-held",
        type=float,
        default=0.2,
        help="share of the held locks past warn_after at a moment: their verdicts are logged every sweep (0.2)",
    )
    args = parser.parse_args(argv)
    print(
        f"USD per month ({DAYS} days), us-east-1 on-demand prices, no free tiers; {args.held:.1%} of states locked "
        f"at any moment, {args.hold_minutes:g} min per lock on average; {args.stale_share:.0%} of locks held past "
        "warn_after (Scheduler: two schedules fire for each)"
    )
    for states in args.states:
        estate = Estate(states, args.held, args.hold_minutes)
        rows = schedules(
            estate, reconcile_minutes=args.reconcile_minutes, stale_share=args.stale_share, stale_held=args.stale_held
        )
        print_estate(estate, rows)
    fixed = METRICS * PRICES["metric"] + ALARMS * PRICES["alarm"] + PRICES["dashboard"]
    print(
        f"\nfixed, whatever the estate: {METRICS} custom metrics, {ALARMS} alarms and the dashboard: "
        f"{fixed:.2f} USD per month"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
