"""``tflock-reaper locks`` reads like a listing; several tables at once; ``--fail-on``; explain's pasteable commands.
Against moto, through ``main()`` with real argv."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import lock_item
from http_stub import Reply, StubServer
from tables import LOCK_TABLE, STATE_TABLE, create_lock_table, put
from tflock_reaper.entrypoints.cli import EXIT_CONFIG, EXIT_FAIL_ON, EXIT_OK, main

OTHER_TABLE = "tf-locks-2"
OLD = "tf-state/env:/prod/network/terraform.tfstate"  # 3h
MIDDLE = "tf-state/env:/dev/app/terraform.tfstate"  # 1h
YOUNG = "tf-state/app/terraform.tfstate"  # 10m, the default workspace
OLD_ID = "aaaaaaaa-1111-4111-8111-111111111111"
GONE_POLICY = """\
mode: enforce
max_reaps_per_sweep: {max_reaps}
defaults: {{warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}}
rules:
  - match: "tf-state/*"
    holder: {{assume: gone}}
"""


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


def whole(age: str) -> str:
    """An age without the seconds the test itself took: ``3h1s`` -> ``3h``."""
    return re.sub(r"(?<=[hm])\d+s$", "", age)


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


def rows(out: str) -> list[list[str]]:
    """The table's data rows, split in columns (the STATUS column, last, may hold spaces)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("PATH "))
    data = []
    for line in lines[start + 1 :]:
        if not line.startswith("tf-state/"):
            break
        data.append(line.split(None, 7))
    return data


@pytest.fixture
def three(dynamodb) -> None:
    put(
        dynamodb,
        lock_item(MIDDLE, created=ago(hours=1)),
        lock_item(YOUNG, created=ago(minutes=10)),
        lock_item(OLD, created=ago(hours=3), lock_id=OLD_ID),
    )


@pytest.fixture
def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(GONE_POLICY.format(max_reaps=3))
    return str(path)


def test_locks_lists_oldest_first_with_id_workspace_table_and_status(three):
    code, out = run("locks", "--table", LOCK_TABLE)

    assert code == EXIT_OK
    assert out.splitlines()[0] == "Lock table tf-locks: mode dry-run"
    assert out.splitlines()[1].split() == ["PATH", "ID", "WORKSPACE", "TABLE", "OPERATION", "WHO", "AGE", "STATUS"]
    assert [(r[0], r[1], r[2], r[3], whole(r[6]), r[7]) for r in rows(out)] == [
        (OLD, "aaaaaaaa", "prod", LOCK_TABLE, "3h", "stale, reap waits for 2h of observation*"),
        (MIDDLE, rows(out)[1][1], "dev", LOCK_TABLE, "1h", "stale"),
        (YOUNG, rows(out)[2][1], "default", LOCK_TABLE, "10m", "ok"),
    ]
    # The asterisk is explained once, in words; nothing reads "blocked"
    assert "* This run has no memory of earlier sweeps (no --state-table): it sees every lock for the first" in out
    assert "blocked" not in out
    assert out.splitlines()[-1] == "Summary: 3 locks, 1 ok, 1 stale, 1 waiting"


def test_locks_sorted_by_path(three):
    code, out = run("locks", "--table", LOCK_TABLE, "--sort", "path")

    assert code == EXIT_OK
    assert [r[0] for r in rows(out)] == sorted([OLD, MIDDLE, YOUNG])


def test_filters_keep_stale_old_and_matching_locks(three):
    assert [r[0] for r in rows(run("locks", "--table", LOCK_TABLE, "--stale")[1])] == [OLD, MIDDLE]
    assert [r[0] for r in rows(run("locks", "--table", LOCK_TABLE, "--older-than", "2h")[1])] == [OLD]
    code, out = run("locks", "--table", LOCK_TABLE, "--path", "tf-state/env:/*/*")
    assert [r[0] for r in rows(out)] == [OLD, MIDDLE]
    assert out.splitlines()[-1] == "Summary: 3 locks, 1 ok, 1 stale, 1 waiting (2 shown)"
    code, out = run("locks", "--table", LOCK_TABLE, "--path", "nothing/*", "--json")
    assert (code, json.loads(out)["locks"]) == (EXIT_OK, [])


def test_a_bad_duration_is_a_usage_error(three, capsys):
    with pytest.raises(SystemExit) as exited:
        run("locks", "--table", LOCK_TABLE, "--older-than", "two hours")
    assert exited.value.code == EXIT_CONFIG
    assert "argument --older-than: 'two hours' is not a duration" in capsys.readouterr().err


