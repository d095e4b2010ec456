"""template.yaml grants the sweeper exactly the reads the AWS holder checks make, on the listed targets only."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfn_template import function_policies, load_template
from tflock_reaper.adapters.holders.aws_ci import IAM_ACTIONS


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _statements(template: dict[str, Any], function: str) -> list[Any]:
    policies = function_policies(template, function)
    return [statement for policy in policies for statement in policy["Statement"]]


def _conditional(template: dict[str, Any], condition: str) -> dict[str, Any]:
    found = [
        s["!If"][1]
        for s in _statements(template, "SweeperFunction")
        if isinstance(s, dict) and "!If" in s and s["!If"][0] == condition
    ]
    assert len(found) == 1, f"one statement under {condition}"
    return found[0]


@pytest.mark.parametrize(
    ("kind", "parameter", "condition", "sid"),
    [
        ("codebuild", "HolderCodeBuildProjects", "HasHolderCodeBuildProjects", "HolderCodeBuildRead"),
        ("codepipeline", "HolderCodePipelines", "HasHolderCodePipelines", "HolderCodePipelineRead"),
    ],
)
def test_each_check_kind_gets_exactly_its_reads_on_the_listed_targets(template, kind, parameter, condition, sid):
    statement = _conditional(template, condition)
    assert statement["Sid"] == sid
    assert statement["Effect"] == "Allow"
    assert tuple(statement["Action"]) == IAM_ACTIONS[kind]
    assert statement["Resource"] == {"!Ref": parameter}
    assert template["Parameters"][parameter]["Type"] == "CommaDelimitedList"
    assert template["Parameters"][parameter]["Default"] == ""
    # Granted only when the list is not empty (an empty Resource would be an invalid statement).
    assert template["Conditions"][condition] == {"!Not": [{"!Equals": [{"!Join": ["", {"!Ref": parameter}]}, ""]}]}


def test_only_the_sweeper_may_read_ci_services(template):
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function" or name == "SweeperFunction":
            continue
        assert "codebuild" not in str(resource), name
        assert "codepipeline" not in str(resource), name


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("HolderCodeBuildProjects", "", True),
        ("HolderCodeBuildProjects", "arn:aws:codebuild:eu-west-1:123456789012:project/infra-apply", True),
        ("HolderCodeBuildProjects", "arn:aws-cn:codebuild:cn-north-1:123456789012:project/Infra_2", True),
        ("HolderCodeBuildProjects", "infra-apply", False),
        ("HolderCodeBuildProjects", "arn:aws:codebuild:eu-west-1:123456789012:project/*", False),
        ("HolderCodeBuildProjects", "*", False),
        ("HolderCodeBuildProjects", "arn:aws:codebuild:eu-west-1:123456789012:build/infra-apply:1", False),
        ("HolderCodePipelines", "", True),
        ("HolderCodePipelines", "arn:aws:codepipeline:eu-west-1:123456789012:infra.prod@v2", True),
        ("HolderCodePipelines", "infra", False),
        ("HolderCodePipelines", "arn:aws:codepipeline:eu-west-1:123456789012:*", False),
        ("HolderCodePipelines", "arn:aws:codepipeline:eu-west-1:*:infra", False),
    ],
)
def test_the_parameters_take_exact_arns_and_refuse_wildcards(template, parameter, value, allowed):
    # CloudFormation matches AllowedPattern against each item of a CommaDelimitedList, whole.
    pattern = template["Parameters"][parameter]["AllowedPattern"]
    assert (re.fullmatch(pattern, value) is not None) is allowed
