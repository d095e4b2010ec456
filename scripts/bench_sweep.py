"""Benchmark (not a test): what a sweep costs in time, DynamoDB requests and read units, full and incremental.

Against two independent DynamoDB implementations in the same run: the moto server (`tflab.MotoServer`) and dynalite
(npm, `make dynalite`, started by `tests/dynalite_server.py`; skipped with a note when Node or dynalite is missing).
On each, two estate shapes:

* 50,000 states, 500 held: 50,000 ``-md5`` digest items and 500 lock items;
* 10,000 states, every one held: 10,000 digests and 10,000 locks.

The open set (the state table's ``held-locks`` index) holds exactly the locks of the table, written as the stream
function records an acquisition (`StateTable.record_acquired`) and a sweep completes it (first seen; warned once
stale), 25 to a ``batch_write_item``: a first sweep would write the same, but with one ``UpdateItem`` per lock (minutes
for 10,000 on moto). A warm-up full sweep then shows that nothing is left to write but the reconciliation record,
and makes the later sweeps see a warm process (cached table sizes). Then, interleaved, best of several runs each:

* the baseline: a bare paginated, strongly consistent ``Scan`` of the lock table;
* a second baseline: a bare paginated Query of the open set (every sweep reads it before the locks);
* a full sweep (the hourly reconciliation: its reconciler's ``reconcile_every`` is 0, so one is always due):
  DescribeTable, the reconciliation record, the open set's Query, a parallel Scan, the record written;
* an incremental sweep (the audit is healthy and the last full sweep was just now): DescribeTable (the stream
  check), one GetItem of the reconciliation record, the open set's Query, then ``ceil(held / 100)`` consistent
  BatchGetItem of the lock table.

Each dry run uses the default policy (warn after 30m, reap after 2h, holder ``unknown``), no alert channels and a
fixed clock, lock ages spread from one minute to four hours. Requests are counted per table and operation with
botocore's events on the client; read units are computed from DynamoDB's documented formula (`read_units.py`) on
the responses, after each timed run: moto computes none, and neither emulator bills as DynamoDB does.

Run as `PYTHONPATH=tests .venv/bin/python scripts/bench_sweep.py [--quick] [--runs 3] [--only moto] [--profile]`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import pstats
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import read_units
from offline_env import use_offline_aws

if TYPE_CHECKING:
    from tflock_reaper.domain.reconcile import AuditHealth

REGION = "us-east-1"
BUCKET = "tf-state"
NOW = datetime(2026, 11, 26, 18, 0, 0, tzinfo=UTC)
"""The sweeps' (fixed) clock: lock ages do not drift while the benchmark runs."""
MAX_AGE = timedelta(hours=4)
WARN_AFTER = timedelta(minutes=30)
BATCH_WRITE_MAX = 25
FILL_THREADS = 4
BATCH_GET_MAX = 100
DEPLOYMENT = "bench"

#: The targets of issue 16, as ratios to the bare Scan of the same implementation and run.
INCREMENTAL_UNITS_TARGET = 0.2
FULL_TIME_TARGET = 1.3


@dataclass(frozen=True)
class Shape:
    states: int
    held: int

    @property
    def label(self) -> str:
        held = "every one held" if self.held == self.states else f"{self.held:,} held"
        return f"{self.states:,} states, {held}"


SHAPES = (Shape(50_000, 500), Shape(10_000, 10_000))
QUICK_DIVISOR = 5


# -- counting requests and read units ----------------------------------------------------------------------