def test_json_gives_each_lock_its_table_and_status(three):
    code, out = run("locks", "--table", LOCK_TABLE, "--output", "json")

    assert code == EXIT_OK
    locks = json.loads(out)["locks"]
    assert [(lk["path"], lk["table"], lk["status"]) for lk in locks] == [
        (OLD, LOCK_TABLE, "waiting"),
        (MIDDLE, LOCK_TABLE, "stale"),
        (YOUNG, LOCK_TABLE, "ok"),
    ]
    assert locks[0]["status_text"] == "stale, reap waits for 2h of observation*"
    aliased = json.loads(run("locks", "--table", LOCK_TABLE, "--json")[1])  # --json: the same as --output json
    assert [(lk["path"], lk["status"]) for lk in aliased["locks"]] == [(lk["path"], lk["status"]) for lk in locks]


def test_with_the_state_table_it_says_how_much_longer(three):
    code, out = run("locks", "--table", LOCK_TABLE, "--state-table", STATE_TABLE)

    assert code == EXIT_OK
    assert rows(out)[0][7] == "stale, reap waits for 2h more"
    assert "no memory" not in out


def test_several_tables_repeated_or_comma_separated_each_named(dynamodb, policy):
    """Issue 15.4: --table used to keep only the last one given."""
    create_lock_table(dynamodb, OTHER_TABLE)
    put(dynamodb, lock_item(OLD, created=ago(hours=3), lock_id=OLD_ID))
    dynamodb.put_item(TableName=OTHER_TABLE, Item=lock_item(OLD, created=ago(hours=1)))

    for tables in (["--table", LOCK_TABLE, "--table", OTHER_TABLE], ["--table", f"{LOCK_TABLE},{OTHER_TABLE}"]):
        code, out = run("locks", *tables, "--json")
        assert code == EXIT_OK
        report = json.loads(out)
        assert report["table"] == f"{LOCK_TABLE}, {OTHER_TABLE}"
        assert [(lk["path"], lk["table"]) for lk in report["locks"]] == [(OLD, LOCK_TABLE), (OLD, OTHER_TABLE)]

    code, out = run("locks", "--table", f"{LOCK_TABLE},{OTHER_TABLE}")
    assert out.splitlines()[0] == f"Lock tables {LOCK_TABLE}, {OTHER_TABLE}: mode dry-run"
    assert [r[3] for r in rows(out)] == [LOCK_TABLE, OTHER_TABLE]

    code, out = run("sweep", "--table", f"{LOCK_TABLE},{OTHER_TABLE}", "--policy", policy)
    assert code == EXIT_OK
    assert [(r[0], r[2]) for r in rows(out)] == [(OLD, LOCK_TABLE), (OLD, OTHER_TABLE)]
    assert f"{OLD} (aaaaaaaa, {LOCK_TABLE}): would-reap" in out.splitlines()


def test_fail_on_stale_exits_4_after_the_whole_listing(three, capsys):
    code, out = run("locks", "--table", LOCK_TABLE, "--fail-on", "stale")

    assert code == EXIT_FAIL_ON
    assert len(rows(out)) == 3
    assert capsys.readouterr().err == "tflock-reaper: --fail-on stale: 2 stale or unreadable lock(s)\n"
    # Only the locks shown count
    assert run("locks", "--table", LOCK_TABLE, "--path", YOUNG, "--fail-on", "stale")[0] == EXIT_OK


def test_fail_on_blocked_ignores_a_reap_that_only_waits_for_observation(three):
    assert run("locks", "--table", LOCK_TABLE, "--fail-on", "blocked")[0] == EXIT_OK


