"""Benchmark (not a test): the stream function on one 1,000-record batch, its time and its DynamoDB calls.

The batch is shaped like a busy lock table's stream, in the exact Lambda event shape of `events/stream_*.json`:
~45% lock INSERTs, ~45% REMOVEs of those same locks (every lock ID unique), ~10% digest MODIFYs written
while the lock is held, interleaved in time order over many states. `handle_batch` runs on it with the real
`StateTable`:

* on moto in-process (`mock_aws`), and with `--server` also on a moto server on 127.0.0.1 (HTTP, a separate
  process: closer to what a network round trip costs);
* twice per backend: on a fresh state table, then the very same batch again (a redelivery, which must
  record and log nothing);
* with a baseline measured in the same run: as many bare `update_item` calls to the same table as the
  handler made on the fresh run, and the ratio handler time / baseline time.

DynamoDB calls are counted by operation on the client given to `StateTable`, through botocore's event system
(`before-call.dynamodb.*`), and failed calls by error code (`after-call.dynamodb.*`).

Run as `.venv/bin/python scripts/bench_stream.py [--records 1000] [--server]` (`--server` needs the test lab:
`PYTHONPATH=tests`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from offline_env import use_offline_aws

REGION = "us-east-1"
NAMESPACE = "TflockReaperBench"
STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks/stream/2026-11-26T00:00:00.000"
BUCKET = "tf-state"
START_EPOCH = 1_795_716_000  # 2026-11-26T16:40:00Z
AUDIT_EVENTS = frozenset({"lock_acquired", "lock_released", "state_persisted", "item_ignored"})


# -- the batch ----------------------------------------------------------------------------------------------


def _go_uuid(rng: random.Random) -> str:
    """Terraform's lock ID: UUID-shaped random hex."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


@dataclass
class _Change:
    at: float
    name: str
    lock_id: str
    image: dict[str, dict[str, Any]]
    old_image: dict[str, dict[str, Any]] | None = None


@dataclass
class Batch:
    event: dict[str, Any]
    counts: Counter[str] = field(default_factory=Counter)
    states: int = 0


def build_batch(records: int, seed: int = 7) -> Batch:
    """~45% lock INSERT, ~45% REMOVE of those locks, ~10% digest MODIFY, in time order."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not cryptography
    digests = records // 10
    locks = (records - digests) // 2
    digests = records - 2 * locks
    states = max(1, locks // 3)
    # Each state is locked ~3 times one after another; its digest is written while its lock is held.
    paths = [f"{BUCKET}/env:/ws{i % 7}/team-{i // 7:03d}/terraform.tfstate" for i in range(states)]
    free_at = {path: START_EPOCH + rng.uniform(0, 60) for path in paths}
    digest_of = {path: f"{rng.getrandbits(128):032x}" for path in paths}
    with_digest = set(rng.sample(range(locks), digests))
    changes: list[_Change] = []
    for n in range(locks):
        path = paths[n % states]
        start = free_at[path] + rng.uniform(1, 30)
        hold = rng.uniform(2, 90)
        free_at[path] = start + hold
        info = {
            "ID": _go_uuid(rng),
            "Operation": rng.choice(["OperationTypeApply", "OperationTypeApply", "OperationTypePlan"]),
            "Info": "",
            "Who": f"runner@ci-runner-{rng.getrandbits(24):06x}",
            "Version": "1.15.5",
            "Created": _rfc3339(start - rng.uniform(0.001, 0.05)),
            "Path": path,
        }
        lock = {"LockID": {"S": path}, "Info": {"S": json.dumps(info, separators=(",", ":"))}}
        changes.append(_Change(start, "INSERT", path, lock))
        if n in with_digest:
            new = f"{rng.getrandbits(128):032x}"
            digest = {"LockID": {"S": f"{path}-md5"}, "Digest": {"S": new}}
            old = {"LockID": {"S": f"{path}-md5"}, "Digest": {"S": digest_of[path]}}
            digest_of[path] = new
            changes.append(_Change(start + hold * 0.9, "MODIFY", f"{path}-md5", digest, old))
        changes.append(_Change(start + hold, "REMOVE", path, lock))
    changes.sort(key=lambda c: c.at)
    batch = Batch({"Records": [_record(c, 4_421_584_500_000_000_017_450_439_091 + i) for i, c in enumerate(changes)]})
    batch.counts.update(f"{c.name} {'digest' if c.name == 'MODIFY' else 'lock'}" for c in changes)
    batch.states = states
    return batch


def _record(change: _Change, sequence: int) -> dict[str, Any]:
    body: dict[str, Any] = {"ApproximateCreationDateTime": int(change.at), "Keys": {"LockID": change.image["LockID"]}}
    if change.name == "REMOVE":
        body["OldImage"] = change.image
    else:
        body["NewImage"] = change.image
        if change.old_image is not None:
            body["OldImage"] = change.old_image
    body.update(
        SequenceNumber=str(sequence),
        SizeBytes=len(json.dumps(body)),
        StreamViewType="NEW_AND_OLD_IMAGES",
    )
    return {
        "eventID": uuid.UUID(int=sequence % 2**128).hex,
        "eventName": change.name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": body,
        "eventSourceARN": STREAM_ARN,
    }


# -- counting DynamoDB calls ----------------------------------------------------------------------------


@dataclass
class CallCounter:
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    """Time between `before-call` and `after-call`: the request, moto's work and the response parsing."""
    _started: float = 0.0

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-call.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _before(self, model: Any, **_: Any) -> None:
        self.calls[str(model.name)] += 1
        self._started = time.perf_counter()

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        self.seconds += time.perf_counter() - self._started
        code = parsed.get("Error", {}).get("Code")
        if code:
            self.errors[f"{model.name}:{code}"] += 1

    def reset(self) -> None:
        self.calls.clear()
        self.errors.clear()
        self.seconds = 0.0


