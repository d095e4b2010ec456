"""The operator CLI against moto: output, exit codes, and the two keys needed to reap."""

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import digest_item, lock_item
from tables import STATE_TABLE, put, table_items
from tflock_reaper.entrypoints.cli import EXIT_AWS, EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_OK, main

STALE_PATH = "tf-state/dev/app.tfstate"
POLICY = """\
mode: enforce
max_reaps_per_sweep: 3
defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/dev/*"
    holder: {assume: gone}
"""


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return str(path)


@pytest.fixture
def stale(dynamodb):
    item = lock_item(STALE_PATH, created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, item, digest_item(STALE_PATH))
    return item


def test_sweep_is_a_dry_run_without_enforce(dynamodb, stale, policy):
    code, out = _run("sweep", "--table", "tf-locks", "--policy", policy, "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    assert report["mode"] == "dry-run"
    assert [lock["outcome"] for lock in report["locks"]] == ["would-reap"]
    assert stale in table_items(dynamodb)
    # A one-off run has no audit to trust: it reads every item, and says so.
    assert report["sweep_kind"] == "full"
    assert report["sweep_reasons"] == ["tf-locks: full, no audit to trust: every item is read"]
    assert report["reads"] == [
        {"source": "tf-locks", "kind": "full", "reason": "no audit to trust: every item is read", "held": 0, "items": 2}
    ]


def test_sweep_enforce_reaps_and_logs_the_full_item(dynamodb, stale, policy, capsys):
    code, out = _run("sweep", "--table", "tf-locks", "--policy", policy, "--enforce", "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    assert report["locks"][0]["outcome"] == "reaped"
    assert report["summary"]["reaped"] == 1
    assert table_items(dynamodb) == [digest_item(STALE_PATH)]
    log = capsys.readouterr().err
    assert "lock reaped" in log
    assert json.dumps(stale["Info"]["S"])[1:-1] in log


def test_enforce_on_a_dry_run_policy_is_refused(dynamodb, stale, tmp_path, capsys):
    path = tmp_path / "dry.yaml"
    path.write_text(POLICY.replace("mode: enforce", "mode: dry-run"))
    code, _ = _run("sweep", "--table", "tf-locks", "--policy", str(path), "--enforce")
    assert code == EXIT_CONFIG
    assert "says mode: dry-run" in capsys.readouterr().err
    assert stale in table_items(dynamodb)


def test_human_output_lists_locks_reasons_and_skipped_items(dynamodb, stale, policy):
    put(dynamodb, {"LockID": {"S": "tf-state/dev/bad.tfstate"}, "Info": {"S": "{oops"}})
    code, out = _run("sweep", "--table", "tf-locks", "--policy", policy)
    assert code == EXIT_OK
    assert STALE_PATH in out
    assert "would-reap" in out
    assert "- holder not running: the policy assumes the holder is gone" in out
    assert "tf-state/dev/bad.tfstate: Info is not valid JSON" in out
    assert "Summary: 1 locks, 1 digests, 1 skipped" in out


def test_locks_lists_with_default_policy(dynamodb, stale):
    code, out = _run("locks", "--table", "tf-locks")
    assert code == EXIT_OK
    header, row = out.splitlines()[1:3]
    assert header.split() == ["PATH", "ID", "WORKSPACE", "TABLE", "OPERATION", "WHO", "AGE", "STATUS"]
    lock_id = json.loads(stale["Info"]["S"])["ID"]
    assert row.split()[:6] == [
        STALE_PATH,
        lock_id[:8],
        "default",
        "tf-locks",
        "OperationTypeApply",
        "runner@ci-host-1",
    ]
    assert row.split()[6] in ("5h", "5h1s")
    # Past reap_after by its Created, but a run without --state-table first sees it now: it says so, not "blocked"
    assert row.split(None, 7)[7] == "stale, reap waits for 2h of observation*"
    assert "blocked" not in out


def test_explain_gives_every_reason(dynamodb, stale, policy):
    code, out = _run("explain", "--table", "tf-locks", "--policy", policy, STALE_PATH)
    assert code == EXIT_OK
    assert "Verdict   reap -> would-reap" in out
    assert "past reap_after 2h" in out
    assert f"terraform force-unlock -force {json.loads(stale['Info']['S'])['ID']}" in out
    code, out = _run("explain", "--table", "tf-locks", "--policy", policy, STALE_PATH, "--json")
    assert json.loads(out)["action"] == "reap"


def test_explain_of_a_digest_and_of_nothing(dynamodb, stale, policy, capsys):
    code, out = _run("explain", "--table", "tf-locks", "--policy", policy, STALE_PATH + "-md5")
    assert code == EXIT_OK
    assert "never touched" in out
    code, _ = _run("explain", "--table", "tf-locks", "--policy", policy, "tf-state/none")
    assert code == EXIT_NOT_FOUND
    assert "no item with LockID 'tf-state/none'" in capsys.readouterr().err


def test_state_table_remembers_first_seen_across_runs(dynamodb, stale, tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.replace("min_observed: 0s,", "min_observed: 1h,"))
    args = ("sweep", "--table", "tf-locks", "--policy", str(path), "--state-table", STATE_TABLE, "--json")
    first = json.loads(_run(*args)[1])["locks"][0]
    second = json.loads(_run(*args)[1])["locks"][0]
    assert first["first_seen"] == second["first_seen"]
    assert second["outcome"] == "blocked"
    assert any("under min_observed 1h" in r for r in second["reasons"])


def test_bad_policy_exits_2_naming_the_line(dynamodb, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("defaults:\n  reap_after: two hours\n")
    code, out = _run("sweep", "--table", "tf-locks", "--policy", str(path))
    assert code == EXIT_CONFIG
    assert out == ""
    assert f"{path}:2:15: defaults.reap_after: 'two hours' is not a duration" in capsys.readouterr().err


def test_missing_table_exits_3(dynamodb, policy, capsys):
    code, _ = _run("sweep", "--table", "nope", "--policy", policy)
    assert code == EXIT_AWS
    assert "cannot describe lock table 'nope': ResourceNotFoundException" in capsys.readouterr().err


def test_unreachable_endpoint_exits_3(aws_env, policy, capsys):
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    code, _ = _run("sweep", "--table", "t", "--policy", policy, "--endpoint-url", "http://127.0.0.1:9")
    assert code == EXIT_AWS
    assert "EndpointConnectionError" in capsys.readouterr().err


def test_enable_stream_turns_it_on_once_and_prints_the_arn(dynamodb):
    code, out = _run("enable-stream", "--table", "tf-locks", "--json")
    first = json.loads(out)
    assert code == EXIT_OK
    assert first["changed"] is True
    assert ":table/tf-locks/stream/" in first["stream_arn"]
    spec = dynamodb.describe_table(TableName="tf-locks")["Table"]["StreamSpecification"]
    assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    code, out = _run("enable-stream", "--table", "tf-locks")
    assert code == EXIT_OK
    assert f"LockTableStreamArns={first['stream_arn']}" in out
    assert "already enabled" in out


def test_enable_stream_refuses_to_change_another_view_type(dynamodb, capsys):
    dynamodb.update_table(
        TableName="tf-locks", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}
    )
    code, _ = _run("enable-stream", "--table", "tf-locks")
    assert code == EXIT_CONFIG
    assert "view type KEYS_ONLY" in capsys.readouterr().err
    spec = dynamodb.describe_table(TableName="tf-locks")["Table"]["StreamSpecification"]
    assert spec["StreamViewType"] == "KEYS_ONLY"


def test_a_one_off_cli_run_reaps_only_with_trust_holder_clock(dynamodb, stale, tmp_path):
    """Issue 13.1: without a state table the CLI first sees every lock now, and Created (the holder's clock) does
    not count toward reap_after unless the rule says trust_holder_clock: true."""
    path = tmp_path / "untrusting.yaml"
    path.write_text(POLICY.replace(", trust_holder_clock: true", ""))
    code, out = _run("sweep", "--table", "tf-locks", "--policy", str(path), "--enforce", "--json")
    [lock] = json.loads(out)["locks"]
    assert code == EXIT_OK
    assert lock["outcome"] == "blocked"
    assert (lock["age_basis"], lock["reap_age_basis"], lock["reap_age_seconds"]) == (
        "Created, the holder's clock",
        "first seen by the reaper",
        0,
    )
    assert any("only 0s by first seen by the reaper, under reap_after 2h" in r for r in lock["reasons"])
    assert stale in table_items(dynamodb)


def test_explain_with_a_state_table_records_nothing_and_locks_records_first_sightings(dynamodb, stale, policy):
    """Issue 13.12: explain only reads; locks (a dry-run sweep) records what it saw, as the README says."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "`explain` only reads" in readme  # what the README promises is what the CLI does
    _run("explain", "--table", "tf-locks", "--policy", policy, "--state-table", STATE_TABLE, STALE_PATH)
    assert table_items(dynamodb, STATE_TABLE) == []
    _run("locks", "--table", "tf-locks", "--state-table", STATE_TABLE)
    [record] = table_items(dynamodb, STATE_TABLE)
    assert record["lock_path"]["S"] == STALE_PATH
    assert "first_seen" in record
    assert stale in table_items(dynamodb)


def test_explain_shows_the_age_that_gates_the_reap(dynamodb, stale, policy):
    code, out = _run("explain", "--table", "tf-locks", "--policy", policy, STALE_PATH)
    assert code == EXIT_OK
    assert "Age       5h (by Created, the holder's clock)" in out
    assert "Reap age  5h (by Created, the holder's clock (trust_holder_clock); gates the reap)" in out
    payload = json.loads(_run("explain", "--table", "tf-locks", "--policy", policy, STALE_PATH, "--json")[1])
    assert (payload["table"], payload["reap_age_basis"]) == (
        "tf-locks",
        "Created, the holder's clock (trust_holder_clock)",
    )
    assert payload["scope"].endswith(":table/tf-locks")
