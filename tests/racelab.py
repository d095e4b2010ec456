"""The race lab: Terraform-like workers take and release locks on a pool of states while the reaper sweeps them
in enforce mode, with the most aggressive policy the model allows and an ``http`` holder check that asks the
workers' own registry, over loopback HTTP, who is alive.

Used by ``tests/integration/test_race_soak.py`` (bounded, in the suite) and ``scripts/soak.py`` (``make soak``).

* **Workers** (threads) do what Terraform's S3 backend does (``shared/TERRAFORM_LOCKING.md``): acquire with
  ``PutItem`` conditional on ``attribute_not_exists(LockID)`` and an ``Info`` JSON shaped as Terraform writes it
  (a new ``ID`` each time); on a refused acquire, read the holder (``GetItem``) for the error message; while
  holding, write the state's ``-md5`` digest item (unconditional ``PutItem``) and heartbeat; release by
  ``GetItem`` (consistent), compare ``ID``, then an unconditional ``DeleteItem``. Some lifetimes are abandoned:
  the worker "dies" holding the lock (its run ends in the registry, it beats no more and never releases).
* **The registry** is the ground truth, and what a CI system is to the reaper: a run is registered (alive)
  *before* its ``PutItem``, as a CI job exists before its Terraform takes the lock, and it stays alive until it
  released its lock (after the ``DeleteItem`` returned) or died. It answers ``GET /holder?lock=&id=&who=`` with
  ``{"running": true|false}``, the shape ``holders/http.py`` expects; an ID it never issued gets a 404 (counted:
  there must be none). Liveness is the run's state, not a heartbeat timeout: on a shared two-core machine a live
  worker can be descheduled past any timeout, and the registry, not the reaper, would then be what is wrong.
* **Sweepers** (threads) call ``service.sweep`` wired as the CLI and the Lambda wire it (``app.state_store``,
  ``app.holder_checks``, the real ``LockTable``), one with the real ``StateTable`` (the Lambda's store), one with
  the memory store (the CLI's), overlapping each other.
* **Audits**: every ``DeleteItem`` a sweeper's client sends is recorded (``before-parameter-build``) with the
  holder's state at that moment; every reaped ``deleted_item`` is checked; every worker checks on release that
  its lock is still its own; every sweep must see every digest item; at the end the digest items must hold
  exactly what the workers last wrote, the table no lock, and the reaped IDs be exactly the abandoned ones.

**Why in-process moto, not the moto server** (``tflab.MotoServer``): real DynamoDB applies each single-item
request atomically; moto does not. Its conditional ``PutItem`` reads the item, evaluates the condition in Python
and then writes, so two threads of the threaded moto server can both "acquire" one lock, and a conditional
``DeleteItem`` can remove an item put between its check and its delete. In-process, :func:`atomic_moto` makes
every request atomic again, as DynamoDB is (one lock around moto's request handling, nothing else); the server
offers no such hook. It is also faster here: no HTTP for the AWS calls, only for the holder check.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.exceptions import ClientError
from factories import lock_info
from http_stub import serve_loopback
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber
from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, create_state_table
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import Policy, parse_policy
from tflock_reaper.domain.reconcile import AuditHealth
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.entrypoints.wiring import holder_checks, state_store
from tflock_reaper.services.reconcile import Reconciler
from tflock_reaper.services.sweep import sweep

REGION = "us-east-1"
BUCKET = "tf-state"
DIGEST_SUFFIX = "-md5"
OPERATIONS = ("OperationTypeApply", "OperationTypePlan", "OperationTypeRefresh", "state-mv", "init")

# A lifetime's states. Live: the registry says running, and nothing may delete its lock.
ACQUIRING, HELD = "acquiring", "held"
RELEASED, DEAD, NOT_ACQUIRED, FAILED = "released", "dead", "not-acquired", "failed"
LIVE = frozenset({ACQUIRING, HELD})
#: How often a long run reports its progress (seconds).
PROGRESS_EVERY = 30.0


@dataclass(frozen=True)
class RaceConfig:
    lifetimes: int = 1500
    """Stop the workers once this many locks were acquired ..."""
    seconds: float = 25.0
    """... or after this long, whichever comes first."""
    workers: int = 12
    paths: int = 24
    abandon_rate: float = 0.1
    hold_seconds: float = 0.004
    """A holder sleeps up to this long between its steps (digest writes, release) ..."""
    long_hold_rate: float = 0.1
    long_hold_seconds: float = 0.5
    """... but this share of them up to this long (a long apply): sweeps then find many holders alive."""
    sweep_pause: float = 0.005
    """Each sweeper rests this long between sweeps (the GIL is shared with the workers)."""
    seed: int = 8
    policy_override: str | None = None
    """Another holder spec (YAML flow mapping) instead of the registry's http check: to prove the audits bite."""
    clock_skews: tuple[float, ...] = (0.0, -3 * 3600.0, 240.0)
    """Each worker's clock runs this many seconds off (worker n takes skew n mod len): its ``Created`` is written by
    that clock, as a real holder's is. Slow by 3 h, and fast by 4 min (within the 5 minutes a Created may lie ahead
    before the lock is unreadable): neither may make a lock reapable sooner than the policy says."""
    reap_after: float = 0.0
    """The policy's reap_after (and warn_after), in seconds. Above the longest hold, with ``{assume: gone}``, only the
    reap gate's age keeps live locks: a Created from a slow clock must not count toward it."""
    incremental: bool = False
    """The state-table sweeper sweeps incrementally (a healthy audit), reconciling every ``reconcile_every`` seconds;
    a stream thread records the acquisitions and releases in the state table, as the stream function does, a moment
    late and losing ``stream_loss`` of them (found again by the reconciliations)."""
    reconcile_every: float = 8.0
    stream_loss: float = 0.05


