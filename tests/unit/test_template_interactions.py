"""template.yaml's interactions function (issue 18): deployed only with a signing secret, behind a function URL with
AuthType NONE (the Slack signature is the authentication), its URL an output, and a role that grants what a press
needs and nothing else, resolved as CloudFormation would deploy it."""

from __future__ import annotations

from typing import Any

import pytest
from cfn_template import PSEUDO, TEMPLATE, deploy, deployed_statements, load_template
from tflock_reaper.entrypoints.settings import Settings

SECRET = "tflock-reaper/slack-signing-secret"
ACCOUNT, REGION = PSEUDO["AWS::AccountId"], PSEUDO["AWS::Region"]
FULL = {
    "SlackSigningSecretName": SECRET,
    "LockTableNames": "tf-locks,tf-locks-eu",
    "StateBucketNames": "state-a,state-b",
    "PolicyParameterName": "/tflock-reaper/policy",
}
INTERACTIONS = ("InteractionsFunction", "InteractionsRole", "InteractionsLogGroup")


def _table(name: str) -> str:
    return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_without_a_signing_secret_there_is_no_function_no_url_and_no_output(template):
    deployment = deploy({"LockTableNames": "tf-locks"})
    assert not deployment.condition("HasSlackApp")
    assert set(INTERACTIONS).isdisjoint(deployment.resources)
    assert template["Outputs"]["InteractionsUrl"]["Condition"] == "HasSlackApp"
    for name in INTERACTIONS:
        assert template["Resources"][name]["Condition"] == "HasSlackApp"


def test_the_function_is_behind_a_url_anyone_may_call_its_output_the_apps_request_url(template):
    function = deploy(FULL).resources["InteractionsFunction"]["Properties"]
    assert function["FunctionUrlConfig"] == {"AuthType": "NONE"}
    output = template["Outputs"]["InteractionsUrl"]
    assert output["Value"] == {"!GetAtt": "InteractionsFunctionUrl.FunctionUrl"}
    assert "Interactivity Request URL" in output["Description"]
    assert template["Parameters"]["SlackSigningSecretName"]["Default"] == ""


def test_the_function_runs_like_the_others_within_slacks_time(template):
    function = deploy(FULL).resources["InteractionsFunction"]["Properties"]
    assert (function["CodeUri"], function["Handler"]) == (
        "functions/interactions/",
        "interactions_handler.lambda_handler",
    )
    assert function["Layers"] == ["ref:ReaperLayer"]
    assert function["Role"] == "InteractionsRole.Arn"
    assert function["LoggingConfig"] == {"LogGroup": "ref:InteractionsLogGroup"}
    assert function["Timeout"] == 10
    assert 1 <= function["ReservedConcurrentExecutions"] <= 10
    # The Globals' python3.12 on arm64, as the other functions.
    assert "Runtime" not in function
    assert "Architectures" not in function
    assert template["Globals"]["Function"]["Runtime"] == "python3.12"
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    group = deploy(FULL).resources["InteractionsLogGroup"]["Properties"]
    assert group == {"LogGroupName": "/aws/lambda/tflock-reaper-interactions", "RetentionInDays": "90"}


def test_its_environment_names_what_it_reads_and_never_a_secret():
    env = deploy(FULL).resources["InteractionsFunction"]["Properties"]["Environment"]["Variables"]
    assert env == {
        "LOCK_TABLE_NAMES": "tf-locks,tf-locks-eu",
        "STATE_BUCKETS": "state-a,state-b",
        "TARGETS": "[]",
        "STATE_TABLE_NAME": "ref:StateTable",
        "POLICY_PATH": "policy.yaml",
        "POLICY_PARAMETER": "/tflock-reaper/policy",
        "ALERT_TOPIC_ARN": "ref:AlertTopic",
        "SLACK_SIGNING_SECRET_NAME": SECRET,
        "HISTORY_RETENTION_DAYS": "90",
    }
    settings = Settings.model_validate(env)
    assert settings.slack_signing_secret_name == SECRET
    assert settings.slack_response_url_prefix == "https://hooks.slack.com/"


def test_the_policy_it_reads_is_the_sweepers():
    from pathlib import Path  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    packaged = root / "functions" / "interactions" / "policy.yaml"
    assert packaged.is_symlink()
    assert packaged.resolve() == (root / "functions" / "sweeper" / "policy.yaml").resolve()


