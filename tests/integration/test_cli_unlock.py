"""``tflock-reaper unlock LOCK_PATH --id LOCK_ID``: one acquisition released by hand, through the sweep's own reap
(the conditional delete, the state record, the ``lock reaped`` log line, the ``reaped`` alert), against moto."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from factories import digest_item, go_time, lock_info, lock_item
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.entrypoints.cli import EXIT_CONFIG, EXIT_DECLINED, EXIT_NOT_FOUND, EXIT_OK, main

PATH = "tf-state/env:/dev/network/terraform.tfstate"
LOCK_ID = "8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d"
BUCKET = "tf-state"


class Terminal(io.StringIO):
    """A stream that says it is a terminal (what a person at a prompt has)."""

    def isatty(self) -> bool:
        return True


def unlock(*argv: str, stdin: io.StringIO | None = None, err: io.StringIO | None = None) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["unlock", *argv], out=out, stdin=stdin or io.StringIO(), err=err)
    return code, out.getvalue()


@pytest.fixture
def held(dynamodb) -> dict[str, Any]:
    item = lock_item(PATH, created=datetime.now(UTC) - timedelta(hours=5), lock_id=LOCK_ID)
    put(dynamodb, item, digest_item(PATH))
    return item


def test_unlock_deletes_that_acquisition_records_it_and_logs_the_full_item(dynamodb, held, capsys):
    code, out = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, "--state-table", STATE_TABLE, "--yes")

    assert code == EXIT_OK
    assert out.splitlines()[0] == f"Unlocked {PATH} (ID {LOCK_ID}, {LOCK_TABLE})."
    assert table_items(dynamodb) == [digest_item(PATH)]  # the digest is never touched
    [record] = table_items(dynamodb, STATE_TABLE)
    assert record["reap_status"] == {"S": "reaped"}
    assert record["reaped_item"] == {"M": held}
    [reason] = [r["S"] for r in record["reap_reasons"]["L"]]
    assert reason.startswith(f"released by hand: tflock-reaper unlock --id {LOCK_ID}, run by ")
    log = capsys.readouterr().err
    [line] = [line for line in log.splitlines() if line.startswith("tflock-reaper WARNING lock reaped ")]
    fields = json.loads(line.removeprefix("tflock-reaper WARNING lock reaped "))
    assert (fields["lock_path"], fields["lock_id"], fields["lock_table"]) == (PATH, LOCK_ID, LOCK_TABLE)
    assert fields["deleted_item"] == held


def test_unlock_json_says_what_was_deleted(dynamodb, held):
    code, out = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes", "--output", "json")

    payload = json.loads(out)
    assert code == EXIT_OK
    assert (payload["unlocked"], payload["outcome"], payload["id"]) == (True, "reaped", LOCK_ID)
    assert payload["deleted_item"] == held


def test_another_id_is_refused_showing_the_lock_there_now(dynamodb, held, capsys):
    code, out = unlock(PATH, "--id", "0f0f0f0f-aaaa-bbbb-cccc-dddddddddddd", "--table", LOCK_TABLE, "--yes")

    assert (code, out) == (EXIT_NOT_FOUND, "")
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (
        f"tflock-reaper: '{PATH}' is not locked with ID '0f0f0f0f-aaaa-bbbb-cccc-dddddddddddd': another "
        "acquisition holds it: nothing deleted"
    )
    assert f"Held now, by another acquisition (ID {LOCK_ID}):" in err
    assert "  Who       runner@ci-host-1" in err
    assert held in table_items(dynamodb)


def test_a_digest_is_refused(dynamodb, held, capsys):
    code, _ = unlock(PATH + "-md5", "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes")

    assert code == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    assert "what is there is not a lock unlock may delete: nothing deleted" in err
    assert f"{PATH}-md5: Terraform's state digest item, not a lock: never deleted" in err
    assert digest_item(PATH) in table_items(dynamodb)


def test_an_item_that_is_not_a_lock_is_refused(dynamodb, capsys):
    foreign = {"LockID": {"S": "tf-state/other"}, "Owner": {"S": "someone else's tool"}}
    put(dynamodb, foreign)

    code, _ = unlock("tf-state/other", "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes")

    assert code == EXIT_NOT_FOUND
    assert "tf-state/other: not a Terraform lock (item has no Info attribute" in capsys.readouterr().err
    assert table_items(dynamodb) == [foreign]


def test_an_unreadable_lock_is_refused_and_shown_for_a_human(dynamodb, capsys):
    broken = {"LockID": {"S": PATH}, "Info": {"S": '{"ID": "' + LOCK_ID + '", oops'}}
    put(dynamodb, broken)

    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes")

    assert code == EXIT_NOT_FOUND
    err = capsys.readouterr().err
    assert f"{PATH}: a lock that cannot be read (Info is not valid JSON" in err
    assert json.dumps(broken, sort_keys=True) in err
    assert table_items(dynamodb) == [broken]


def test_a_lock_key_ending_in_md5_is_refused(dynamodb, capsys):
    path = "tf-state/odd-md5"
    item = lock_item(path, lock_id=LOCK_ID, created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, item)

    code, _ = unlock(path, "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes")

    assert code == EXIT_NOT_FOUND
    assert "ends in -md5, as Terraform's digest items do: unlock never deletes such a key" in capsys.readouterr().err
    assert table_items(dynamodb) == [item]


def test_nothing_there(dynamodb, capsys):
    code, _ = unlock("tf-state/none", "--id", LOCK_ID, "--table", LOCK_TABLE, "--yes")

    assert code == EXIT_NOT_FOUND
    assert capsys.readouterr().err == "tflock-reaper: no lock at 'tf-state/none' in tf-locks: nothing deleted\n"


def test_off_a_terminal_without_yes_it_refuses_before_reading(dynamodb, held, capsys):
    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE)

    assert code == EXIT_CONFIG
    assert capsys.readouterr().err == (
        "tflock-reaper: unlock deletes a lock and asks first, but stdin or stderr is not a terminal, so nobody can "
        "answer: add --yes to unlock without a question\n"
    )
    assert held in table_items(dynamodb)


def test_on_a_terminal_it_shows_the_lock_and_deletes_only_on_yes(dynamodb, held):
    err = Terminal()
    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, stdin=Terminal("no\n"), err=err)

    assert code == EXIT_DECLINED
    shown = err.getvalue()
    assert shown.startswith(
        f"tflock-reaper will delete this lock:\n  Lock      {PATH}  (backend dynamodb, in tf-locks)"
    )
    assert f"  ID        {LOCK_ID}\n" in shown
    assert "Delete this lock? Only 'yes' will be accepted.\n  Enter a value: " in shown
    assert shown.endswith("Not confirmed: nothing deleted.\n")
    assert held in table_items(dynamodb)

    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, stdin=Terminal("yes\n"), err=Terminal())

    assert code == EXIT_OK
    assert table_items(dynamodb) == [digest_item(PATH)]


def test_a_lock_released_and_taken_again_while_the_question_waits_is_left_alone(dynamodb, held):
    """terraform force-unlock compares IDs, then deletes whatever is there. unlock deletes only the lock it showed."""
    newer = lock_item(PATH, lock_id="b1b1b1b1-0000-4000-8000-000000000000", created=datetime.now(UTC))

    class Meanwhile(Terminal):
        def readline(self, size: int = -1) -> str:
            # While the operator reads the prompt, the holder releases and another run takes the lock
            dynamodb.delete_item(TableName=LOCK_TABLE, Key={"LockID": {"S": PATH}})
            put(dynamodb, newer)
            return "yes\n"

    terminal = Terminal()
    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, stdin=Meanwhile(), err=terminal)

    assert code == EXIT_NOT_FOUND
    err = terminal.getvalue()
    assert (
        f"tflock-reaper: '{PATH}' changed after it was read (not deleted: the lock was released or re-acquired" in err
    )
    assert "  ID        b1b1b1b1-0000-4000-8000-000000000000" in err  # what is held now
    assert newer in table_items(dynamodb)


def test_a_dual_backend_loses_both_sides_the_lockfile_first(dynamodb, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    body = json.dumps(lock_info(PATH, lock_id=LOCK_ID, created=go_time(datetime.now(UTC))), separators=(",", ":"))
    s3.put_object(Bucket=BUCKET, Key=PATH.split("/", 1)[1] + ".tflock", Body=body)
    put(dynamodb, {"LockID": {"S": PATH}, "Info": {"S": body}})

    code, out = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, "--bucket", BUCKET, "--yes")

    assert code == EXIT_OK
    assert out.splitlines()[0] == f"Unlocked {PATH} (ID {LOCK_ID}, {LOCK_TABLE} + s3://{BUCKET})."
    assert s3.list_objects_v2(Bucket=BUCKET).get("Contents", []) == []
    assert table_items(dynamodb) == []
    log = capsys.readouterr().err
    [line] = [line for line in log.splitlines() if line.startswith("tflock-reaper WARNING lock reaped ")]
    fields = json.loads(line.removeprefix("tflock-reaper WARNING lock reaped "))
    assert fields["backend"] == "dual"
    assert [item.get("Lockfile", {}).get("S") for item in fields["deleted_items"]] == [
        f"s3://{BUCKET}/{PATH.split('/', 1)[1]}.tflock",
        None,
    ]


def test_notify_sends_the_reaped_alert(alerts, capsys):
    prod = "tf-state/prod/network/terraform.tfstate"
    item = lock_item(prod, created=datetime.now(UTC) - timedelta(hours=5), lock_id=LOCK_ID)
    put(boto3.client("dynamodb", region_name="us-east-1"), item)

    code, out = unlock(
        prod,
        "--id",
        LOCK_ID,
        "--table",
        LOCK_TABLE,
        "--region",
        "us-east-1",
        "--notify",
        "--policy",
        str(alerts.policy_path),
        "--yes",
    )

    assert code == EXIT_OK, capsys.readouterr().err
    assert "  > reaped -> slack (sent), sns (sent), pagerduty (sent)" in out.splitlines()
    [post] = alerts.slack_posts()
    assert post["blocks"][0]["text"]["text"].startswith("Stale Terraform lock reaped")
    [message] = alerts.sns_messages()
    assert message["MessageAttributes"]["event"]["Value"] == "reaped"


def test_notify_needs_the_policy(dynamodb, held, capsys):
    code, _ = unlock(PATH, "--id", LOCK_ID, "--table", LOCK_TABLE, "--notify", "--yes")

    assert code == EXIT_CONFIG
    assert "give the policy (--policy)" in capsys.readouterr().err
    assert held in table_items(dynamodb)