@dataclass
class Lifetime:
    lock_id: str
    lock_path: str
    worker: int
    state: str = ACQUIRING
    beats: int = 0
    ended_at: float | None = None


@dataclass
class Figures:
    lifetimes: int = 0
    abandoned: int = 0
    released: int = 0
    reaped: int = 0
    contended: int = 0
    vanished_before_read: int = 0
    digest_writes: int = 0
    sweeps: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    holder_answers: Counter[str] = field(default_factory=Counter)
    delete_requests: int = 0
    spared_live: int = 0
    stream_recorded: int = 0
    stream_lost: int = 0
    violations: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left_in_table: list[str] = field(default_factory=list)
    duration: float = 0.0

    def text(self) -> str:
        sweeps = ", ".join(f"{n} {kind}" for kind, n in sorted(self.sweeps.items()))
        outcomes = ", ".join(f"{n} {o}" for o, n in sorted(self.outcomes.items()))
        answers = ", ".join(f"{n} {a}" for a, n in sorted(self.holder_answers.items()))
        lines = [
            (
                f"{self.lifetimes} lock lifetimes in {self.duration:.1f} s: {self.released} released, "
                f"{self.abandoned} abandoned, {self.reaped} reaped"
            ),
            (
                f"{self.contended} acquires refused (held), {self.vanished_before_read} of them found the lock gone on "
                f"the follow-up read; {self.digest_writes} digest writes"
            ),
            f"sweeps {sum(self.sweeps.values())} ({sweeps}); verdicts: {outcomes}",
            f"holder check answers: {answers}",
            (
                f"DeleteItem requests by the reaper: {self.delete_requests}, {self.spared_live} of them refused by "
                "their condition because a live holder had re-taken the lock"
            ),
            *(
                [f"stream records: {self.stream_recorded} recorded, {self.stream_lost} lost"]
                if self.stream_recorded or self.stream_lost
                else []
            ),
            (
                f"violations {len(self.violations)}, errors {len(self.errors)}, "
                f"locks left after the final sweep {len(self.left_in_table)}"
            ),
        ]
        return "\n".join(f"race: {line}" for line in lines)


