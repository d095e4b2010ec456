"""The sweeper's monthly AWS cost for an estate, from the requests one sweep makes (as `make bench` counts them).

Per sweep, for S states of which H locks are held (each held lock assumed NEW at every sweep: runs shorter than
the schedule's interval, the upper bound):

* lock table Scan, strongly consistent: 1 read unit per 4 KB of the table (S digest items + H lock items);
* state table, steady part: one Query page per bucket on the open-locks index (eventually consistent: half a read
  unit per 4 KB of the H observations);
* state table, per new lock: one consistent BatchGetItem read (1 unit), one UpdateItem (1 write unit) and its copy
  into the index (1 write unit), and its removal from the index when the release is recorded (1 write unit);
* Lambda: one invocation of the measured duration at 256 MB (arm64);
* CloudWatch Logs: one ``lock verdict`` line per held lock, plus the sweep's summary and EMF lines.

Prices: us-east-1 on-demand list prices, edit ``PRICES`` for another region. Fixed costs that do not grow with the
estate (custom metrics, alarms, the dashboard) are printed apart.

Run as `.venv/bin/python scripts/cost_estimate.py [--states 1000 50000] [--held 0.01] [--interval-minutes 5]`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass

PRICES = {
    "read_unit": 0.125 / 1e6,  # DynamoDB on-demand, per read request unit
    "write_unit": 0.625 / 1e6,  # per write request unit
    "lambda_gb_second": 0.0000133334,  # arm64
    "lambda_request": 0.20 / 1e6,
    "log_gb": 0.50,  # CloudWatch Logs ingestion
    "metric": 0.30,  # custom metric per month (first 10,000)
    "alarm": 0.10,  # standard-resolution alarm per month
    "dashboard": 3.00,  # per dashboard per month (the first 3 of an account are free)
}
DIGEST_ITEM_BYTES = 110  # "<bucket>/<key>-md5" + a 32-character Digest
LOCK_ITEM_BYTES = 270  # LockID + Info JSON (ID, Operation, Who, Version, Created, Path)
OBSERVATION_BYTES = 200  # the index's projection of one observation
VERDICT_LOG_BYTES = 1_500  # one "lock verdict" JSON line
SWEEP_LOG_BYTES = 4_000  # "sweep complete", the EMF metrics line, Lambda's START/END/REPORT
MEMORY_GB = 0.25
METRICS = 23  # about: the sweeper's 15 EMF metrics, the stream function's (LockHoldSeconds per operation), ColdStart
ALARMS = 6
DAYS = 30


@dataclass(frozen=True)
class Estimate:
    states: int
    held: int
    sweeps: int
    read_units: float
    write_units: float
    lambda_seconds: float

    @property
    def dynamodb(self) -> float:
        return self.sweeps * (self.read_units * PRICES["read_unit"] + self.write_units * PRICES["write_unit"])

    @property
    def lambda_cost(self) -> float:
        per_sweep = self.lambda_seconds * MEMORY_GB * PRICES["lambda_gb_second"] + PRICES["lambda_request"]
        return self.sweeps * per_sweep

    @property
    def logs(self) -> float:
        return self.sweeps * (self.held * VERDICT_LOG_BYTES + SWEEP_LOG_BYTES) / 1e9 * PRICES["log_gb"]

    @property
    def total(self) -> float:
        return self.dynamodb + self.lambda_cost + self.logs


def estimate(states: int, held_share: float, interval_minutes: float, seconds_per_10k_items: float) -> Estimate:
    held = max(1, round(states * held_share))
    table_bytes = states * DIGEST_ITEM_BYTES + held * LOCK_ITEM_BYTES
    scan_units = math.ceil(table_bytes / 4096)
    index_units = max(0.5, held * OBSERVATION_BYTES / 4096 / 2)
    reads = scan_units + index_units + held
    writes = 3 * held
    seconds = 0.3 + seconds_per_10k_items * (states + held) / 10_000
    sweeps = int(DAYS * 24 * 60 / interval_minutes)
    return Estimate(states, held, sweeps, reads, writes, seconds)


def main() -> int:
    parser = argparse.ArgumentParser(description="Monthly cost of the sweeper for estates of some sizes.")
    parser.add_argument("--states", type=int, nargs="+", default=[1_000, 50_000])
    parser.add_argument("--held", type=float, default=0.01, help="share of states locked at any sweep (0.01)")
    parser.add_argument("--interval-minutes", type=float, default=5.0, help="the sweep schedule (5)")
    parser.add_argument(
        "--seconds-per-10k-items", type=float, default=1.0, help="sweep time per 10,000 items in Lambda (1.0)"
    )
    args = parser.parse_args()
    rows = [estimate(s, args.held, args.interval_minutes, args.seconds_per_10k_items) for s in args.states]
    print(
        f"sweep every {args.interval_minutes:g} min ({rows[0].sweeps} sweeps in {DAYS} days); "
        f"{args.held:.1%} of states locked at a sweep, every one new (upper bound)"
    )
    print(
        f"{'states':>8} {'held':>6} {'RRU/sweep':>10} {'WRU/sweep':>10} {'DynamoDB':>9} {'Lambda':>8} "
        f"{'Logs':>8} {'total':>8}  (USD per month)"
    )
    for row in rows:
        print(
            f"{row.states:>8,} {row.held:>6,} {row.read_units:>10,.1f} {row.write_units:>10,.0f} "
            f"{row.dynamodb:>9.2f} {row.lambda_cost:>8.2f} {row.logs:>8.2f} {row.total:>8.2f}"
        )
    fixed = METRICS * PRICES["metric"] + ALARMS * PRICES["alarm"] + PRICES["dashboard"]
    print(
        f"fixed, whatever the estate: {METRICS} custom metrics, {ALARMS} alarms and the dashboard: "
        f"{fixed:.2f} USD per month"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
