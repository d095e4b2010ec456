"""template.yaml routes the state buckets' lockfile events to the stream function, and only those."""

from __future__ import annotations

from typing import Any

import pytest
from cfn_template import function_policies, load_template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_rule_matches_lockfile_creations_and_deletions_in_the_state_buckets(template):
    rule = template["Resources"]["LockfileEventsRule"]
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    assert pattern["detail"]["bucket"]["name"] == {"!Ref": "StateBucketNames"}
    assert pattern["detail"]["object"]["key"] == [{"suffix": ".tflock"}]
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"!GetAtt": "StreamFunction.Arn"}


def test_the_lockfile_audit_exists_only_with_both_the_stream_function_and_the_buckets(template):
    assert template["Conditions"]["HasLockfileAudit"] == {
        "!And": [{"!Condition": "HasLockTableStream"}, {"!Condition": "HasStateBuckets"}]
    }
    for name in ("LockfileEventsRule", "LockfileEventsPermission", "LockfileEventsInvokeConfig"):
        assert template["Resources"][name]["Condition"] == "HasLockfileAudit", name


def test_the_stream_function_may_read_lockfiles_only_and_query_the_state_table(template):
    policies = function_policies(template, "StreamFunction")
    conditional = {
        s["!If"][1]["Sid"]: s["!If"][1]
        for policy in policies
        for s in policy["Statement"]
        if "!If" in s and s["!If"][0] == "HasStateBuckets"
    }
    assert conditional["LockfilesRead"]["Action"] == ["s3:GetObject"]
    assert "/*.tflock" in str(conditional["LockfilesRead"]["Resource"])
    assert conditional["StateTableQueryAcquisitions"]["Action"] == ["dynamodb:Query"]
