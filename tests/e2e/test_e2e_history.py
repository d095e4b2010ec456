"""The lock history from real Terraform runs: the stream function records each acquisition of a moto server's lock
table (read back through its DynamoDB Streams API, delivered as Lambda delivers it), the sweeper CLI warns about one
stale lock that a human then force-unlocks with Terraform, reaps another, and DynamoDB's TTL removes a third; then
`tflock-reaper history` and `backtest` read the state table over HTTP and their figures are checked against the
stream's own times."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import stream_handler
from fakes import FakeLambdaContext
from streams import function_logs
from tflab import (
    Backend,
    CapturedRecord,
    CliResult,
    MotoServer,
    StreamReader,
    TerraformWorkspace,
    policy_yaml,
    run_reaper,
    to_lambda_event,
    wait_until_older_than,
)
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.records import TTL_PRINCIPAL

pytestmark = pytest.mark.e2e

#: The user identity AWS puts on the stream record of a deletion by DynamoDB's TTL process (moto runs no TTL).
TTL_IDENTITY = {"type": "Service", "principalId": TTL_PRINCIPAL}


def seconds(record: CapturedRecord) -> int:
    """The record's time as Lambda delivers it (epoch seconds, rounded down), which the stream function records."""
    return int(record.to_lambda_record()["dynamodb"]["ApproximateCreationDateTime"])


