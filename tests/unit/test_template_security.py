"""template.yaml is secure by default: no IAM wildcard of our own, the stream read scoped to the lock tables'
streams, data encrypted at rest, logs kept for a bounded time, and every scanner skip explained."""

from __future__ import annotations

from typing import Any

import pytest
from cfn_template import function_statements, load_template

FUNCTIONS = ("SweeperFunction", "StreamFunction", "InteractionsFunction")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


_statements = function_statements


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_statement_grants_a_wildcard_action_or_resource(template, function):
    statements = list(_statements(template, function))
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert statement.get("Sid"), statement
        for action in _listed(statement["Action"]):
            assert "*" not in action, (statement["Sid"], action)
        if statement["Sid"] == "XRayWrite":
            # X-Ray has no resource-level permissions: "*" is the only resource it accepts (and the only one here).
            assert sorted(statement["Action"]) == ["xray:PutTelemetryRecords", "xray:PutTraceSegments"]
            continue
        if statement["Sid"] == "AuditLagRead":
            # CloudWatch's metric reads have no resource-level permissions (nor a namespace condition): "*" only, for
            # this one read-only action (the stream function's IteratorAge).
            assert statement["Action"] == ["cloudwatch:GetMetricStatistics"]
            continue
        for resource in _listed(statement["Resource"]):
            # Only a literal "*" (or an ARN ending in one) would be a wildcard; names with a `${Prefix}*` tail are
            # the documented prefixes (AlertTopicPrefix, SecretsPrefix/*) and are checked by name below.
            assert resource != "*", statement["Sid"]


@pytest.mark.parametrize(
    ("function", "group"),
    [
        ("SweeperFunction", "SweeperLogGroup"),
        ("StreamFunction", "StreamLogGroup"),
        ("InteractionsFunction", "InteractionsLogGroup"),
    ],
)
def test_each_function_has_an_explicit_role_with_no_managed_policy_writing_only_its_own_logs(template, function, group):
    """With a role of its own making SAM attaches nothing: no AWSLambdaBasicExecutionRole (logs on "*")."""
    resources = template["Resources"]
    role = resources[function]["Properties"]["Role"]["!GetAtt"].removesuffix(".Arn")
    assert resources[role]["Type"] == "AWS::IAM::Role"
    assert resources[role].get("Condition") == resources[function].get("Condition")
    assert "ManagedPolicyArns" not in resources[role]["Properties"]
    assert "Policies" not in resources[function]["Properties"]
    assert resources[function]["Properties"]["LoggingConfig"] == {"LogGroup": {"!Ref": group}}
    (logs,) = [s for s in _statements(template, function) if s["Sid"] == "OwnLogsWrite"]
    assert sorted(logs["Action"]) == ["logs:CreateLogStream", "logs:PutLogEvents"]
    assert logs["Resource"] == {"!GetAtt": f"{group}.Arn"}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_only_prefix_wildcards_are_the_alert_topics_and_secrets_under_their_prefixes(template, function):
    wildcards = set()
    for statement in _statements(template, function):
        if statement["Sid"] in ("XRayWrite", "OwnLogsWrite"):  # checked above and below: "*" for X-Ray, own streams
            continue
        if statement["Sid"] == "AuditLagRead":
            # CloudWatch's metric reads have no resource-level permissions (nor a namespace condition): "*" only, for
            # this one read-only action (the stream function's IteratorAge).
            assert statement["Action"] == ["cloudwatch:GetMetricStatistics"]
            continue
        for resource in _listed(statement["Resource"]):
            text = str(resource)
            if "*" in text and ".tflock" not in text and "/stream/*" not in text:
                wildcards.add((statement["Sid"], text))
    assert {sid for sid, _ in wildcards} == {"AlertPublish", "ChannelSecretsRead", "ChannelParametersRead"}
    for sid, text in wildcards:
        assert "${AlertTopicPrefix}*" in text or "${SecretsPrefix}/*" in text, sid


