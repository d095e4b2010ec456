"""Benchmark (not a test): one dry-run sweep of a large lock table, its time and its DynamoDB requests.

On a moto server on 127.0.0.1 (`tflab.MotoServer`, HTTP on loopback), a lock table is filled with N locks and
N ``-md5`` digest items (``batch_write_item``). Then, in the same run, best of several runs each:

* the baseline: a bare paginated boto3 ``Scan`` of the table (``ConsistentRead``): its time and its pages, the
  minimum number of requests any sweep must make;
* a dry-run ``sweep()`` with a ``MemoryStateStore`` (the CLI's store: no state-table requests at all);
* a dry-run ``sweep()`` with a real ``StateTable`` on the same server: its first sweep (every lock recorded
  as first seen, every stale one as warned) on a fresh state table, then a second sweep (steady state).

Lock ages are spread evenly from one minute to four hours (a fixed clock), so that the default policy
(warn after 30m, reap after 2h, no holder check: ``unknown``) gives a mix of ok, warned and would-reap locks.

DynamoDB requests are counted by operation on the client given to `LockTable`/`StateTable` and used for the
scan, through botocore's event system (``before-call.dynamodb``).

Run as `PYTHONPATH=tests .venv/bin/python scripts/bench_sweep.py [--locks 10000]` (the test lab and the table
helpers come from `tests/`).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from offline_env import use_offline_aws

REGION = "us-east-1"
BUCKET = "tf-state"
NOW = datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC)
"""The sweep's (fixed) clock: lock ages do not drift while the benchmark runs."""
MAX_AGE = timedelta(hours=4)
BATCH_WRITE_MAX = 25


# -- counting DynamoDB requests ---------------------------------------------------------------------------


@dataclass
class CallCounter:
    calls: Counter[str] = field(default_factory=Counter)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb", self._before)

    def _before(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1

    def reset(self) -> None:
        self.calls.clear()

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    calls: Counter[str]
    summary: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"[phase] {name}: {time.perf_counter() - started:.1f} s", flush=True)


# -- the table ---------------------------------------------------------------------------------------------


def _items(locks: int) -> Iterator[dict[str, Any]]:
    from factories import digest_item, go_time, lock_item  # noqa: PLC0415 - tests/ is on PYTHONPATH

    step = (MAX_AGE - timedelta(minutes=1)) / max(1, locks - 1)
    for n in range(locks):
        path = f"{BUCKET}/env:/ws{n % 7}/team-{n // 7:05d}/terraform.tfstate"
        created = NOW - timedelta(minutes=1) - step * n
        yield lock_item(path, created=go_time(created), lock_id=str(uuid.UUID(int=n + 1)), who=f"runner@ci-{n % 97}")
        yield digest_item(path)


def fill_lock_table(client: Any, table: str, locks: int) -> int:
    """N locks and N digests, 25 to a ``batch_write_item``, retrying unprocessed items. Returns the requests."""
    requests = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal requests
        pending: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        while pending:
            requests += 1
            pending = dict(client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {})
        batch.clear()

    for item in _items(locks):
        batch.append(item)
        if len(batch) == BATCH_WRITE_MAX:
            flush()
    if batch:
        flush()
    return requests


def create_table(client: Any, create: Callable[[Any, str], None], name: str) -> None:
    create(client, name)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


# -- runs --------------------------------------------------------------------------------------------------


def run_scan(client: Any, table: str, counter: CallCounter) -> tuple[Run, int, int]:
    """The baseline: a bare paginated, strongly consistent Scan. Returns the run, its pages and its items."""
    counter.reset()
    pages = items = 0
    started = time.perf_counter()
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        pages += 1
        items += len(page.get("Items", []))
    seconds = time.perf_counter() - started
    return Run("bare Scan", seconds, Counter(counter.calls)), pages, items


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item of string attributes: the names' and the values' UTF-8 lengths."""
    return sum(len(name.encode()) + len(str(next(iter(value.values()))).encode()) for name, value in item.items())


def table_bytes(client: Any, table: str) -> int:
    """The table's size, as DynamoDB reports it in ``TableSizeBytes`` (moto reports 0: computed here)."""
    return sum(
        item_bytes(item)
        for page in client.get_paginator("scan").paginate(TableName=table)
        for item in page.get("Items", [])
    )


