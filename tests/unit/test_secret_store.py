"""Why a secret could not be read: the AWS error behind Powertools' ``GetParameterError`` (issue 15.7)."""

from __future__ import annotations

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.stub import Stubber
from tflock_reaper.adapters.secret_store import unavailable, why_unreadable
from tflock_reaper.domain.policy import SecretRef

DENIED = (
    "User: arn:aws:sts::123456789012:assumed-role/tflock-reaper/sweeper is not authorized to perform: "
    "secretsmanager:GetSecretValue on resource: team/slack"
)


def _powertools_error(code: str, message: str) -> Exception:
    """What Powertools Parameters raises when Secrets Manager answers ``code``: ``GetParameterError``."""
    client = boto3.client("secretsmanager", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code, service_message=message)
        with pytest.raises(parameters.exceptions.GetParameterError) as raised:
            parameters.SecretsProvider(boto3_client=client).get("team/slack", max_age=0)
    return raised.value


def test_the_aws_error_code_and_message_behind_powertools_wrapper():
    error = _powertools_error("AccessDeniedException", DENIED)
    assert why_unreadable(error) == f"AccessDeniedException: {DENIED}"
    assert (
        str(unavailable(SecretRef(secret="team/slack"), error)) == f"secret team/slack: AccessDeniedException: {DENIED}"
    )


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ValueError("no JSON"), "ValueError: no JSON"),
        (parameters.exceptions.GetParameterError("line one\nline two"), "GetParameterError: line one\ufffdline two"),
    ],
)
def test_an_error_with_no_aws_error_behind_it_is_said_as_it_is_on_one_line(error, reason):
    assert why_unreadable(error) == reason