# -- runs --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunResult:
    label: str
    records: int
    seconds: float
    call_seconds: float
    calls: Counter[str]
    errors: Counter[str]
    failures: int
    logged: Counter[str]

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@contextlib.contextmanager
def _quiet(handler_module: Any) -> Iterator[io.StringIO]:
    """The function's log lines into a buffer (counted afterwards); EMF metric lines off the terminal."""
    logs = io.StringIO()
    previous = handler_module.logger.registered_handler.setStream(logs)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield logs
    finally:
        handler_module.logger.registered_handler.setStream(previous)


def _create_state_table(client: Any, name: str) -> None:
    from tables import create_state_table  # noqa: PLC0415 - tests/ is on PYTHONPATH (make bench), as for tflab

    create_state_table(client, name)
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def run_handler(label: str, batch: Batch, client: Any, table: str, counter: CallCounter) -> RunResult:
    import stream_handler  # noqa: PLC0415 - imported once the environment is set
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415

    store = StateTable(client, table)
    event = json.loads(json.dumps(batch.event))  # a fresh copy, as each invocation gets
    counter.reset()
    with _quiet(stream_handler) as logs:
        started = time.perf_counter()
        result = stream_handler.handle_batch(event, None, store=store)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        stream_handler.metrics.clear_metrics()
    logged: Counter[str] = Counter()
    for line in logs.getvalue().splitlines():
        if line.startswith("{"):
            name = json.loads(line).get("event")
            if name in AUDIT_EVENTS:
                logged[name] += 1
    return RunResult(
        label,
        len(event["Records"]),
        seconds,
        counter.seconds,
        Counter(counter.calls),
        Counter(counter.errors),
        len(result["batchItemFailures"]),
        logged,
    )


def run_baseline(calls: int, client: Any, table: str) -> float:
    """`calls` bare, unconditional update_item calls on distinct keys of the same table."""
    started = time.perf_counter()
    for n in range(calls):
        client.update_item(
            TableName=table,
            Key={"pk": {"S": f"BASELINE#{n}"}, "sk": {"S": "X"}},
            UpdateExpression="SET v = :v",
            ExpressionAttributeValues={":v": {"N": str(n)}},
        )
    return time.perf_counter() - started


def bench_backend(title: str, batch: Batch, make_client: Callable[[], Any]) -> None:
    client = make_client()
    counter = CallCounter()
    counter.attach(client)
    table = f"tflock-reaper-state-{uuid.uuid4().hex[:8]}"
    _create_state_table(client, table)
    fresh = run_handler("fresh table", batch, client, table, counter)
    again = run_handler("redelivery", batch, client, table, counter)
    counter.reset()
    baseline_s = run_baseline(fresh.total_calls, client, table)
    report(title, [fresh, again], fresh.total_calls, baseline_s)


def report(title: str, runs: list[RunResult], baseline_calls: int, baseline_s: float) -> None:
    print(f"\n{title}")
    for run in runs:
        per_op = ", ".join(f"{op} {n}" for op, n in sorted(run.calls.items())) or "none"
        errors = ", ".join(f"{code} {n}" for code, n in sorted(run.errors.items())) or "none"
        logged = ", ".join(f"{name} {n}" for name, n in sorted(run.logged.items())) or "nothing"
        print(f"  {run.label}:")
        print(f"    records            {run.records}")
        print(f"    wall time          {run.seconds:.3f} s")
        print(f"    records/s          {run.records / run.seconds:,.0f}")
        own = run.seconds - run.call_seconds
        print(f"    in DynamoDB calls  {run.call_seconds:.3f} s; the handler's own time {own:.3f} s")
        print(f"    DynamoDB calls     {run.total_calls} ({run.total_calls / run.records:.2f} per record)")
        print(f"    per operation      {per_op}")
        print(f"    failed calls       {errors}")
        print(f"    batchItemFailures  {run.failures}")
        print(f"    events logged      {logged}")
        print(f"    handler/baseline   {run.seconds / baseline_s:.2f}x")
    rate = baseline_calls / baseline_s if baseline_s else float("inf")
    print(f"  baseline: {baseline_calls} bare update_item calls in {baseline_s:.3f} s ({rate:,.0f} calls/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description="Benchmark the stream function on one large batch.")
    parser.add_argument("--records", type=int, default=1000, help="records in the batch (default 1000)")
    parser.add_argument("--server", action="store_true", help="also run against a moto server on 127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    use_offline_aws(
        REGION,
        ("layers/reaper", "functions/stream"),
        POWERTOOLS_SERVICE_NAME="tflock-reaper",
        POWERTOOLS_METRICS_NAMESPACE=NAMESPACE,
        POWERTOOLS_LOG_LEVEL="INFO",
    )

    batch = build_batch(args.records, args.seed)
    mix = ", ".join(f"{n} {kind}" for kind, n in sorted(batch.counts.items()))
    print(f"batch: {len(batch.event['Records'])} records ({mix}) on {batch.states} states")

    from moto import mock_aws  # noqa: PLC0415 - after the environment is set

    with mock_aws():
        bench_backend("moto in-process (mock_aws)", batch, lambda: boto3.client("dynamodb", region_name=REGION))

    if args.server:
        try:
            from tflab import MotoServer  # noqa: PLC0415
        except ImportError:
            print("--server needs the test lab on the path: PYTHONPATH=tests", file=sys.stderr)
            return 2
        with MotoServer() as server:
            bench_backend(
                f"moto server ({server.endpoint}, HTTP on loopback)",
                batch,
                lambda: boto3.client("dynamodb", region_name=REGION, endpoint_url=server.endpoint),
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