@dataclass
class Meter:
    """Requests per (table role, operation) and read units per table role, from botocore's events on a client. The
    responses are kept and their read units computed by :meth:`read_units`, after the timed run: sizing every item
    read would otherwise be timed with it."""

    roles: dict[str, str] = field(default_factory=dict)
    """Table name -> the role printed ("lock", "state")."""
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    _responses: list[tuple[str, dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._params)
        client.meta.events.register("after-call.dynamodb", self._after)

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        # The API parameters (consistency, keys asked for), kept for after-call in the request's own context.
        context["bench_params"] = dict(params)

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        operation = str(model.name)
        params = context.get("bench_params", {})
        tables = list(params.get("RequestItems", {})) or [params.get("TableName", "?")]
        with self._lock:
            for table in tables:
                self.requests[(self.roles.get(table, table), operation)] += 1
            if operation in read_units.READ_OPERATIONS:
                self._responses.append((operation, params, parsed))

    def read_units(self) -> dict[str, float]:
        """The read units of the requests since :meth:`reset`, per table role."""
        units: dict[str, float] = {}
        for operation, params, parsed in self._responses:
            for table, consumed in read_units.consumed(operation, params, parsed).items():
                role = self.roles.get(table, table)
                units[role] = units.get(role, 0.0) + consumed
        return units

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._responses.clear()


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    requests: Counter[tuple[str, str]]
    units: dict[str, float]
    kind: str = ""
    reason: str = ""
    summary: dict[str, int] = field(default_factory=dict)
    listed: int | None = None
    """Entries of the open set the sweep read (an incremental read asks the lock table for these)."""

    @property
    def read_units(self) -> float:
        return sum(self.units.values())

    def count(self, role: str, operation: str) -> int:
        return self.requests[(role, operation)]

    def listing(self, role: str) -> str:
        ops = sorted((op, n) for (r, op), n in self.requests.items() if r == role)
        return ", ".join(f"{op} {n}" for op, n in ops) or "none"


def best(runs: Sequence[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    print(f"  [phase] {name}: {time.perf_counter() - started:.1f} s", flush=True)


# -- the estate --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldLock:
    path: str
    lock_id: str
    created: datetime
    who: str


def state_path(n: int) -> str:
    return f"{BUCKET}/env:/ws{n % 7}/team-{n // 7:05d}/terraform.tfstate"


def held_locks(shape: Shape) -> list[HeldLock]:
    """Every (states / held)-th state is locked; lock ages spread evenly from one minute to four hours."""
    every = max(1, shape.states // shape.held)
    step = (MAX_AGE - timedelta(minutes=1)) / max(1, shape.held - 1)
    return [
        HeldLock(
            state_path(n * every), str(uuid.UUID(int=n + 1)), NOW - timedelta(minutes=1) - step * n, f"ci-{n % 97}"
        )
        for n in range(shape.held)
    ]


def lock_table_items(shape: Shape, locks: Sequence[HeldLock]) -> Iterator[dict[str, Any]]:
    from factories import digest_item, go_time, lock_item  # noqa: PLC0415 - tests/ is on PYTHONPATH

    for n in range(shape.states):
        yield digest_item(state_path(n))
    for lock in locks:
        yield lock_item(lock.path, created=go_time(lock.created), lock_id=lock.lock_id, who=f"runner@{lock.who}")


def open_set_items(locks: Sequence[HeldLock], scope: str, table: str) -> Iterator[dict[str, Any]]:
    """The state table's record of each held lock as the stream function writes it on acquisition
    (`StateTable.record_acquired`) and a sweep completes it (first seen; warned once stale): in the open set."""
    from tflock_reaper.adapters.state_table import HELD_KEY, OBSERVATION_TTL, digest, state_pk  # noqa: PLC0415

    for n, lock in enumerate(locks):
        item = {
            "pk": {"S": state_pk(scope, lock.path)},
            "sk": {"S": f"ID#{digest(lock.lock_id)}"},
            HELD_KEY: {"S": scope},
            "lock_scope": {"S": scope},
            "lock_path": {"S": lock.path},
            "lock_id": {"S": lock.lock_id},
            "lock_table": {"S": table},
            "who": {"S": f"runner@{lock.who}"},
            "operation": {"S": "OperationTypeApply"},
            "acquired_at": {"S": lock.created.isoformat()},
            "acquired_seq": {"S": f"{n + 1:021d}"},
            "first_seen": {"S": lock.created.isoformat()},
            "expires_at": {"N": str(int((NOW + OBSERVATION_TTL).timestamp()))},
        }
        if lock.created + WARN_AFTER <= NOW:
            item["warned_at"] = {"S": (lock.created + WARN_AFTER).isoformat()}
        yield item


def batch_write(client: Any, table: str, items: Iterator[dict[str, Any]]) -> int:
    """``items`` 25 to a ``batch_write_item``, several requests at a time, retrying unprocessed items. Returns the
    requests made."""
    batches: list[list[dict[str, Any]]] = [[]]
    for item in items:
        if len(batches[-1]) == BATCH_WRITE_MAX:
            batches.append([])
        batches[-1].append({"PutRequest": {"Item": item}})

    def write(batch: list[dict[str, Any]]) -> int:
        requests = 0
        pending: dict[str, Any] = {table: batch}
        while pending:
            requests += 1
            pending = dict(client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {})
        return requests

    with ThreadPoolExecutor(max_workers=FILL_THREADS, thread_name_prefix="fill") as pool:
        return sum(pool.map(write, [b for b in batches if b]))


# -- the runs ----------------------------------------------------------------------------------------------


class HealthyAudit:
    """The audit's health as a healthy deployment reports it (the stream ARN is not checked: dynalite has no
    streams)."""

    def health(self, stream_arn: str | None) -> AuditHealth:
        from tflock_reaper.domain.reconcile import AuditHealth  # noqa: PLC0415

        del stream_arn
        return AuditHealth(consumer=True, failed_records=0, iterator_age=None)

    def lockfile_health(self, buckets: Sequence[str]) -> AuditHealth:
        from tflock_reaper.domain.reconcile import AuditHealth  # noqa: PLC0415

        del buckets
        return AuditHealth(consumer=True, failed_records=0, iterator_age=None)


@dataclass
class Estate:
    """One shape on one implementation: its tables and its client."""

    client: Any
    meter: Meter
    shape: Shape
    lock_table: str
    state_table: str
    scope: str
    segments: int
    table_bytes: int


def run_scan(estate: Estate) -> Run:
    """The baseline: a bare paginated, strongly consistent Scan of the lock table."""
    estate.meter.reset()
    started = time.perf_counter()
    for _ in estate.client.get_paginator("scan").paginate(TableName=estate.lock_table, ConsistentRead=True):
        pass
    seconds = time.perf_counter() - started
    return Run("bare Scan", seconds, Counter(estate.meter.requests), estate.meter.read_units())


def run_open_set_query(estate: Estate) -> Run:
    """A second baseline: a bare paginated Query of the open set (the held-locks index), which every sweep reads
    before the locks (a full sweep too: the entries it then does not find were released)."""
    from tflock_reaper.adapters.state_table import HELD_INDEX, HELD_KEY  # noqa: PLC0415

    estate.meter.reset()
    started = time.perf_counter()
    for _ in estate.client.get_paginator("query").paginate(
        TableName=estate.state_table,
        IndexName=HELD_INDEX,
        KeyConditionExpression=f"{HELD_KEY} = :scope",
        ExpressionAttributeValues={":scope": {"S": estate.scope}},
    ):
        pass
    seconds = time.perf_counter() - started
    return Run("open-set Query", seconds, Counter(estate.meter.requests), estate.meter.read_units())


def run_sweep(estate: Estate, label: str, *, reconcile_every: timedelta | None) -> Run:
    """One dry-run sweep as the Lambda makes it (new adapters, a warm process's caches). ``reconcile_every`` 0: the
    reconciliation is due (a full sweep); None: the default (an hour; the last full sweep was now: incremental)."""
    from tflock_reaper.adapters.lock_table import LockTable  # noqa: PLC0415 - after the environment is set
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
    from tflock_reaper.domain.policy import Policy  # noqa: PLC0415
    from tflock_reaper.services.reconcile import Reconciler  # noqa: PLC0415
    from tflock_reaper.services.sweep import sweep  # noqa: PLC0415

    estate.meter.reset()
    started = time.perf_counter()
    state = StateTable(estate.client, estate.state_table)
    reconciler = Reconciler(store=state, probe=HealthyAudit(), deployment=DEPLOYMENT)
    if reconcile_every is not None:
        reconciler.reconcile_every = reconcile_every

    class PublishedSize(LockTable):
        """The size DynamoDB would publish as TableSizeBytes (moto and dynalite report 0): measured at the fill. The
        read plan compares it with the open set (a Scan may be cheaper), as the sweeper does against DynamoDB."""

        def size_bytes(self) -> int:
            return estate.table_bytes

    report = sweep(
        lock_table=PublishedSize(estate.client, estate.lock_table, segments=estate.segments),
        state=state,
        reconciler=reconciler,
        policy=Policy(),
        mode="dry-run",
        clock=lambda: NOW,
    )
    seconds = time.perf_counter() - started
    read = report.reads[0]
    return Run(
        label,
        seconds,
        Counter(estate.meter.requests),
        estate.meter.read_units(),
        kind=read.kind.value,
        listed=read.held,
        reason=read.reason,
        summary=report.summary(),
    )


def run_full(estate: Estate) -> Run:
    return run_sweep(estate, "full sweep", reconcile_every=timedelta(0))


def run_incremental(estate: Estate) -> Run:
    return run_sweep(estate, "incremental sweep", reconcile_every=None)


def profile_full(estate: Estate, top: int = 25) -> None:
    """Where a full sweep's time goes (cumulative), printed after its figures."""
    profiler = cProfile.Profile()
    profiler.enable()
    run = run_full(estate)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats("tflock_reaper", top)
    print(f"  profile of one full sweep ({run.seconds:.3f} s under the profiler), tflock_reaper by cumulative time:")
    for line in out.getvalue().splitlines():
        if line.strip():
            print(f"    {line}")


# -- one implementation ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Implementation:
    name: str
    start: Callable[[], AbstractContextManager[tuple[Any, str]]]


@contextmanager
def moto() -> Iterator[tuple[Any, str]]:
    from tflab import MotoServer  # noqa: PLC0415 - tests/ is on PYTHONPATH

    with MotoServer() as server:
        yield server.client("dynamodb"), f"moto server {server.endpoint}"


@contextmanager
def dynalite() -> Iterator[tuple[Any, str]]:
    import boto3  # noqa: PLC0415
    from botocore.config import Config  # noqa: PLC0415
    from dynalite_server import start_dynalite  # noqa: PLC0415 - tests/ is on PYTHONPATH

    server = start_dynalite()
    try:
        client = boto3.client(
            "dynamodb",
            endpoint_url=server.endpoint,
            region_name=REGION,
            config=Config(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )
        yield client, f"dynalite {server.endpoint}"
    finally:
        server.stop()


def build_estate(client: Any, meter: Meter, shape: Shape) -> Estate:
    from tables import create_lock_table, create_state_table  # noqa: PLC0415
    from tflock_reaper.adapters.lock_table import segments_for  # noqa: PLC0415

    # Fixed names (so fixed ARNs and keys): each run of the benchmark reads the same keys.
    tag = f"bench-{shape.states}-{shape.held}"
    lock_table, state_table = f"tf-locks-{tag}", f"tflock-reaper-state-{tag}"
    for name, create in ((lock_table, create_lock_table), (state_table, create_state_table)):
        create(client, name)
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    meter.roles.update({lock_table: "lock", state_table: "state"})
    scope = str(client.describe_table(TableName=lock_table)["Table"]["TableArn"])
    locks = held_locks(shape)
    items = 0
    with phase(f"fill: {shape.states:,} digests + {shape.held:,} locks, {shape.held:,} open-set entries"):
        writes = batch_write(client, lock_table, lock_table_items(shape, locks))
        writes += batch_write(client, state_table, open_set_items(locks, scope, lock_table))
    size = 0
    for page in client.get_paginator("scan").paginate(TableName=lock_table):
        items += len(page["Items"])
        size += sum(read_units.item_size(item) for item in page["Items"])
    segments = segments_for(size)
    print(
        f"  {items:,} items, {size / 2**20:.1f} MiB ({writes:,} batch_write_item requests): "
        f"{segments} parallel Scan segments, as the sweeper chooses from TableSizeBytes"
    )
    return Estate(client, meter, shape, lock_table, state_table, scope, segments, size)


@dataclass(frozen=True)
class Result:
    implementation: str
    shape: Shape
    scan: Run
    query: Run
    full: Run
    incremental: Run


def bench_shape(name: str, client: Any, meter: Meter, shape: Shape, runs: int, *, profile: bool) -> Result:
    print(f"\n{name}: {shape.label}")
    estate = build_estate(client, meter, shape)
    with phase("warm-up: one full sweep (records the reconciliation; a warm process's caches)"):
        warm = run_full(estate)
    writes = warm.count("state", "UpdateItem")
    print(f"    {warm.kind} ({warm.reason}); state writes {writes} (1 = the reconciliation record only)")
    scans: list[Run] = []
    queries: list[Run] = []
    fulls: list[Run] = []
    incrementals: list[Run] = []
    with phase(f"bare Scan, bare open-set Query, full sweep, incremental sweep, interleaved x{runs}"):
        for _ in range(runs):
            scans.append(run_scan(estate))
            queries.append(run_open_set_query(estate))
            fulls.append(run_full(estate))
            incrementals.append(run_incremental(estate))
    result = Result(name, shape, best(scans), best(queries), best(fulls), best(incrementals))
    print_result(result)
    if profile:
        profile_full(estate)
    for table in (estate.lock_table, estate.state_table):
        client.delete_table(TableName=table)
    return result


# -- the report --------------------------------------------------------------------------------------------


#: Why dynalite's open set misses a few entries of a large estate (an emulator defect: DynamoDB keeps them all).
DYNALITE_INDEX_NOTE = (
    "dynalite keys an index entry by its index key plus 6 hex digits of an MD5 of the table key (db/index.js "
    "hashPrefix): entries with the same held_scope collide, about n^2/2^25 of n; each full sweep then finds those "
    "locks unrecorded and writes them again (the state-table BatchGetItem and UpdateItems)"
)


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}x" if base else "n/a"


def _verdict(held: bool) -> str:
    return "PASS" if held else "over"


def print_result(r: Result) -> None:
    scan = r.scan
    print(f"  {'':<19} {'time':>9} {'x Scan':>7} {'read units':>11} {'x Scan':>7}  requests")
    for run in (r.scan, r.query, r.full, r.incremental):
        print(
            f"  {run.label:<19} {run.seconds:>7.3f} s {_ratio(run.seconds, scan.seconds):>7} "
            f"{run.read_units:>11,.1f} {_ratio(run.read_units, scan.read_units):>7}  "
            f"lock table: {run.listing('lock')}; state table: {run.listing('state')}"
        )
    for run in (r.full, r.incremental):
        print(f"    {run.label}: {run.kind} ({run.reason})")
    inc = r.incremental
    lock, state = inc.units.get("lock", 0.0), inc.units.get("state", 0.0)
    print(f"    read units by table, incremental: lock {lock:,.1f}, state {state:,.1f}")
    outcomes = ", ".join(f"{k} {v}" for k, v in r.full.summary.items() if v)
    print(f"    outcomes (both sweeps): {outcomes}")
    if inc.listed != r.shape.held:
        print(f"    open set: the index listed {inc.listed or 0:,} of the {r.shape.held:,} entries written")
        if r.implementation == "dynalite":
            print(f"      {DYNALITE_INDEX_NOTE}")
    print_targets(r)


def print_targets(r: Result) -> None:
    scan, full, inc = r.scan, r.full, r.incremental
    units = inc.read_units / scan.read_units
    print(f"  targets ({r.implementation}, {r.shape.label}):")
    print(
        f"    incremental read units <= {INCREMENTAL_UNITS_TARGET}x the bare Scan: {units:.2f}x "
        f"({inc.read_units:,.1f} / {scan.read_units:,.1f})  {_verdict(units <= INCREMENTAL_UNITS_TARGET)}"
    )
    expected = math.ceil(r.shape.held / BATCH_GET_MAX)
    reads = sum(n for (role, op), n in inc.requests.items() if role == "lock" and op != "DescribeTable")
    print(
        f"    incremental lock-table requests = ceil({r.shape.held:,}/{BATCH_GET_MAX}) = {expected} BatchGetItem: "
        f"{inc.count('lock', 'BatchGetItem')} BatchGetItem, {reads} in all  "
        f"{_verdict(reads == expected == inc.count('lock', 'BatchGetItem'))}"
    )
    print(
        f"      besides: open-set Query {inc.count('state', 'Query')} page(s), reconciliation record GetItem "
        f"{inc.count('state', 'GetItem')}, DescribeTable {inc.count('lock', 'DescribeTable')}"
    )
    ratio = full.seconds / scan.seconds
    print(
        f"    full sweep time <= {FULL_TIME_TARGET}x the bare Scan: {ratio:.2f}x "
        f"({full.seconds:.3f} s / {scan.seconds:.3f} s)  {_verdict(ratio <= FULL_TIME_TARGET)}"
    )
    own = full.seconds - scan.seconds - r.query.seconds
    per_item = own / max(1, full.summary.get("locks", 0) + full.summary.get("digests", 0)) * 1e6
    print(
        f"      = the bare Scan + the bare open-set Query ({r.query.seconds:.3f} s, read first, in sequence) "
        f"+ {own:.3f} s of the sweep's own work ({per_item:.0f} us per item read; against Scan + Query: "
        f"{full.seconds / (scan.seconds + r.query.seconds):.2f}x)"
    )


def print_summary(results: Sequence[Result], skipped: Sequence[str]) -> None:
    print("\nsummary (best of each; ratios to the bare Scan of the same implementation and run):")
    print(
        f"  {'implementation':<15} {'estate':<32} {'Scan s':>7} {'Scan RU':>8} {'full':>6} {'incr':>6} "
        f"{'incr RU':>8} {'RU x':>6} {'BGI':>5}  units<=0.2x  BGI=ceil  full<=1.3x"
    )
    for r in results:
        units = r.incremental.read_units / r.scan.read_units
        expected = math.ceil(r.shape.held / BATCH_GET_MAX)
        bgi = r.incremental.count("lock", "BatchGetItem")
        lock_reads = sum(
            n for (role, op), n in r.incremental.requests.items() if role == "lock" and op != "DescribeTable"
        )
        full = r.full.seconds / r.scan.seconds
        print(
            f"  {r.implementation:<15} {r.shape.label:<32} {r.scan.seconds:>7.3f} {r.scan.read_units:>8,.0f} "
            f"{full:>5.2f}x {r.incremental.seconds / r.scan.seconds:>5.2f}x {r.incremental.read_units:>8,.1f} "
            f"{units:>5.2f}x {bgi:>5}  {_verdict(units <= INCREMENTAL_UNITS_TARGET):<11}  "
            f"{_verdict(bgi == lock_reads == expected):<8}  {_verdict(full <= FULL_TIME_TARGET)}"
        )
    for note in skipped:
        print(f"  {note}")


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark full and incremental sweeps on moto and dynalite.")
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement; the best is reported (3)")
    parser.add_argument(
        "--quick", action="store_true", help=f"estates {QUICK_DIVISOR}x smaller and 2 runs (a smoke test)"
    )
    parser.add_argument("--only", choices=("moto", "dynalite"), help="one implementation only")
    parser.add_argument("--profile", action="store_true", help="profile one full sweep of each estate (cProfile)")
    return parser.parse_args()


def main() -> int:
    args = _arguments()
    use_offline_aws(REGION)
    try:
        import tables  # noqa: F401, PLC0415
        import tflab  # noqa: F401, PLC0415
    except ImportError:
        sys.exit("needs the test lab and table helpers on the path: PYTHONPATH=tests")
    from dynalite_server import DynaliteMissingError  # noqa: PLC0415

    runs = 2 if args.quick else max(1, args.runs)
    divisor = QUICK_DIVISOR if args.quick else 1
    shapes = [Shape(s.states // divisor, s.held // divisor) for s in SHAPES]
    implementations = [Implementation("moto", moto), Implementation("dynalite", dynalite)]
    overall = time.perf_counter()
    results: list[Result] = []
    skipped: list[str] = []
    for implementation in implementations:
        if args.only and implementation.name != args.only:
            continue
        try:
            with implementation.start() as (client, where):
                print(f"\n== {implementation.name}: {where} (HTTP on loopback); best of {runs} runs each ==")
                meter = Meter()
                meter.attach(client)
                results += [
                    bench_shape(implementation.name, client, meter, shape, runs, profile=args.profile)
                    for shape in shapes
                ]
        except DynaliteMissingError as err:
            skipped.append(f"dynalite skipped: {err}")
            print(f"\n{skipped[-1]}")
    print_summary(results, skipped)
    print(f"\ntotal {time.perf_counter() - overall:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