def run_index_query(client: Any, table: str, counter: CallCounter) -> Run:
    """A second baseline: a bare paginated Query of the state table's open-locks index for the bucket, the
    same pages a steady sweep reads (its cost on moto is moto's: it filters and sorts the whole table per page)."""
    counter.reset()
    started = time.perf_counter()
    for _ in client.get_paginator("query").paginate(
        TableName=table,
        IndexName="open-locks",
        KeyConditionExpression="open_bucket = :b",
        ExpressionAttributeValues={":b": {"S": BUCKET}},
    ):
        pass
    return Run("bare Query of the open-locks index", time.perf_counter() - started, Counter(counter.calls))


def choose_segments(client: Any, table: str) -> int:
    """The segments the sweeper would choose from DynamoDB's TableSizeBytes (which moto leaves at 0)."""
    from tflock_reaper.adapters.lock_table import segments_for  # noqa: PLC0415 - after the environment is set

    size = table_bytes(client, table)
    segments = segments_for(size)
    print(f"        table size {size / 2**20:.1f} MiB: {segments} parallel Scan segments (as the sweeper chooses)")
    return segments


def run_sweep(label: str, client: Any, table: str, state: Any, counter: CallCounter, *, segments: int | None) -> Run:
    from tflock_reaper.adapters.lock_table import LockTable  # noqa: PLC0415 - after the environment is set
    from tflock_reaper.domain.policy import Policy  # noqa: PLC0415
    from tflock_reaper.services.sweep import sweep  # noqa: PLC0415

    policy = Policy()  # defaults: dry-run, warn after 30m, reap after 2h, holder unknown, no channels
    counter.reset()
    started = time.perf_counter()
    source = LockTable(client, table, segments=segments)
    report = sweep(lock_table=source, state=state, policy=policy, mode="dry-run", clock=lambda: NOW)
    seconds = time.perf_counter() - started
    return Run(label, seconds, Counter(counter.calls), report.summary())


# -- the report --------------------------------------------------------------------------------------------


def print_sweep(run: Run, scan: Run, pages: int) -> None:
    per_op = ", ".join(f"{op} {n}" for op, n in sorted(run.calls.items())) or "none"
    outcomes = ", ".join(f"{k} {v}" for k, v in run.summary.items() if v)
    print(f"  {run.label}:")
    print(f"    time               {run.seconds:.3f} s  ({run.seconds / scan.seconds:.2f}x the bare Scan)")
    print(f"    requests           {run.total}  ({run.total / pages:.2f}x the Scan pages)")
    print(f"    per operation      {per_op}")
    print(f"    summary            {outcomes}")


TIME_TARGET = 1.5


def print_targets(steady: Run, first: Run, scan: Run, pages: int, query: Run) -> None:
    """The issue's targets against the Lambda's sweep (state table, steady state)."""
    ratio = steady.seconds / scan.seconds
    verdict = "holds" if ratio <= TIME_TARGET else "MISSED"
    print("\ntargets (the Lambda's dry-run sweep, steady state):")
    print(f"  time      <= {TIME_TARGET}x the bare Scan: {ratio:.2f}x  {verdict}")
    both = scan.seconds + query.seconds
    print(f"            against the bare Scan + the bare index Query ({both:.3f} s): {steady.seconds / both:.2f}x")
    allowed = pages + steady.calls["DeleteItem"] + steady.calls["UpdateItem"]
    extra = steady.total - allowed
    print(
        f"  requests  <= Scan pages + deletes + state writes = {allowed}: {steady.total} "
        f"({'holds' if extra <= 0 else f'{extra} over: ' + _over(steady)})"
    )
    print(
        f"  first sweep: {first.calls['UpdateItem']} state writes for {first.summary.get('locks', 0)} new locks "
        f"(one each), {first.seconds / scan.seconds:.2f}x the bare Scan"
    )


