"""Benchmark (not a test): what `tflock-reaper backtest` costs over 10,000 recorded acquisitions, in time, DynamoDB
requests and read units, as a ratio to a bare Query of the same records.

Against the moto server and dynalite (started here; dynalite skipped with a note when Node or it is missing), the
state table exactly as template.yaml declares it holds 10,000 acquisitions spread over 30 days, each as the stream
function leaves it once released (``StateTable.record_acquired`` then ``record_released``: the same attributes,
checked against one item written through those methods), written 25 to a ``batch_write_item``.

Then, interleaved, best of several runs each:

* the baseline: the bare paginated Queries of the ``history-by-day`` index, one per day of the window, one after
  the other, items returned and nothing else;
* the backtest, as the CLI runs it: ``StateTable.history`` (the same Queries, several at a time, parsed into
  records), the window and glob applied, then the candidate and the deployed policies replayed;
* the replay alone (both policies), on records already read.

Requests are counted per operation with botocore's events; read units from DynamoDB's documented formula
(``read_units.py``).

Run as `PYTHONPATH=tests .venv/bin/python scripts/bench_backtest.py [--acquisitions 10000] [--runs 3] [--only moto]`.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench_sweep import BATCH_WRITE_MAX, REGION, Implementation, Meter, dynalite, moto
from offline_env import use_offline_aws

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)
STATE_TABLE = "tflock-reaper-state"
#: The share of acquisitions held for a run of ten minutes on average; the rest, up to eight hours.
SHORT_RUNS = 0.85
SCOPE = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks"
CANDIDATE = "defaults: {warn_after: 20m, reap_after: 1h, min_observed: 0s, holder: {assume: gone}}\n"
DEPLOYED = (
    "defaults: {warn_after: 30m, reap_after: 2h, holder: {assume: gone}}\n"
    'rules:\n  - match: "tf-state/prod/*"\n    operations: [OperationTypeApply]\n    reap_after: 4h\n'
)


@dataclass(frozen=True)
class Run:
    label: str
    seconds: float
    requests: dict[str, int]
    units: float
    records: int


def acquisitions(count: int, seed: int = 17) -> Iterator[tuple[str, str, str, datetime, timedelta]]:
    """(path, ID, operation, acquired, hold): runs of ten minutes on average, a tail of long applies."""
    rng = random.Random(seed)  # noqa: S311 - benchmark data, not a secret
    for n in range(count):
        acquired = NOW - WINDOW + timedelta(seconds=rng.randrange(int(WINDOW.total_seconds()) - 9 * 3600))
        short = rng.random() < SHORT_RUNS
        hold = timedelta(seconds=rng.expovariate(1 / 600) if short else rng.uniform(600, 8 * 3600))
        env = rng.choice(["prod", "dev", "staging"])
        operation = rng.choice(["OperationTypeApply", "OperationTypePlan"])
        yield f"tf-state/{env}/s{n % 2000}.tfstate", f"id-{n:08d}", operation, acquired, hold


def released_item(path: str, lock_id: str, operation: str, acquired: datetime, hold: timedelta) -> dict[str, Any]:
    """The state table's item of a released acquisition, as record_acquired and record_released leave it."""
    from tflock_reaper.adapters.state_table import digest as key_digest  # noqa: PLC0415
    from tflock_reaper.adapters.state_table import history_day, state_pk  # noqa: PLC0415

    released = acquired + hold
    return {
        "pk": {"S": state_pk(SCOPE, path)},
        "sk": {"S": f"ID#{key_digest(lock_id)}"},
        "acquired_at": {"S": acquired.isoformat()},
        "acquired_seq": {"S": "1"},
        "lock_scope": {"S": SCOPE},
        "lock_path": {"S": path},
        "lock_id": {"S": lock_id},
        "lock_table": {"S": "tf-locks"},
        "who": {"S": "runner@ci-host"},
        "operation": {"S": operation},
        "history_day": {"S": history_day(acquired)},
        "released_at": {"S": released.isoformat()},
        "released_seq": {"S": "2"},
        "released_by": {"S": "terraform"},
        "expires_at": {"N": str(int((released + timedelta(days=90)).timestamp()))},
    }


def check_shape(client: Any) -> None:
    """One acquisition written through the StateTable's own methods has exactly the attributes the benchmark writes."""
    from factories import lock_item  # noqa: PLC0415 - tests/ is on PYTHONPATH
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
    from tflock_reaper.domain.lock import LockRecord, classify_item  # noqa: PLC0415

    lock = classify_item(lock_item("tf-state/shape.tfstate"), NOW, table="tf-locks", table_arn=SCOPE)
    if not isinstance(lock, LockRecord):
        raise SystemExit(f"not a lock: {lock}")
    store = StateTable(client, STATE_TABLE)
    store.record_acquired(lock, NOW - timedelta(hours=1), "1")
    store.record_released(lock, NOW, "2")
    key = released_item(lock.lock_path, lock.lock_id, "x", NOW, timedelta(0))
    written = client.get_item(TableName=STATE_TABLE, Key={"pk": key["pk"], "sk": key["sk"]})["Item"]
    client.delete_item(TableName=STATE_TABLE, Key={"pk": key["pk"], "sk": key["sk"]})
    if set(written) != set(key):
        raise SystemExit(f"the benchmark's items differ from the StateTable's: {sorted(set(written) ^ set(key))}")