def test_history_and_backtest_of_real_terraform_runs(  # noqa: PLR0915, PLR0917 - one story, told in order; fixtures
    moto_server: MotoServer,
    backend: Backend,
    make_workspace: Callable[..., TerraformWorkspace],
    reaper: Callable[..., CliResult],
    write_policy: Callable[[str], Path],
    state_table: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(stream_handler.metrics, "namespace", "TflockReaperE2E")
    assert reaper("enable-stream").returncode == 0
    reader = StreamReader.for_table(backend)
    store = StateTable(moto_server.client("dynamodb"), state_table)
    delivered: list[CapturedRecord] = []

    def deliver(records: list[CapturedRecord]) -> None:
        with function_logs(stream_handler) as logs:
            result = stream_handler.handle_batch(to_lambda_event(records), FakeLambdaContext(), store=store)  # type: ignore[arg-type]
        assert result == {"batchItemFailures": []}, logs.getvalue()
        delivered.extend(records)

    def history(*args: str) -> CliResult:
        result = run_reaper(backend.server, "history", "--state-table", state_table, *args, table=None)
        assert result.returncode == 0, result
        return result

    # Two applies that release their own lock (the second holds it for 3 s).
    ok = make_workspace("ok/terraform.tfstate")
    ok.apply()
    ok.apply(sleep=3)
    deliver(reader.read())
    # A killed apply: the sweeper reports it stale, then a human runs terraform force-unlock.
    forced_ws = make_workspace("forced/terraform.tfstate")
    forced = forced_ws.leave_stale_lock(apply_first=False)
    deliver(reader.read())
    wait_until_older_than(forced, 4)  # held well past the backtest's 2s below, whatever the stream's rounding
    dry = write_policy(policy_yaml((f"{backend.bucket}/forced/*", "unknown"), mode="dry-run"))
    swept = reaper("sweep", "--policy", str(dry), "--state-table", state_table)
    assert swept.returncode == 0, swept
    assert [lock["outcome"] for lock in swept.json["locks"]] == ["blocked"]
    forced_ws.force_unlock(forced.id).check()
    deliver(reader.read())
    # A killed apply the sweeper reaps.
    reaped_ws = make_workspace("reaped/terraform.tfstate")
    reaped = reaped_ws.leave_stale_lock(apply_first=False)
    deliver(reader.read())
    wait_until_older_than(reaped, 2)
    enforce = write_policy(policy_yaml((f"{backend.bucket}/reaped/*", "gone"), (f"{backend.bucket}/*", "unknown")))
    swept = reaper("sweep", "--policy", str(enforce), "--enforce", "--state-table", state_table)
    assert swept.returncode == 0, swept
    outcomes = {lock["path"]: lock["outcome"] for lock in swept.json["locks"]}
    assert outcomes == {reaped_ws.lock_path: "reaped"}
    deliver(reader.read())
    # A killed apply whose lock DynamoDB's TTL removes (a TTL on the lock table): the REMOVE carries its identity.
    expired_ws = make_workspace("expired/terraform.tfstate")
    expired_ws.leave_stale_lock(apply_first=False)
    deliver(reader.read())
    moto_server.client("dynamodb").delete_item(TableName=backend.table, Key={"LockID": {"S": expired_ws.lock_path}})
    [removal] = reader.read()
    deliver([dataclasses.replace(removal, raw={**removal.raw, "userIdentity": TTL_IDENTITY})])

    # The stream's own times: each lock's hold, from its INSERT to its REMOVE.
    inserts = {r.lock_id: seconds(r) for r in delivered if r.event_name == "INSERT" and not r.lock_id.endswith("-md5")}
    holds: dict[str, list[int]] = {}
    for r in delivered:
        if r.event_name == "REMOVE":
            holds.setdefault(r.lock_id, []).append(seconds(r) - inserts[r.lock_id])
            inserts.pop(r.lock_id)
        elif r.event_name == "INSERT" and not r.lock_id.endswith("-md5"):
            inserts[r.lock_id] = seconds(r)
    assert not inserts  # every acquisition was released

    report = history("--since", "1h").json
    overall = report["overall"]
    assert overall["count"] == 5
    assert (overall["reaped"], overall["force_unlocked"], overall["held_now"]) == (1, 1, 0)
    assert overall["stale"] == 1  # the blocked one; the reaped one was reaped at its first verdict
    assert overall["hold_seconds"]["max"] == max(h for hs in holds.values() for h in hs)
    assert report["by_operation"]["OperationTypeApply"]["count"] == 5
    by_path = report["by_path"]
    for path, path_holds in holds.items():
        assert by_path[path]["count"] == len(path_holds)
        assert by_path[path]["hold_seconds"]["max"] == max(path_holds)
    assert by_path[ok.lock_path]["hold_seconds"]["max"] >= 3
    assert sum(b["count"] for b in report["histogram"]) == 5

    # The glob, the text report with its histogram, and the page.
    only_ok = history("--since", "1h", "--path", f"{backend.bucket}/ok/*").json
    assert only_ok["overall"]["count"] == 2
    page = tmp_path / "history.html"
    text = run_reaper(
        backend.server, "history", "--state-table", state_table, "--html", str(page), table=None, json=False
    )
    assert text.returncode == 0, text
    assert "History of the last 30d: 5 acquisitions" in text.stdout
    assert "█" in text.stdout.split("Hold times", 1)[1]
    assert 'class="chart hold-distribution"' in page.read_text()

    # The backtest: reaping after 2 s would have hit the held apply and the force-unlocked lock (released by a
    # Terraform principal after an alert: marked); never the reaped or the expired one.
    candidate = write_policy("defaults: {warn_after: 1s, reap_after: 2s, min_observed: 0s, holder: {assume: gone}}\n")
    backtest = run_reaper(
        backend.server,
        "backtest",
        "--state-table",
        state_table,
        "--policy",
        str(candidate),
        "--deployed",
        str(enforce),
        "--sweep-every",
        "1s",
        "--fail-on",
        "wrongful",
        table=None,
    )
    assert backtest.returncode == 4, backtest
    wrongful: dict[str, Any] = {w["lock_path"]: w for w in backtest.json["candidate"]["wrongful"]}
    assert {ok.lock_path, forced_ws.lock_path} <= set(wrongful)
    assert reaped_ws.lock_path not in wrongful
    assert expired_ws.lock_path not in wrongful
    assert wrongful[forced_ws.lock_path]["after_alert"] is True
    assert wrongful[ok.lock_path]["after_alert"] is False
    # The stream's records, as the stream function logged them: the TTL removal is released by ttl.
    records = store.history(
        min(r.server_time for r in delivered).replace(microsecond=0), max(r.server_time for r in delivered)
    )
    assert {r.lock_path: r.released_by for r in records if r.lock_path != ok.lock_path} == {
        forced_ws.lock_path: "terraform",
        reaped_ws.lock_path: "tflock-reaper",
        expired_ws.lock_path: "ttl",
    }
