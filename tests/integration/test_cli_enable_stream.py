"""`tflock-reaper enable-stream` for several lock tables (issue 17.1), against moto: each table's stream turned on
once, and the LockTableStreamArns value to deploy with, in the order the tables were given."""

from __future__ import annotations

import io
import json

import pytest
from tables import create_lock_table
from tflock_reaper.entrypoints.cli import EXIT_CONFIG, EXIT_OK, main

TABLES = ("tf-locks", "platform-locks", "data-locks")


def _run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture
def tables(dynamodb):
    for name in TABLES[1:]:
        create_lock_table(dynamodb, name)
    return dynamodb


def _stream(client, table: str) -> str | None:
    return client.describe_table(TableName=table)["Table"].get("LatestStreamArn")


def test_several_tables_repeated_or_comma_separated_give_one_value_in_their_order(tables):
    code, out = _run("enable-stream", "--table", "tf-locks", "--table", "platform-locks,data-locks", "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    arns = [_stream(tables, table) for table in TABLES]
    assert all(arns)
    assert report["lock_table_stream_arns"] == ",".join(arns)
    assert [(s["table"], s["stream_arn"], s["changed"]) for s in report["streams"]] == [
        (table, arn, True) for table, arn in zip(TABLES, arns, strict=True)
    ]
    assert "stream_arn" not in report  # the one-table keys are for one table only
    for table in TABLES:
        spec = tables.describe_table(TableName=table)["Table"]["StreamSpecification"]
        assert spec == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_the_text_output_says_what_changed_and_ends_with_the_parameter(tables):
    _run("enable-stream", "--table", "tf-locks")
    code, out = _run("enable-stream", "--table", "tf-locks,platform-locks,tf-locks")
    assert code == EXIT_OK
    lines = out.splitlines()
    assert lines[:2] == [
        "Stream already enabled on tf-locks (NEW_AND_OLD_IMAGES).",
        "Stream enabled on platform-locks (NEW_AND_OLD_IMAGES).",
    ]
    # Each table once, in the order given: the value's positions are the stack's event source mappings.
    assert lines[-1] == f"LockTableStreamArns={_stream(tables, 'tf-locks')},{_stream(tables, 'platform-locks')}"


def test_one_table_keeps_the_one_table_json_keys(tables):
    code, out = _run("enable-stream", "--table", "tf-locks", "--json")
    report = json.loads(out)
    assert code == EXIT_OK
    arn = _stream(tables, "tf-locks")
    assert (report["table"], report["stream_arn"], report["changed"]) == ("tf-locks", arn, True)
    assert report["lock_table_stream_arns"] == arn


def test_a_reader_that_is_neither_a_role_nor_an_account_is_refused_before_any_table_changes(tables, capsys):
    code, _ = _run("enable-stream", "--table", "tf-locks,platform-locks", "--grant-read-to", "arn:aws:iam::1:user/x")
    assert code == EXIT_CONFIG
    assert "neither an IAM role ARN" in capsys.readouterr().err
    assert _stream(tables, "tf-locks") is None
    assert _stream(tables, "platform-locks") is None


def test_an_empty_name_in_the_list_is_refused(tables, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["enable-stream", "--table", "tf-locks,,platform-locks"])
    assert exited.value.code == EXIT_CONFIG
    assert "empty name in the list" in capsys.readouterr().err