class Registry:
    """Who holds which lock and whether their run is alive: the workers' ground truth, served over HTTP."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.lifetimes: dict[str, Lifetime] = {}
        self.answers: Counter[str] = Counter()

    def register(self, lock_id: str, lock_path: str, worker: int) -> None:
        with self._lock:
            self.lifetimes[lock_id] = Lifetime(lock_id, lock_path, worker)

    def set(self, lock_id: str, state: str) -> None:
        with self._lock:
            lifetime = self.lifetimes[lock_id]
            if lifetime.state not in LIVE:
                raise AssertionError(f"{lock_id} ended twice ({lifetime.state}, then {state})")
            lifetime.state = state
            if state not in LIVE:
                lifetime.ended_at = time.monotonic()

    def beat(self, lock_id: str) -> None:
        with self._lock:
            lifetime = self.lifetimes[lock_id]
            if lifetime.state not in LIVE:
                raise AssertionError(f"{lock_id} beat after its run ended ({lifetime.state})")
            lifetime.beats += 1

    def state(self, lock_id: str) -> str | None:
        with self._lock:
            lifetime = self.lifetimes.get(lock_id)
            return None if lifetime is None else lifetime.state

    def answer(self, lock_path: str, lock_id: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            lifetime = self.lifetimes.get(lock_id)
            if lifetime is None or lifetime.lock_path != lock_path:
                self.answers["404 (no such run)"] += 1
                return 404, {"message": "no such run"}
            running = lifetime.state in LIVE
            self.answers["running" if running else "not running"] += 1
            return 200, {"running": running, "state": lifetime.state, "beats": lifetime.beats}


class RegistryServer:
    """``GET /holder?lock=<lock path>&id=<lock ID>&who=<who>`` on 127.0.0.1, answered from the registry."""

    def __init__(self, registry: Registry) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: one connection per sweep (urllib3 pool)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path != "/holder":
                    status, body = 404, {"message": "unknown path"}
                else:
                    status, body = registry.answer(query.get("lock", [""])[0], query.get("id", [""])[0])
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = serve_loopback(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> RegistryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def atomic_moto() -> Iterator[None]:
    """Each in-process moto request handled under one lock: single-item requests become atomic, as in DynamoDB
    (moto's conditional writes check, then write, and threads would otherwise interleave in between)."""
    lock = threading.Lock()
    original = BotocoreStubber.process_request

    def process_request(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return original(self, request)

    with mock.patch.object(BotocoreStubber, "process_request", process_request):
        yield


def policy_yaml(registry_url: str, config: RaceConfig) -> str:
    """The smallest thresholds the policy model allows (0s each; reap_after may not be under warn_after), and a
    breaker that never trips here (at most one lock per state path can qualify): it must not hide a reap."""
    holder = (
        config.policy_override
        or f'{{http: {{url: "{registry_url}/holder?lock={{lock_path}}&id={{lock_id}}&who={{who}}"}}}}'
    )
    after = f"{config.reap_after:g}s"
    return (
        "mode: enforce\n"
        f"max_reaps_per_sweep: {config.paths}\n"
        "defaults:\n"
        f"  warn_after: {after}\n"
        f"  reap_after: {after}\n"
        "  min_observed: 0s\n"
        f"  holder: {holder}\n"
    )


class Lab:
    def __init__(self, config: RaceConfig, policy: Policy, registry: Registry) -> None:
        self.config = config
        self.policy = policy
        self.registry = registry
        self.paths = [f"{BUCKET}/env:/ws{n % 3}/stack-{n:02d}/terraform.tfstate" for n in range(config.paths)]
        self.digests: dict[str, str] = {}
        """What the workers last wrote to each state's digest item (only the lock holder writes it)."""
        self.figures = Figures()
        self.reaped_ids: Counter[str] = Counter()
        self.stop_workers = threading.Event()
        self.stop_sweeps = threading.Event()
        self.stop_stream = threading.Event()
        self.stream_events: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self._lock = threading.Lock()

    # -- bookkeeping, thread-safe ------------------------------------------------------------------------
    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.figures, name, getattr(self.figures, name) + n)

    def violation(self, text: str) -> None:
        with self._lock:
            self.figures.violations.append(text)

    def error(self, text: str) -> None:
        with self._lock:
            self.figures.errors.append(text)

    # -- the table ---------------------------------------------------------------------------------------
    def client(self) -> Any:
        return boto3.client("dynamodb", region_name=REGION)

    def setup(self) -> None:
        client = self.client()
        create_lock_table(client)
        create_state_table(client)
        for path in self.paths:
            self.write_digest(client, path, f"initial state of {path}")

    def streamed(self, kind: str, item: dict[str, Any]) -> None:
        if self.config.incremental:
            self.stream_events.put((kind, item))

    def write_digest(self, client: Any, path: str, state: str) -> None:
        digest = hashlib.md5(state.encode(), usedforsecurity=False).hexdigest()
        client.put_item(TableName=LOCK_TABLE, Item={"LockID": {"S": path + DIGEST_SUFFIX}, "Digest": {"S": digest}})
        with self._lock:
            self.digests[path] = digest


class Stream(threading.Thread):
    """The lock table's stream and the stream function: each acquisition and release (the workers' and the
    reaper's deletes) recorded in the state table, in order, a moment late; ``stream_loss`` of them lost (a record
    that failed every retry)."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(name="race-stream", daemon=True)
        self.lab = lab
        self.rng = random.Random(lab.config.seed + 1000)  # noqa: S311 - which records are lost, not a secret
        self.store = StateTable(lab.client(), STATE_TABLE)
        self.table_arn = str(lab.client().describe_table(TableName=LOCK_TABLE)["Table"]["TableArn"])
        self.sequence = 10**20

    def run(self) -> None:
        try:
            while not (self.lab.stop_stream.is_set() and self.lab.stream_events.empty()):
                try:
                    kind, item = self.lab.stream_events.get(timeout=0.05)
                except queue.Empty:
                    continue
                self.record(kind, item)
        except Exception as err:  # noqa: BLE001 - reported as a figure and failed on
            self.lab.error(f"{self.name}: {type(err).__name__}: {err}")

    def record(self, kind: str, item: dict[str, Any]) -> None:
        if self.rng.random() < self.lab.config.stream_loss:
            self.lab.count("stream_lost")
            return
        lock = classify_item(item, None, table=LOCK_TABLE, table_arn=self.table_arn)
        if not isinstance(lock, LockRecord):
            return
        self.sequence += 1
        if kind == "acquired":
            self.store.record_acquired(lock, datetime.now(UTC), str(self.sequence))
        else:
            self.store.record_released(lock, datetime.now(UTC), str(self.sequence))
        self.lab.count("stream_recorded")


class HealthyAudit:
    """The audit's health, as the race's stream has it: consumed, nothing given up on (losses are not reported, as
    a record lost without a trace would not be: only the reconciliations find those locks)."""

    def health(self, stream_arn: str | None) -> AuditHealth:
        return AuditHealth(consumer=True, failed_records=0, iterator_age=None)


class Worker(threading.Thread):
    def __init__(self, lab: Lab, number: int) -> None:
        super().__init__(name=f"race-worker-{number}", daemon=True)
        self.lab = lab
        self.number = number
        self.rng = random.Random(lab.config.seed * 1000 + number)  # noqa: S311 - a schedule, not a secret
        self.skew = timedelta(seconds=lab.config.clock_skews[number % len(lab.config.clock_skews)])
        """How far this worker's clock is off: its ``Created`` says ``now + skew``."""

    def run(self) -> None:
        client = self.lab.client()
        try:
            while not self.lab.stop_workers.is_set():
                self.lifetime(client)
        except Exception as err:  # noqa: BLE001 - reported as a figure and failed on
            self.lab.error(f"{self.name}: {type(err).__name__}: {err}")

    def lifetime(self, client: Any) -> None:
        lab, rng = self.lab, self.rng
        path = rng.choice(lab.paths)
        who = f"runner@race-worker-{self.number}"
        info = lock_info(path, created=datetime.now(UTC) + self.skew, who=who, operation=rng.choice(OPERATIONS))
        lock_id, raw_info = info["ID"], json.dumps(info, separators=(",", ":"))
        key = {"LockID": {"S": path}}
        lab.registry.register(lock_id, path, self.number)  # the run exists before it takes the lock
        try:
            client.put_item(
                TableName=LOCK_TABLE,
                Item={"LockID": {"S": path}, "Info": {"S": raw_info}},
                ConditionExpression="attribute_not_exists(LockID)",
            )
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            lab.registry.set(lock_id, NOT_ACQUIRED)
            lab.count("contended")
            # Terraform reads the holder's Info for its error; gone meanwhile is terraform#32690 (a reap can do it)
            if "Item" not in client.get_item(TableName=LOCK_TABLE, Key=key, ConsistentRead=True):
                lab.count("vanished_before_read")
            time.sleep(rng.uniform(0, lab.config.hold_seconds))
            return
        lab.registry.set(lock_id, HELD)
        lab.count("lifetimes")
        lab.streamed("acquired", {"LockID": {"S": path}, "Info": {"S": raw_info}})
        for step in range(rng.randint(0, 2)):
            time.sleep(rng.uniform(0, lab.config.hold_seconds))
            lab.registry.beat(lock_id)
            lab.write_digest(client, path, f"{path} written by {lock_id} step {step}")
            lab.count("digest_writes")
        long_hold = rng.random() < lab.config.long_hold_rate
        time.sleep(rng.uniform(0, lab.config.long_hold_seconds if long_hold else lab.config.hold_seconds))
        if rng.random() < lab.config.abandon_rate:
            lab.registry.set(lock_id, DEAD)  # killed holding the lock: no more beats, never released
            lab.count("abandoned")
            return
        lab.registry.beat(lock_id)
        self.release(client, path, lock_id)

    def release(self, client: Any, path: str, lock_id: str) -> None:
        """Terraform's unlock: consistent read, compare the ID, then a DeleteItem with no condition."""
        key = {"LockID": {"S": path}}
        item = client.get_item(TableName=LOCK_TABLE, Key=key, ConsistentRead=True).get("Item")
        current = json.loads(item["Info"]["S"])["ID"] if item and "Info" in item else None
        if current != lock_id:
            found = "no lock" if item is None else f"lock {current}"
            self.lab.violation(
                f"{self.name}: its live lock {path} {lock_id} was lost: at release the table had {found}"
            )
            self.lab.registry.set(lock_id, FAILED)  # Terraform fails: "lock ID ... does not match existing lock"
            return
        client.delete_item(TableName=LOCK_TABLE, Key=key)
        self.lab.streamed("released", item)
        self.lab.registry.set(lock_id, RELEASED)
        self.lab.count("released")


class Sweeper(threading.Thread):
    """Sweeps again and again, wired like the Lambda (``state_table``) or the CLI (memory store)."""

    def __init__(self, lab: Lab, *, state_table: str | None) -> None:
        super().__init__(name=f"race-sweeper-{'state-table' if state_table else 'memory'}", daemon=True)
        self.lab = lab
        self.state_table = state_table
        self.kind = "with the state table" if state_table else "with the memory store"
        self.clients = AwsClients(region=REGION)  # reused across sweeps, as a warm Lambda does
        dynamodb = self.clients.dynamodb()
        dynamodb.meta.events.register("before-parameter-build.dynamodb.DeleteItem", self._audit_delete)
        dynamodb.meta.events.register("after-call.dynamodb.DeleteItem", self._count_spared)
        self.table = LockTable(dynamodb, LOCK_TABLE)

    def run(self) -> None:
        try:
            while not self.lab.stop_sweeps.is_set():
                self.sweep_once()
                time.sleep(self.lab.config.sweep_pause)
        except Exception as err:  # noqa: BLE001 - reported as a figure and failed on
            self.lab.error(f"{self.name}: {type(err).__name__}: {err}")

    def sweep_once(self, *, full: bool = False) -> SweepReport:
        state = state_store(self.clients, self.state_table)
        reconciler = None
        if self.lab.config.incremental and isinstance(state, StateTable):
            reconciler = Reconciler(
                store=state,
                probe=HealthyAudit(),
                deployment="race",
                reconcile_every=timedelta(seconds=self.lab.config.reconcile_every),
                force_full="the race's final sweep" if full else None,
            )
        report = sweep(
            lock_table=self.table,
            state=state,
            policy=self.lab.policy,
            mode="enforce",
            holders=holder_checks(self.clients, state),
            reconciler=reconciler,
        )
        self._audit_report(report)
        return report

    def _audit_delete(self, params: dict[str, Any], **_: Any) -> None:
        """Every DeleteItem the reaper sends: a lock path of the pool, conditional on the Info of a holder that
        is not alive at this very moment."""
        lab = self.lab
        lab.count("delete_requests")
        lock_path = params.get("Key", {}).get("LockID", {}).get("S")
        observed = params.get("ExpressionAttributeValues", {}).get(":observed", {}).get("S")
        if lock_path not in lab.paths or params.get("ConditionExpression") != "#info = :observed" or not observed:
            lab.violation(f"{self.name}: DeleteItem outside the lock contract: {params}")
            return
        lock_id = json.loads(observed)["ID"]
        state = lab.registry.state(lock_id)
        if state is None or state in LIVE:
            lab.violation(f"{self.name}: DeleteItem sent for {lock_path} {lock_id} whose holder is {state}")

    def _count_spared(self, parsed: dict[str, Any], **_: Any) -> None:
        """A delete refused because the path was re-taken meanwhile by a live holder: the race the condition is for
        (an unconditional delete there would have removed that holder's lock). A delete done is on the stream."""
        if "Error" not in parsed and "Attributes" in parsed:
            self.lab.streamed("released", parsed["Attributes"])
        info = parsed.get("Item", {}).get("Info", {}).get("S") if "Error" in parsed else None
        if info and self.lab.registry.state(json.loads(info)["ID"]) in LIVE:
            self.lab.count("spared_live")

    def _audit_report(self, report: SweepReport) -> None:
        lab = self.lab
        with lab._lock:
            lab.figures.sweeps[f"{self.kind}, {report.sweep_kind.value}"] += 1
            lab.figures.outcomes.update(entry.outcome.value for entry in report.locks)
        full = report.sweep_kind.value == "full"  # an incremental sweep reads no digest item, by design
        if (full and report.digests != len(lab.paths)) or (not full and report.digests) or report.skipped:
            lab.violation(f"{self.name}: a sweep saw {report.digests} digest items and skipped {report.skipped}")
        if report.breaker:
            lab.violation(f"{self.name}: the circuit breaker tripped: {report.breaker}")
        for entry in report.locks:
            item = entry.deleted_item
            if item is None:
                continue
            lock_id = json.loads(item["Info"]["S"])["ID"] if "Info" in item else None
            state = lab.registry.state(lock_id) if lock_id else None
            if "Digest" in item or item["LockID"]["S"] not in lab.paths or state != DEAD:
                lab.violation(f"{self.name}: reaped {item} whose holder is {state}")
            with lab._lock:
                lab.reaped_ids[str(lock_id)] += 1
                lab.figures.reaped += 1


def _check_end(lab: Lab, final: SweepReport) -> None:
    """After the final sweep: no lock left, the digests as the workers last wrote them, each abandoned lock
    reaped exactly once and nothing else reaped."""
    items = lab.client().scan(TableName=LOCK_TABLE, ConsistentRead=True)["Items"]
    digests = {
        i["LockID"]["S"].removesuffix(DIGEST_SUFFIX): i.get("Digest", {}).get("S") for i in items if "Info" not in i
    }
    lab.figures.left_in_table = sorted(i["LockID"]["S"] for i in items if "Info" in i)
    if digests != lab.digests:
        lab.violation(f"digest items differ from the workers' last writes: {digests} != {lab.digests}")
    abandoned = {lid for lid, life in lab.registry.lifetimes.items() if life.state == DEAD}
    if set(lab.reaped_ids) != abandoned:
        lab.violation(
            f"reaped IDs differ from the abandoned ones: not reaped {sorted(abandoned - set(lab.reaped_ids))}, "
            f"reaped but not abandoned {sorted(set(lab.reaped_ids) - abandoned)}"
        )
    twice = sorted(lid for lid, n in lab.reaped_ids.items() if n > 1)
    if twice:
        lab.violation(f"reaped more than once: {twice}")
    if lab.figures.left_in_table or final.summary()["reaped"] != final.summary()["locks"]:
        lab.violation(f"locks left after the final sweep: {lab.figures.left_in_table}, final {final.summary()}")


def run_race(config: RaceConfig, progress: Callable[[Figures, float], None] | None = None) -> Figures:
    """Run the race (AWS credentials and region must be dummy values in the environment) and return the figures;
    violations and errors are in them, nothing is raised for them."""
    started = time.monotonic()
    engine = logging.getLogger("tflock_reaper")
    saved_level = engine.level
    engine.setLevel(logging.ERROR)  # a WARNING per reap: hundreds of them are expected here
    registry = Registry()
    try:
        with mock_aws(), atomic_moto(), RegistryServer(registry) as server:
            policy = parse_policy(policy_yaml(server.url, config), source="race policy")
            lab = Lab(config, policy, registry)
            lab.setup()
            sweepers = [Sweeper(lab, state_table=STATE_TABLE), Sweeper(lab, state_table=None)]
            workers = [Worker(lab, n) for n in range(config.workers)]
            stream = [Stream(lab)] if config.incremental else []
            for thread in [*stream, *sweepers, *workers]:
                thread.start()
            deadline = started + config.seconds
            next_report = started + PROGRESS_EVERY
            while lab.figures.lifetimes < config.lifetimes and time.monotonic() < deadline and not lab.figures.errors:
                time.sleep(0.05)
                if progress is not None and time.monotonic() >= next_report:
                    progress(lab.figures, time.monotonic() - started)
                    next_report += PROGRESS_EVERY
            lab.stop_workers.set()
            for worker in workers:
                worker.join(timeout=30)
            lab.stop_sweeps.set()
            for sweeper in sweepers:
                sweeper.join(timeout=30)
            lab.stop_stream.set()
            for thread in stream:
                thread.join(timeout=30)
            # Every worker has ended its lifetime: what is left is abandoned; one sweep must reap it all, once the
            # reaper has seen the last of them for reap_after (its own sighting is what the reap gate measures). Full
            # sweeps: a lock whose acquisition the stream lost is found by a reconciliation.
            sweepers[0].sweep_once(full=True)
            time.sleep(config.reap_after)
            final = sweepers[0].sweep_once(full=True)
            _check_end(lab, final)
            lab.figures.holder_answers = Counter(registry.answers)
    finally:
        engine.setLevel(saved_level)
    lab.figures.duration = time.monotonic() - started
    return lab.figures