def test_the_stream_is_read_through_an_explicit_mapping_not_a_sam_event(template):
    """A SAM `DynamoDB` event would attach AWSLambdaDynamoDBExecutionRole: stream reads on every stream ("*")."""
    stream = template["Resources"]["StreamFunction"]
    assert "Events" not in stream["Properties"]
    mappings = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Lambda::EventSourceMapping"}
    # One per stream (their streams and settings: tests/unit/test_template_streams.py), each only with the function.
    assert [mappings[name]["Condition"] for name in sorted(mappings)] == [
        "HasLockTableStream",
        "HasLockTableStream2",
        "HasLockTableStream3",
        "HasLockTableStream4",
        "HasLockTableStream5",
    ]
    assert stream["Condition"] == "HasLockTableStream"
    for condition in ("HasLockTableStream2", "HasLockTableStream3", "HasLockTableStream4", "HasLockTableStream5"):
        assert {"!Condition": "HasLockTableStreamList"} in template["Conditions"][condition]["!And"], condition
    assert template["Conditions"]["HasLockTableStream"]["!Or"][0] == {"!Condition": "HasLockTableStreamList"}
    for properties in (mapping["Properties"] for mapping in mappings.values()):
        assert properties["FunctionName"] == {"!Ref": "StreamFunction"}
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {"!GetAtt": "StreamFailureQueue.Arn"}


def test_the_stream_role_reads_the_lock_tables_streams_only_and_sends_failures_to_its_queue(template):
    statements = {s["Sid"]: s for s in _statements(template, "StreamFunction")}
    read = statements["LockTableStreamRead"]
    assert sorted(read["Action"]) == [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    # Exactly the streams given (resolved for 1, 3 and 5 streams: tests/unit/test_template_streams.py).
    assert read["Resource"] == {
        "!If": ["HasLockTableStreamList", {"!Ref": "LockTableStreamArns"}, [{"!Ref": "LockTableStreamArn"}]]
    }
    send = statements["FailureQueueSend"]
    assert send["Action"] == ["sqs:SendMessage"]
    assert send["Resource"] == {"!GetAtt": "StreamFailureQueue.Arn"}


def test_data_at_rest_is_encrypted(template):
    resources = template["Resources"]
    assert resources["StateTable"]["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert resources["AlertTopic"]["Properties"]["KmsMasterKeyId"] == "alias/aws/sns"
    assert resources["StreamFailureQueue"]["Properties"]["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize(
    ("group", "function"),
    [
        ("SweeperLogGroup", "SweeperFunction"),
        ("StreamLogGroup", "StreamFunction"),
        ("InteractionsLogGroup", "InteractionsFunction"),
    ],
)
def test_each_function_has_its_log_group_with_a_retention(template, group, function):
    log_group = template["Resources"][group]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert template["Resources"][function]["Properties"]["LoggingConfig"] == {"LogGroup": {"!Ref": group}}
    assert log_group["Properties"]["RetentionInDays"] == {"!Ref": "LogRetentionDays"}
    assert log_group.get("Condition") == template["Resources"][function].get("Condition")


def test_every_scanner_skip_carries_its_reason(template):
    skips = [
        (name, skip)
        for name, resource in template["Resources"].items()
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]
    assert skips
    for name, skip in skips:
        assert skip["id"].startswith("CKV_"), name
        assert len(skip.get("comment", "").split()) >= 8, (name, skip["id"])  # a reason, not a placeholder
    ignored = {
        name: resource["Metadata"]["cfn-lint"]["config"]["ignore_checks"]
        for name, resource in template["Resources"].items()
        if "cfn-lint" in resource.get("Metadata", {})
    }
    # Each ignore is explained by a comment beside it in template.yaml; keep the list short and deliberate.
    assert ignored == {
        "StreamFailureQueue": ["ES6000"],
        # The functions name their log groups in LoggingConfig; WS1004 knows only groups named after a function.
        "SweeperFunction": ["WS1004"],
        "StreamFunction": ["WS1004"],
        "InteractionsFunction": ["WS1004"],
    }
