"""template.yaml audits every lock table (issue 17.1): one event source mapping per stream of LockTableStreamArns (the
deprecated LockTableStreamArn keeps its mapping), the stream function reading exactly those streams, and the sweeper's
audit health reading exactly those mappings. Each case is the template deployed with the given parameters: its
conditions decided and its intrinsic functions resolved (cfn_template.Deployment)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfn_template import Deployment, deploy, deployed_statements, load_template

#: Five lock tables' streams: four of this stack's account (111111111111, cfn_template.PSEUDO's) and one of another.
STREAMS = (
    "arn:aws:dynamodb:eu-west-1:111111111111:table/terraform-locks/stream/2026-01-15T09:30:00.123",
    "arn:aws:dynamodb:eu-west-1:111111111111:table/platform-locks/stream/2026-02-01T00:00:00.001",
    "arn:aws:dynamodb:eu-west-1:222222222222:table/terraform-locks/stream/2026-03-10T12:00:00.000",
    "arn:aws:dynamodb:eu-west-1:111111111111:table/data-locks/stream/2026-04-01T08:15:42.999",
    "arn:aws:dynamodb:eu-west-1:111111111111:table/net.locks_v2/stream/2026-05-05T05:05:05.505",
)
#: The mappings, in the order of their streams: the first keeps the id of the one mapping 0.x deployed.
MAPPINGS = tuple(["StreamFunctionLockTableStream"] + [f"StreamFunctionLockTableStream{i}" for i in range(2, 6)])
ESM = "AWS::Lambda::EventSourceMapping"


def _mappings(deployment: Deployment) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in deployment.resources.items() if r["Type"] == ESM}


def _mapping_arn(name: str) -> str:
    # cfn_template resolves a resource's Ref to "ref:<LogicalId>": a mapping's Ref is its UUID.
    return f"arn:aws:lambda:eu-west-1:111111111111:event-source-mapping:ref:{name}"


@pytest.mark.parametrize("count", [1, 3, 5])
def test_each_stream_given_gets_its_own_mapping_in_order(count):
    deployment = deploy({"LockTableStreamArns": ",".join(STREAMS[:count])})
    assert deployment.failed_rules() == []
    mappings = _mappings(deployment)
    assert list(mappings) == list(MAPPINGS[:count])
    assert [m["EventSourceArn"] for m in mappings.values()] == list(STREAMS[:count])


@pytest.mark.parametrize("count", [1, 3, 5])
def test_the_stream_function_reads_exactly_the_streams_given(count):
    deployment = deploy({"LockTableStreamArns": ",".join(STREAMS[:count])})
    read = deployed_statements(deployment, "StreamRole")["LockTableStreamRead"]
    assert sorted(read["Action"]) == [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    assert read["Resource"] == list(STREAMS[:count])


@pytest.mark.parametrize("count", [1, 3, 5])
def test_the_sweeper_reads_exactly_the_mappings_and_is_told_them_all(count):
    deployment = deploy({"LockTableStreamArns": ",".join(STREAMS[:count])})
    read = deployed_statements(deployment, "SweeperRole")["AuditMappingRead"]
    assert read["Action"] == ["lambda:GetEventSourceMapping"]
    assert read["Resource"] == [_mapping_arn(name) for name in MAPPINGS[:count]]
    env = deployment.resources["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUDIT_STREAM_MAPPINGS"] == ",".join(f"ref:{name}" for name in MAPPINGS[:count])


def test_every_mapping_has_the_same_retries_bisection_and_failure_destination():
    mappings = _mappings(deploy({"LockTableStreamArns": ",".join(STREAMS)}))
    first = mappings[MAPPINGS[0]]
    assert first["FunctionName"] == "ref:StreamFunction"
    assert first["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (first["BisectBatchOnFunctionError"], first["MaximumRetryAttempts"]) == (True, 5)
    assert first["DestinationConfig"] == {"OnFailure": {"Destination": "StreamFailureQueue.Arn"}}
    for name, mapping in mappings.items():
        assert {k: v for k, v in mapping.items() if k != "EventSourceArn"} == {
            k: v for k, v in first.items() if k != "EventSourceArn"
        }, name


def test_the_deprecated_parameter_keeps_its_mapping_its_read_and_its_health():
    """A 0.x deployment (LockTableStreamArn) updated with the same parameters: the same mapping, the same stream."""
    deployment = deploy({"LockTableStreamArn": STREAMS[0]})
    assert deployment.failed_rules() == []
    assert _mappings(deployment) == {MAPPINGS[0]: _mappings(deploy({"LockTableStreamArns": STREAMS[0]}))[MAPPINGS[0]]}
    assert _mappings(deployment)[MAPPINGS[0]]["EventSourceArn"] == STREAMS[0]
    assert deployed_statements(deployment, "StreamRole")["LockTableStreamRead"]["Resource"] == [STREAMS[0]]
    assert deployed_statements(deployment, "SweeperRole")["AuditMappingRead"]["Resource"] == [_mapping_arn(MAPPINGS[0])]
    env = deployment.resources["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUDIT_STREAM_MAPPINGS"] == f"ref:{MAPPINGS[0]}"


def test_moving_to_the_list_keeps_the_first_mapping_unchanged():
    """LockTableStreamArn=A, then LockTableStreamArns=A,B: the first mapping's properties do not change (an
    EventSourceArn change would replace it and re-read its stream), and B gets a mapping of its own."""
    before = _mappings(deploy({"LockTableStreamArn": STREAMS[0]}))
    after = _mappings(deploy({"LockTableStreamArns": ",".join(STREAMS[:2])}))
    assert after[MAPPINGS[0]] == before[MAPPINGS[0]]
    assert after[MAPPINGS[1]]["EventSourceArn"] == STREAMS[1]


def test_both_parameters_are_refused_unless_the_list_holds_the_deprecated_one():
    refused = deploy({"LockTableStreamArn": STREAMS[0], "LockTableStreamArns": ",".join(STREAMS[1:3])})
    [reason] = refused.failed_rules()
    assert "LockTableStreamArns" in reason
    accepted = deploy({"LockTableStreamArn": STREAMS[0], "LockTableStreamArns": ",".join(STREAMS[:2])})
    assert accepted.failed_rules() == []
    assert [m["EventSourceArn"] for m in _mappings(accepted).values()] == list(STREAMS[:2])


def test_without_a_stream_there_is_no_audit_and_no_audit_read():
    deployment = deploy({"LockTableNames": "terraform-locks"})
    assert deployment.failed_rules() == []
    assert _mappings(deployment) == {}
    assert "StreamFunction" not in deployment.resources
    assert "StreamRole" not in deployment.resources
    assert "AuditMappingRead" not in deployed_statements(deployment, "SweeperRole")
    env = deployment.resources["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["AUDIT_STREAM_MAPPINGS"] == ""


def test_another_accounts_stream_is_accepted_and_its_reader_role_is_an_output():
    deployment = deploy({"LockTableStreamArns": STREAMS[2]})
    assert _mappings(deployment)[MAPPINGS[0]]["EventSourceArn"] == STREAMS[2]
    outputs = load_template()["Outputs"]
    assert outputs["StreamRoleArn"] == {
        "Condition": "HasLockTableStream",
        "Description": outputs["StreamRoleArn"]["Description"],
        "Value": {"!GetAtt": "StreamRole.Arn"},
    }


@pytest.mark.parametrize("parameter", ["LockTableStreamArns", "LockTableStreamArn"])
def test_the_stream_parameters_accept_stream_arns_and_nothing_with_a_wildcard(parameter):
    pattern = re.compile(load_template()["Parameters"][parameter]["AllowedPattern"])
    for arn in (*STREAMS, ""):
        assert pattern.fullmatch(arn), arn
    for wrong in (
        "arn:aws:dynamodb:eu-west-1:111111111111:table/terraform-locks/stream/*",
        "arn:aws:dynamodb:eu-west-1:111111111111:table/*/stream/2026-01-15T09:30:00.123",
        "arn:aws:dynamodb:eu-west-1:111111111111:table/terraform-locks",
        "arn:aws:kinesis:eu-west-1:111111111111:stream/terraform-locks",
    ):
        assert not pattern.fullmatch(wrong), wrong