def _over(run: Run) -> str:
    parts = [f"{run.calls[op]} {op}" for op in ("Query", "BatchGetItem", "DescribeTable") if run.calls[op]]
    return ", ".join(parts) + " (the state reads)"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark one dry-run sweep of a large lock table.")
    parser.add_argument("--locks", type=int, default=10_000, help="locks (and as many digests) in the table")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the best is reported")
    parser.add_argument(
        "--first-runs",
        type=int,
        default=1,
        help="first sweeps, each on a fresh state table (default 1: one UpdateItem per lock, minutes at 10,000)",
    )
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    first_runs = max(1, args.first_runs)
    use_offline_aws(REGION)
    try:
        from tables import create_lock_table, create_state_table  # noqa: PLC0415
        from tflab import MotoServer  # noqa: PLC0415
    except ImportError:
        sys.exit("needs the test lab and table helpers on the path: PYTHONPATH=tests")
    from tflock_reaper.adapters.memory import MemoryStateStore  # noqa: PLC0415
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415

    overall = time.perf_counter()
    with MotoServer() as server:
        client = server.client("dynamodb")
        counter = CallCounter()
        counter.attach(client)
        lock_table = "tf-locks-bench"
        print(f"moto server {server.endpoint} (HTTP on loopback); {args.locks} locks + {args.locks} digests")
        with phase(f"fill the lock table ({2 * args.locks} items)"):
            create_table(client, create_lock_table, lock_table)
            writes = fill_lock_table(client, lock_table, args.locks)
        print(f"        {writes} batch_write_item requests")

        segments = choose_segments(client, lock_table)

        with phase(f"bare Scan x{args.runs}"):
            scans = [run_scan(client, lock_table, counter) for _ in range(args.runs)]
        scan, pages, items = min(scans, key=lambda s: s[0].seconds)

        with phase(f"dry-run sweep, MemoryStateStore x{args.runs}"):
            memory = [
                run_sweep(
                    "MemoryStateStore (the CLI)", client, lock_table, MemoryStateStore(), counter, segments=segments
                )
                for _ in range(args.runs)
            ]

        first: list[Run] = []
        steady: list[Run] = []
        with phase(f"dry-run sweep, StateTable: first sweep x{first_runs} (a fresh state table each)"):
            tables: list[str] = []
            for _ in range(first_runs):
                name = f"tflock-reaper-state-{uuid.uuid4().hex[:8]}"
                create_table(client, create_state_table, name)
                tables.append(name)
                first.append(
                    run_sweep(
                        "StateTable, first sweep",
                        client,
                        lock_table,
                        StateTable(client, name),
                        counter,
                        segments=segments,
                    )
                )
        with phase(f"dry-run sweep, StateTable: steady state x{args.runs}"):
            store = StateTable(client, tables[-1])
            steady = [
                run_sweep(
                    "StateTable, steady state (the Lambda)", client, lock_table, store, counter, segments=segments
                )
                for _ in range(args.runs)
            ]
        with phase(f"bare Query of the open-locks index x{args.runs}"):
            query = best([run_index_query(client, tables[-1], counter) for _ in range(args.runs)])

    print(f"\nlocks                {args.locks} (+ {args.locks} digests: {items} items scanned)")
    print(f"bare Scan            {scan.seconds:.3f} s, {pages} pages (best of {args.runs})")
    print(f"bare index Query     {query.seconds:.3f} s, {query.total} pages (best of {args.runs})")
    print("sweeps (dry run, default policy, no channels; best of each):")
    for run in (best(memory), best(first), best(steady)):
        print_sweep(run, scan, pages)
    print_targets(best(steady), best(first), scan, pages, query)
    print(f"\ntotal {time.perf_counter() - overall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