@pytest.fixture
def running_holder(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = StubServer().start()
    server.reply(Reply(200, '{"running": true}', {"Content-Type": "application/json"}))
    yield server
    server.stop()


def test_a_live_holder_reads_in_use_and_fails_on_blocked(three, running_holder, tmp_path, capsys):
    path = tmp_path / "http.yaml"
    path.write_text(
        "defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}\n"
        f'rules: [{{match: "tf-state/*", holder: {{http: {{url: "{running_holder.url("/running")}"}}}}}}]\n'
    )

    code, out = run("locks", "--table", LOCK_TABLE, "--policy", str(path), "--fail-on", "stale,blocked")

    assert code == EXIT_FAIL_ON
    assert rows(out)[0][7] == "in use: holder running"
    assert "blocked" not in out
    assert capsys.readouterr().err.splitlines() == [
        "tflock-reaper: --fail-on stale: 2 stale or unreadable lock(s)",
        "tflock-reaper: --fail-on blocked: 1 lock(s) whose reap is blocked",
    ]


def test_fail_on_breaker(dynamodb, tmp_path, capsys):
    put(dynamodb, *(lock_item(f"tf-state/{n}.tfstate", created=ago(hours=3)) for n in range(2)))
    path = tmp_path / "tight.yaml"
    path.write_text(GONE_POLICY.format(max_reaps=1))

    code, out = run("sweep", "--table", LOCK_TABLE, "--policy", str(path), "--fail-on", "breaker", "--json")

    assert code == EXIT_FAIL_ON
    assert json.loads(out)["breaker"].startswith("circuit breaker: 2 locks qualify for reaping")
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("tflock-reaper: --fail-on breaker: circuit breaker: 2 locks qualify")
    code, out = run("locks", "--table", LOCK_TABLE, "--policy", str(path))
    assert rows(out)[0][7] == "stale, not reaped: circuit breaker"


def test_fail_on_notify_failed(alerts, tmp_path, capsys):
    prod = "tf-state/prod/network/terraform.tfstate"
    from boto3 import client  # noqa: PLC0415 - the mock_aws of the alerts fixture

    put(client("dynamodb", region_name="us-east-1"), lock_item(prod, created=ago(minutes=45)))
    alerts.slack.reply(Reply(400, "invalid_blocks"))
    argv = ["sweep", "--table", LOCK_TABLE, "--region", "us-east-1", "--policy", str(alerts.policy_path)]

    code, out = run(*argv, "--notify", "--fail-on", "notify-failed")

    assert code == EXIT_FAIL_ON
    assert "    > stale -> slack (failed), sns (sent), pagerduty (sent)" in out.splitlines()
    assert capsys.readouterr().err.endswith("tflock-reaper: --fail-on notify-failed: 1 alert(s) not delivered\n")


def test_fail_on_takes_only_what_the_command_can_check(three, capsys):
    with pytest.raises(SystemExit):
        run("locks", "--table", LOCK_TABLE, "--fail-on", "notify-failed")
    assert "notify-failed: choose from stale, blocked, breaker" in capsys.readouterr().err


def test_explain_prints_commands_that_can_be_pasted(three, policy):
    code, out = run("explain", "--table", LOCK_TABLE, "--policy", policy, OLD)

    assert code == EXIT_OK
    lines = out.splitlines()
    at = lines.index("By hand, from the root module that uses this state:")
    assert lines[at + 1 :] == [
        f"  terraform workspace select prod && terraform force-unlock -force {OLD_ID}",
        "or from anywhere (deletes this acquisition only, conditionally; logged and recorded):",
        f"  tflock-reaper unlock {OLD} --id {OLD_ID} --table {LOCK_TABLE}",
    ]
    payload = json.loads(run("explain", "--table", LOCK_TABLE, "--policy", policy, OLD, "--json")[1])
    assert (
        payload["force_unlock_command"] == f"terraform workspace select prod && terraform force-unlock -force {OLD_ID}"
    )
    assert payload["unlock_command"] == f"tflock-reaper unlock {OLD} --id {OLD_ID} --table {LOCK_TABLE}"
    # A lock the verdict keeps has nothing to release
    young = json.loads(run("explain", "--table", LOCK_TABLE, "--policy", policy, YOUNG, "--json")[1])
    assert (young["force_unlock_command"], young["unlock_command"]) == (None, None)


def test_explain_looks_in_each_table_given(dynamodb, policy):
    create_lock_table(dynamodb, OTHER_TABLE)
    dynamodb.put_item(TableName=OTHER_TABLE, Item=lock_item(OLD, created=ago(hours=3), lock_id=OLD_ID))

    code, out = run("explain", "--table", f"{LOCK_TABLE},{OTHER_TABLE}", "--policy", policy, OLD, "--json")

    assert code == EXIT_OK
    assert (json.loads(out)["table"], json.loads(out)["id"]) == (OTHER_TABLE, OLD_ID)


def test_a_lock_kept_by_its_holder_check_is_not_reaped_in_words_and_counts_for_fail_on_blocked(dynamodb, tmp_path):
    """The listing's summary counts by status, in the STATUS column's words: a live lock whose holder is unknown is
    "not-reaped", never "blocked" (which only --fail-on says)."""
    put(dynamodb, lock_item("tf-state/prod/app.tfstate", created=datetime.now(UTC) - timedelta(hours=5)))
    policy = tmp_path / "policy.yaml"
    policy.write_text("defaults: {warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}\n")

    code, out = run("locks", "--table", LOCK_TABLE, "--policy", str(policy))

    assert code == EXIT_OK
    assert "stale, not reaped: holder unknown" in out
    assert "Summary: 1 locks, 1 not-reaped" in out
    assert "blocked" not in out
    assert run("locks", "--table", LOCK_TABLE, "--policy", str(policy), "--fail-on", "blocked")[0] == EXIT_FAIL_ON