def test_the_role_grants_each_statement_exactly_and_nothing_else():
    deployment = deploy(FULL)
    role = deployment.resources["InteractionsRole"]["Properties"]
    assert "ManagedPolicyArns" not in role
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert "Policies" not in deployment.resources["InteractionsFunction"]["Properties"]
    statements = deployed_statements(deployment, "InteractionsRole")
    tables = [_table("tf-locks"), _table("tf-locks-eu")]
    granted = {sid: (sorted(s["Action"]), s["Resource"]) for sid, s in statements.items()}
    assert granted == {
        "OwnLogsWrite": (["logs:CreateLogStream", "logs:PutLogEvents"], "InteractionsLogGroup.Arn"),
        "XRayWrite": (["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "*"),
        "LockTableRead": (["dynamodb:DescribeTable", "dynamodb:GetItem"], tables),
        "LockTableDeleteLocksOnly": (["dynamodb:DeleteItem"], tables),
        "StateBucketsList": (["s3:ListBucket"], ["arn:aws:s3:::state-a", "arn:aws:s3:::state-b"]),
        "LockfilesReadDelete": (
            ["s3:DeleteObject", "s3:GetObject"],
            ["arn:aws:s3:::state-a/*.tflock", "arn:aws:s3:::state-b/*.tflock"],
        ),
        "StateTableReadWrite": (
            [
                "dynamodb:BatchGetItem",
                "dynamodb:DeleteItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
            ["StateTable.Arn", "StateTable.Arn/index/held-locks"],
        ),
        "SigningSecretRead": (
            ["secretsmanager:GetSecretValue"],
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{SECRET}-??????",
        ),
        "AlertPublish": (
            ["sns:Publish"],
            ["ref:AlertTopic", f"arn:aws:sns:{REGION}:{ACCOUNT}:tflock-reaper-*"],
        ),
        "ChannelSecretsRead": (
            ["secretsmanager:GetSecretValue"],
            f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:tflock-reaper/*",
        ),
        "ChannelParametersRead": (["ssm:GetParameter"], f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tflock-reaper/*"),
        "PolicyParameterRead": (["ssm:GetParameter"], f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/tflock-reaper/policy"),
    }
    # Only Terraform's locks may be deleted: never a "-md5" digest item, whatever the code asks (as the sweeper).
    condition = {"ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": ["*-md5"]}}
    assert statements["LockTableDeleteLocksOnly"]["Condition"] == condition
    assert deployed_statements(deployment, "SweeperRole")["LockTableDeleteLocksOnly"]["Condition"] == condition
    assert all("Condition" not in s for sid, s in statements.items() if sid != "LockTableDeleteLocksOnly")
    assert all(s["Effect"] == "Allow" for s in statements.values())


def test_without_buckets_or_a_policy_parameter_their_statements_are_not_granted():
    statements = deployed_statements(
        deploy({"SlackSigningSecretName": SECRET, "LockTableNames": "tf-locks"}), "InteractionsRole"
    )
    assert set(statements) == {
        "OwnLogsWrite",
        "XRayWrite",
        "LockTableRead",
        "LockTableDeleteLocksOnly",
        "StateTableReadWrite",
        "SigningSecretRead",
        "AlertPublish",
        "ChannelSecretsRead",
        "ChannelParametersRead",
    }
    assert statements["LockTableRead"]["Resource"] == [_table("tf-locks")]


def test_with_lockfiles_only_no_lock_table_is_granted():
    statements = deployed_statements(
        deploy({"SlackSigningSecretName": SECRET, "StateBucketNames": "s"}), "InteractionsRole"
    )
    assert "LockTableRead" not in statements
    assert "LockTableDeleteLocksOnly" not in statements
    assert statements["LockfilesReadDelete"]["Resource"] == ["arn:aws:s3:::s/*.tflock"]


def test_the_signing_secret_parameter_takes_names_not_arns_or_wildcards(template):
    import re  # noqa: PLC0415

    pattern = re.compile(template["Parameters"]["SlackSigningSecretName"]["AllowedPattern"])
    for accepted in ("", SECRET, "slack_signing.secret@prod"):
        assert pattern.match(accepted), accepted
    for refused in ("arn:aws:secretsmanager:eu-west-1:111111111111:secret:x", "tflock-reaper/*", "a b"):
        assert not pattern.match(refused), refused


def test_the_choice_of_a_function_url_is_explained_in_the_template():
    text = TEMPLATE.read_text(encoding="utf-8")
    comment = text[text.index("# -- The Slack app's buttons") : text.index("  InteractionsRole:")]
    for reason in ("AuthType NONE", "HTTP API", "SigV4", "signature is the authentication"):
        assert reason in comment.replace("\n  # ", " "), reason
