"""The audit's health read from the real signals (the stream's event source mapping, the failure queue, the
consumer's IteratorAge) on moto, and the deployed sweeper choosing incremental or full sweeps from them: its
acquisitions recorded by the stream function, its kind and reason in the result, the logs and the metrics."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from factories import lock_item
from fakes import FakeLambdaContext
from streams import stream_record
from tables import LOCK_TABLE, STATE_TABLE, put
from tflock_reaper.adapters.audit_health import AuditHealthProbe
from tflock_reaper.adapters.state_table import StateTable

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sweeper_schedule.json").read_text())


class Audit:
    """The stack's audit on moto: the lock table's stream, the stream function, its mapping and failure queue."""

    def __init__(self, dynamodb: Any) -> None:
        self.dynamodb = dynamodb
        table = dynamodb.update_table(
            TableName=LOCK_TABLE, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )["TableDescription"]
        self.table_arn = table["TableArn"]
        self.stream_arn = table["LatestStreamArn"]
        iam = boto3.client("iam", region_name="us-east-1")
        role = iam.create_role(
            RoleName="stream",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("stream_handler.py", "def lambda_handler(event, context):\n    return {}\n")
        self.lambda_ = boto3.client("lambda", region_name="us-east-1")
        self.lambda_.create_function(
            FunctionName="tflock-reaper-stream",
            Runtime="python3.12",
            Role=role,
            Handler="stream_handler.lambda_handler",
            Code={"ZipFile": code.getvalue()},
        )
        self.mapping = self.lambda_.create_event_source_mapping(
            EventSourceArn=self.stream_arn, FunctionName="tflock-reaper-stream", StartingPosition="TRIM_HORIZON"
        )["UUID"]
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.queue_url = self.sqs.create_queue(QueueName="tflock-reaper-stream-failures")["QueueUrl"]
        self.cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")

    def probe(self) -> AuditHealthProbe:
        return AuditHealthProbe(
            lambda_client=self.lambda_,
            sqs_client=self.sqs,
            cloudwatch_client=self.cloudwatch,
            mappings=[self.mapping],
            function_name="tflock-reaper-stream",
            queue_url=self.queue_url,
        )

    def lag(self, seconds: float) -> None:
        self.cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "IteratorAge",
                    "Dimensions": [{"Name": "FunctionName", "Value": "tflock-reaper-stream"}],
                    "Timestamp": datetime.now(UTC) - timedelta(seconds=30),
                    "Value": seconds * 1000,
                    "Unit": "Milliseconds",
                }
            ],
        )


@pytest.fixture
def audit(dynamodb: Any) -> Audit:
    return Audit(dynamodb)


def test_a_healthy_audit_reads_as_healthy(audit: Audit) -> None:
    health = audit.probe().health(audit.stream_arn)
    assert (health.consumer, health.failed_records, health.iterator_age, health.problem) == (True, 0, None, None)


def test_a_disabled_mapping_or_a_stream_it_does_not_read_is_no_consumer(audit: Audit) -> None:
    # A stream turned off and on again is a new stream: the mapping still names the old one.
    assert audit.probe().health(audit.stream_arn + "-new").consumer is False
    assert audit.probe().health(None).consumer is False
    audit.lambda_.update_event_source_mapping(UUID=audit.mapping, Enabled=False)
    assert audit.probe().health(audit.stream_arn).consumer is False


def test_the_failure_queue_and_the_lag_are_read(audit: Audit) -> None:
    audit.sqs.send_message(QueueUrl=audit.queue_url, MessageBody="{}")
    audit.sqs.send_message(QueueUrl=audit.queue_url, MessageBody="{}")
    audit.lag(420)
    health = audit.probe().health(audit.stream_arn)
    assert health.failed_records == 2
    assert health.iterator_age == timedelta(seconds=420)


def test_a_signal_that_cannot_be_read_is_a_problem_not_an_error(audit: Audit) -> None:
    probe = AuditHealthProbe(
        lambda_client=audit.lambda_,
        sqs_client=audit.sqs,
        cloudwatch_client=audit.cloudwatch,
        mappings=["00000000-0000-0000-0000-000000000000"],
        function_name="tflock-reaper-stream",
        queue_url=audit.queue_url,
    )
    health = probe.health(audit.stream_arn)
    assert health.problem is not None
    assert "ResourceNotFoundException" in health.problem


# -- the deployed sweeper ------------------------------------------------------------------------------------------
@pytest.fixture
def sweeper(audit: Audit, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    policy = tmp_path / "policy.yaml"
    policy.write_text("mode: dry-run\n")
    for name, value in {
        "LOCK_TABLE_NAME": LOCK_TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "POWERTOOLS_SERVICE_NAME": "tflock-reaper",
        "POWERTOOLS_METRICS_NAMESPACE": "TflockReaper",
        "AUDIT_STREAM_MAPPINGS": audit.mapping,
        "AUDIT_FUNCTION_NAME": "tflock-reaper-stream",
        "AUDIT_FAILURE_QUEUE_URL": audit.queue_url,
        "DEPLOYMENT_ID": "arn:aws:lambda:us-east-1:123456789012:layer:tflock-reaper-reaper:7",
    }.items():
        monkeypatch.setenv(name, value)
    import sweeper_handler  # noqa: PLC0415 - after the environment, as Lambda does
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    monkeypatch.setattr(sweeper_handler.metrics, "namespace", "TflockReaper")
    monkeypatch.setattr(sweeper_handler.metrics, "service", "tflock-reaper")
    get_settings.cache_clear()
    yield sweeper_handler.lambda_handler
    get_settings.cache_clear()


def _emf(out: str) -> dict[str, Any]:
    return next(json.loads(line) for line in out.splitlines() if line.startswith("{") and "FullSweeps" in line)


@pytest.fixture
def logs(sweeper: Any) -> Any:
    """What the function logs (Powertools binds its handler to the stdout of import time: redirect it)."""
    import sweeper_handler  # noqa: PLC0415

    buffer = io.StringIO()
    previous = sweeper_handler.logger.registered_handler.setStream(buffer)
    yield buffer
    sweeper_handler.logger.registered_handler.setStream(previous)


def _lines(buffer: io.StringIO, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def test_the_sweeper_reads_incrementally_what_the_stream_function_recorded(
    sweeper: Any, audit: Audit, dynamodb: Any, capsys: pytest.CaptureFixture[str], logs: io.StringIO
) -> None:
    put(dynamodb, lock_item("tf-state/a.tfstate"))
    first = sweeper(EVENT, FakeLambdaContext())
    assert first["sweep_kind"] == "full"
    assert "first sweep of this table" in first["sweep_reasons"][0]
    emf = _emf(capsys.readouterr().out)
    assert (emf["FullSweeps"], emf["IncrementalSweeps"]) == ([1.0], [0.0])

    # A run takes a lock; the stream function records its acquisition (and with it, puts it in the open set).
    taken = lock_item("tf-state/b.tfstate")
    put(dynamodb, taken)
    import stream_handler  # noqa: PLC0415

    record = stream_record("INSERT", new=taken, at=datetime.now(UTC))
    record["eventSourceARN"] = audit.stream_arn
    result = stream_handler.handle_batch({"Records": [record]}, FakeLambdaContext(), StateTable(dynamodb, STATE_TABLE))
    assert result == {"batchItemFailures": []}

    logs.truncate(0)
    logs.seek(0)
    second = sweeper(EVENT, FakeLambdaContext())
    assert second["sweep_kind"] == "incremental"
    [read] = _lines(logs, "lock source read")
    assert (read["source"], read["kind"], read["held"], read["items"]) == (LOCK_TABLE, "incremental", 2, 2)
    assert read["reason"].startswith("the audit is healthy")
    [complete] = _lines(logs, "sweep complete")
    assert complete["sweep_kind"] == "incremental"
    assert complete["sweep_reasons"] == [f"{LOCK_TABLE}: incremental, {read['reason']}"]
    assert second["summary"]["locks"] == 2  # the one the full sweep recorded and the one the stream did
    emf = _emf(capsys.readouterr().out)
    assert (emf["FullSweeps"], emf["IncrementalSweeps"]) == ([0.0], [1.0])

    audit.sqs.send_message(QueueUrl=audit.queue_url, MessageBody="{}")
    third = sweeper(EVENT, FakeLambdaContext())
    assert third["sweep_kind"] == "full"
    assert "1 new message(s) in the audit's failure queue" in third["sweep_reasons"][0]
    assert sweeper(EVENT, FakeLambdaContext())["sweep_kind"] == "incremental"

    audit.lag(600)
    lagging = sweeper(EVENT, FakeLambdaContext())
    assert lagging["sweep_kind"] == "full"
    assert "the audit lags: iterator age 10m" in lagging["sweep_reasons"][0]


def test_an_operator_can_ask_for_a_full_sweep(sweeper: Any, dynamodb: Any) -> None:
    put(dynamodb, lock_item("tf-state/a.tfstate"))
    sweeper(EVENT, FakeLambdaContext())
    assert sweeper(EVENT, FakeLambdaContext())["sweep_kind"] == "incremental"
    forced = sweeper({**EVENT, "full": True}, FakeLambdaContext())
    assert forced["sweep_kind"] == "full"
    assert forced["sweep_reasons"] == ["tf-locks: full, requested by the invocation"]