def fill(client: Any, count: int) -> None:
    items = [released_item(*a) for a in acquisitions(count)]
    for start in range(0, len(items), BATCH_WRITE_MAX):
        pending = [{"PutRequest": {"Item": item}} for item in items[start : start + BATCH_WRITE_MAX]]
        while pending:
            response = client.batch_write_item(RequestItems={STATE_TABLE: pending})
            pending = response.get("UnprocessedItems", {}).get(STATE_TABLE, [])


def metered(meter: Meter, label: str, work: Any) -> Run:
    meter.reset()
    started = time.perf_counter()
    records = work()
    seconds = time.perf_counter() - started
    requests: dict[str, int] = {}
    for (_, operation), n in meter.requests.items():
        requests[operation] = requests.get(operation, 0) + n
    return Run(label, seconds, requests, sum(meter.read_units().values()), records)


def bare_query(client: Any) -> int:
    from tflock_reaper.adapters.state_table import HISTORY_INDEX, HISTORY_KEY  # noqa: PLC0415

    since = NOW - WINDOW
    count = 0
    for n in range((NOW.date() - since.date()).days + 1):
        day = (since.date() + timedelta(days=n)).isoformat()
        for page in client.get_paginator("query").paginate(
            TableName=STATE_TABLE,
            IndexName=HISTORY_INDEX,
            KeyConditionExpression=f"{HISTORY_KEY} = :day AND acquired_at BETWEEN :lo AND :hi",
            ExpressionAttributeValues={
                ":day": {"S": day},
                ":lo": {"S": since.isoformat()},
                ":hi": {"S": NOW.isoformat()},
            },
        ):
            count += len(page["Items"])
    return count


def backtest(client: Any, *, read: bool = True, records: Sequence[Any] = ()) -> int:
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
    from tflock_reaper.domain import history  # noqa: PLC0415
    from tflock_reaper.domain.policy import parse_policy  # noqa: PLC0415

    candidate, deployed = parse_policy(CANDIDATE), parse_policy(DEPLOYED)
    if read:
        records = history.select(StateTable(client, STATE_TABLE).history(NOW - WINDOW, NOW), since=NOW - WINDOW)
    results = [
        history.backtest(name, records, p, NOW) for name, p in (("candidate", candidate), ("deployed", deployed))
    ]
    if not read:
        return sum(len(r.reaps) for r in results)
    return len(records)


def bench(impl: Implementation, count: int, runs: int) -> list[Run] | None:
    from tables import create_state_table  # noqa: PLC0415 - tests/ is on PYTHONPATH
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415

    try:
        started = impl.start()
        client, where = started.__enter__()
    except (OSError, RuntimeError, FileNotFoundError) as err:
        print(f"\n{impl.name}: skipped ({err})")
        return None
    try:
        print(f"\n{impl.name}: {where}", flush=True)
        create_state_table(client, STATE_TABLE)
        check_shape(client)
        t0 = time.perf_counter()
        fill(client, count)
        print(f"  [phase] {count:,} released acquisitions written: {time.perf_counter() - t0:.1f} s", flush=True)
        meter = Meter(roles={STATE_TABLE: "state"})
        meter.attach(client)
        records = StateTable(client, STATE_TABLE).history(NOW - WINDOW, NOW)
        if len(records) != count:
            raise SystemExit(f"the history holds {len(records)} acquisitions, not {count}")
        baseline, full, replay = [], [], []
        for _ in range(runs):
            baseline.append(metered(meter, "bare Query", lambda: bare_query(client)))
            full.append(metered(meter, "backtest", lambda: backtest(client)))
            replay.append(metered(meter, "replay alone", lambda: backtest(client, read=False, records=records)))
        return [min(r, key=lambda run: run.seconds) for r in (baseline, full, replay)]
    finally:
        started.__exit__(None, None, None)


def show(name: str, results: Sequence[Run], count: int) -> None:
    base = results[0]
    print(f"\n{name}: backtest of {count:,} recorded acquisitions (30 days, 2 policies), best of the runs")
    print(f"  {'':<14} {'seconds':>8} {'ratio':>6} {'read units':>11} {'ratio':>6}  requests")
    for r in results:
        ratio = f"{r.seconds / base.seconds:.2f}x" if base.seconds else "-"
        units = f"{r.units / base.units:.2f}x" if base.units else "-"
        listing = ", ".join(f"{op} {n}" for op, n in sorted(r.requests.items())) or "none"
        print(f"  {r.label:<14} {r.seconds:>8.3f} {ratio:>6} {r.units:>11.1f} {units:>6}  {listing}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--acquisitions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("moto", "dynalite"))
    args = parser.parse_args()
    use_offline_aws(REGION)
    impls = [Implementation("moto", moto), Implementation("dynalite", dynalite)]
    for impl in impls:
        if args.only and impl.name != args.only:
            continue
        results = bench(impl, args.acquisitions, args.runs)
        if results is not None:
            show(impl.name, results, args.acquisitions)
    return 0


if __name__ == "__main__":
    sys.exit(main())
