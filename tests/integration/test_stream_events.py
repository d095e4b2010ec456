"""The stream function on the `events/stream_*.json` fixtures (captured from real Terraform, see
scripts/capture_stream_events.py), against moto's in-process state table: the event each one logs."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fakes import FakeLambdaContext
from streams import function_logs, logged_events
from tables import LOCK_TABLE, STATE_TABLE

EVENTS = Path(__file__).parents[2] / "events"
LOCK_PATH = "tf-state/dev/network/terraform.tfstate"
FOREIGN_PATH = "tf-state/migration-in-progress"
NAMESPACE = "TflockReaper"


def load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def server_time(record: dict) -> datetime:
    return datetime.fromtimestamp(record["dynamodb"]["ApproximateCreationDateTime"], tz=UTC)


def lock_info(record: dict) -> dict:
    image = record["dynamodb"].get("NewImage") or record["dynamodb"]["OldImage"]
    return json.loads(image["Info"]["S"])


@pytest.fixture
def stream_handler(monkeypatch):
    import stream_handler  # noqa: PLC0415

    # The namespace comes from POWERTOOLS_METRICS_NAMESPACE (template.yaml), read at first import.
    monkeypatch.setattr(stream_handler.metrics, "namespace", NAMESPACE)
    stream_handler.metrics.clear_metrics()
    yield stream_handler
    stream_handler.metrics.clear_metrics()


@pytest.fixture
def logs(stream_handler):
    """What the function logs."""
    with function_logs(stream_handler) as buffer:
        yield buffer


@pytest.fixture
def deliver(stream_handler, dynamodb, logs):
    """`deliver(name)`: handle_batch on the fixture with a StateTable on moto; returns the audit log lines."""
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415

    def run(name: str) -> list[dict]:
        result = stream_handler.handle_batch(load(name), FakeLambdaContext(), store=StateTable(dynamodb, STATE_TABLE))
        assert result == {"batchItemFailures": []}, logs.getvalue()
        return logged_events(logs.getvalue())

    return run


def state_items(dynamodb) -> list[dict]:
    return dynamodb.scan(TableName=STATE_TABLE, ConsistentRead=True)["Items"]


def test_every_fixture_is_a_lambda_dynamodb_stream_event():
    for path in sorted(EVENTS.glob("stream_*.json")):
        for record in json.loads(path.read_text())["Records"]:
            assert record["eventSource"] == "aws:dynamodb", path
            assert record["eventVersion"] == "1.1", path
            assert record["eventName"] in {"INSERT", "MODIFY", "REMOVE"}, path
            assert record["eventSourceARN"].startswith("arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks/stream/")
            assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int), path
            assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES", path


def test_lock_acquired(deliver, dynamodb):
    [record] = load("stream_lock_acquired.json")["Records"]
    info = lock_info(record)

    [line] = deliver("stream_lock_acquired.json")

    assert line["level"] == "INFO"
    assert line["message"] == line["event"] == "lock_acquired"
    assert line["lock_path"] == LOCK_PATH
    assert line["lock_id"] == info["ID"]
    assert (line["who"], line["operation"]) == (info["Who"], "OperationTypeApply")
    assert datetime.fromisoformat(line["lock_created"]) == datetime.fromisoformat(info["Created"])
    assert line["server_time"] == server_time(record).isoformat()
    [item] = state_items(dynamodb)
    assert (item["lock_path"]["S"], item["lock_id"]["S"]) == (LOCK_PATH, info["ID"])
    assert item["lock_scope"]["S"] == "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks"
    assert item["acquired_at"]["S"] == server_time(record).isoformat()


def test_lock_released_without_its_acquisition_on_record_is_timed_from_created(deliver):
    [record] = load("stream_lock_released.json")["Records"]
    info = lock_info(record)

    [line] = deliver("stream_lock_released.json")

    assert line["event"] == "lock_released"
    assert (line["lock_path"], line["lock_id"]) == (LOCK_PATH, info["ID"])
    assert line["released_by"] == "terraform"
    held = (server_time(record) - datetime.fromisoformat(info["Created"])).total_seconds()
    assert line["held_seconds"] == round(held, 3)


def test_digest_written(deliver, dynamodb):
    [record] = load("stream_digest_written.json")["Records"]

    [line] = deliver("stream_digest_written.json")

    assert line["event"] == "state_persisted"
    assert line["lock_path"] == LOCK_PATH  # the state's lock path, without -md5
    assert line["server_time"] == server_time(record).isoformat()
    [item] = state_items(dynamodb)
    assert (item["sk"]["S"], item["last_persisted_at"]["S"]) == ("PERSISTED", server_time(record).isoformat())


def test_foreign_item_is_ignored_with_its_reason(deliver, dynamodb):
    [line] = deliver("stream_foreign_item.json")

    assert line["level"] == "WARNING"
    assert line["event"] == "item_ignored"
    assert line["lock_path"] == FOREIGN_PATH
    assert "Info is not valid JSON" in line["reason"]
    # Nothing recorded of it but a request that the next sweep read every item: at a lock's key, it is an unreadable
    # lock, which the sweeps alert about, and incremental sweeps would not read it.
    [request] = state_items(dynamodb)
    assert request["sk"] == {"S": "RECONCILE"}
    assert request["full_requested"] == {"S": f"an unreadable lock was written at {FOREIGN_PATH}"}


def test_batch_pairs_the_release_with_its_acquisition_on_stream_time(deliver):
    acquired, digest, released, foreign = load("stream_batch.json")["Records"]

    lines = deliver("stream_batch.json")

    assert [(line["event"], line["lock_path"]) for line in lines] == [
        ("lock_acquired", LOCK_PATH),
        ("state_persisted", LOCK_PATH),
        ("lock_released", LOCK_PATH),
        ("item_ignored", FOREIGN_PATH),
    ]
    assert lines[0]["lock_id"] == lines[2]["lock_id"] == lock_info(acquired)["ID"]
    for line, record in zip(lines, (acquired, digest, released, foreign), strict=True):
        assert line["server_time"] == server_time(record).isoformat()
    assert lines[2]["held_seconds"] == (server_time(released) - server_time(acquired)).total_seconds()
    assert lines[2]["held_seconds"] == 3
    assert lines[2]["released_by"] == "terraform"


def test_lambda_handler_on_the_batch_emits_the_metrics(stream_handler, dynamodb, logs, monkeypatch, capsys):
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415
    from tflock_reaper.entrypoints.stream import default_store  # noqa: PLC0415

    monkeypatch.setenv("LOCK_TABLE_NAME", LOCK_TABLE)
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    get_settings.cache_clear()
    default_store.cache_clear()
    try:
        result = stream_handler.lambda_handler(load("stream_batch.json"), FakeLambdaContext())
    finally:
        get_settings.cache_clear()
        default_store.cache_clear()

    assert result == {"batchItemFailures": []}
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    [hold] = [blob for blob in emf if "LockHoldSeconds" in blob]
    assert (hold["LockHoldSeconds"], hold["operation"]) == ([3.0], "OperationTypeApply")
    [counts] = [blob for blob in emf if "LocksAcquired" in blob]
    assert counts["_aws"]["CloudWatchMetrics"][0]["Namespace"] == NAMESPACE
    for name in ("LocksAcquired", "LocksReleased", "StatePersisted", "RecordsIgnored"):
        assert counts[name] == [1.0], name
    # the acquisition (now released), the state's PERSISTED item, and the full sweep the unreadable item asks for
    assert len(state_items(dynamodb)) == 3
