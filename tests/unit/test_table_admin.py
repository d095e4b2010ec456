"""`enable-stream --grant-read-to`'s adapter (issue 17.1): another account's stream function is let read a lock table's
stream through the stream's resource-based policy, keeping whatever else the policy says, never overwriting a policy
changed meanwhile, and refusing what AWS does not support. Against an in-memory DynamoDB policy store (moto keys
resource policies by table name, so it cannot hold a stream's)."""

from __future__ import annotations

import json
from itertools import count
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.table_admin import (
    GRANT_SID,
    STREAM_READ_ACTIONS,
    StreamConfigError,
    aws_managed_key,
    grant_stream_read,
    reader_principal,
    stream_status,
)

STREAM = "arn:aws:dynamodb:eu-west-1:222222222222:table/terraform-locks/stream/2026-01-15T09:30:00.123"
READER = "arn:aws:iam::111111111111:role/tflock-reaper-StreamRole-ABC"
OTHER = {
    "Sid": "AnalyticsRead",
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::333333333333:role/analytics"},
    "Action": ["dynamodb:GetRecords"],
    "Resource": STREAM,
}


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "PutResourcePolicy")


class FakePolicies:
    """DynamoDB's GetResourcePolicy and PutResourcePolicy on one stream, with revisions as AWS documents them."""

    def __init__(self, policy: dict[str, Any] | None = None) -> None:
        self._revisions = count(1)
        self.policy: str | None = json.dumps(policy) if policy else None
        self.revision = str(next(self._revisions)) if policy else None
        self.puts = 0

    def get_resource_policy(self, *, ResourceArn: str) -> dict[str, str]:  # noqa: N803 - boto3's names
        assert ResourceArn == STREAM
        if self.policy is None:
            raise _error("PolicyNotFoundException")
        return {"Policy": self.policy, "RevisionId": str(self.revision)}

    def put_resource_policy(self, *, ResourceArn: str, Policy: str, ExpectedRevisionId: str) -> dict[str, str]:  # noqa: N803
        assert ResourceArn == STREAM
        expected = "NO_POLICY" if self.revision is None else self.revision
        if ExpectedRevisionId != expected:
            raise _error("PolicyNotFoundException")
        self.policy, self.revision, self.puts = Policy, str(next(self._revisions)), self.puts + 1
        return {"RevisionId": self.revision}

    def statements(self) -> dict[str, dict[str, Any]]:
        assert self.policy is not None
        return {s["Sid"]: s for s in json.loads(self.policy)["Statement"]}


def test_a_stream_without_a_policy_gets_one_letting_the_reader_read_it():
    policies = FakePolicies()
    assert grant_stream_read(policies, STREAM, [READER]) is True
    assert policies.statements() == {
        GRANT_SID: {
            "Sid": GRANT_SID,
            "Effect": "Allow",
            "Principal": {"AWS": READER},
            "Action": list(STREAM_READ_ACTIONS),
            "Resource": STREAM,
        }
    }
    # What a cross-account event source mapping needs on the stream, as AWS documents it.
    assert set(STREAM_READ_ACTIONS) == {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}


def test_granting_again_changes_nothing():
    policies = FakePolicies()
    grant_stream_read(policies, STREAM, [READER])
    assert grant_stream_read(policies, STREAM, [READER]) is False
    assert policies.puts == 1


def test_the_policys_other_statements_are_kept_and_ours_is_replaced_whole():
    policies = FakePolicies({"Version": "2012-10-17", "Statement": [OTHER]})
    grant_stream_read(policies, STREAM, ["arn:aws:iam::111111111111:root"])
    grant_stream_read(policies, STREAM, [READER])
    statements = policies.statements()
    assert statements["AnalyticsRead"] == OTHER
    assert statements[GRANT_SID]["Principal"] == {"AWS": READER}  # narrowed: the account is no longer named


def test_several_readers_are_one_statement():
    policies = FakePolicies()
    second = "arn:aws:iam::444444444444:role/tflock-reaper-StreamRole-XYZ"
    grant_stream_read(policies, STREAM, [second, READER])
    assert policies.statements()[GRANT_SID]["Principal"] == {"AWS": sorted([READER, second])}


def test_a_policy_changed_meanwhile_is_not_overwritten():
    class Racing(FakePolicies):
        def get_resource_policy(self, *, ResourceArn: str) -> dict[str, str]:  # noqa: N803
            read = super().get_resource_policy(ResourceArn=ResourceArn)
            self.revision = "changed by someone else"
            return read

    policies = Racing({"Version": "2012-10-17", "Statement": [OTHER]})
    with pytest.raises(AwsAccessError, match=r"cannot set the policy of stream .*PolicyNotFoundException"):
        grant_stream_read(policies, STREAM, [READER])
    assert policies.puts == 0


def test_a_policy_that_cannot_be_read_is_not_replaced():
    class Denied(FakePolicies):
        def get_resource_policy(self, *, ResourceArn: str) -> dict[str, str]:  # noqa: N803
            raise _error("AccessDeniedException")

    policies = Denied()
    with pytest.raises(AwsAccessError, match=r"cannot read the policy of stream .*AccessDeniedException"):
        grant_stream_read(policies, STREAM, [READER])
    assert policies.puts == 0


@pytest.mark.parametrize(
    ("reader", "partition", "principal"),
    [
        (READER, "aws", READER),
        ("111111111111", "aws", "arn:aws:iam::111111111111:root"),
        ("111111111111", "aws-cn", "arn:aws-cn:iam::111111111111:root"),
    ],
)
def test_a_reader_is_a_role_or_an_account(reader, partition, principal):
    assert reader_principal(reader, partition) == principal


@pytest.mark.parametrize("reader", ["*", "arn:aws:iam::111111111111:user/alice", "11111111111", "tflock-reaper"])
def test_anything_else_is_refused(reader):
    with pytest.raises(StreamConfigError, match="neither an IAM role ARN"):
        reader_principal(reader)


class FakeKms:
    def __init__(self, manager: str | None) -> None:
        self.manager = manager

    def describe_key(self, *, KeyId: str) -> dict[str, Any]:  # noqa: N803
        if self.manager is None:
            raise _error("AccessDeniedException")
        return {"KeyMetadata": {"KeyId": KeyId, "KeyManager": self.manager}}


@pytest.mark.parametrize(("manager", "managed"), [("AWS", True), ("CUSTOMER", False), (None, None)])
def test_an_aws_managed_key_is_told_apart(manager, managed):
    """AWS does not support cross-account reads of a table encrypted with an AWS managed key (docs/audit.md)."""
    assert aws_managed_key(FakeKms(manager), "arn:aws:kms:eu-west-1:222222222222:key/k") is managed


class FakeTables:
    def __init__(self, sse: dict[str, str] | None) -> None:
        self.sse = sse

    def describe_table(self, *, TableName: str) -> dict[str, Any]:  # noqa: N803
        table: dict[str, Any] = {
            "TableName": TableName,
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "LatestStreamArn": STREAM,
        }
        if self.sse:
            table["SSEDescription"] = self.sse
        return {"Table": table}


def test_the_tables_kms_key_is_read_with_its_stream():
    key = "arn:aws:kms:eu-west-1:222222222222:key/k"
    kms = stream_status(FakeTables({"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": key}), "t")
    assert (kms.arn, kms.kms_key_arn) == (STREAM, key)
    assert stream_status(FakeTables(None), "t").kms_key_arn is None  # the AWS owned key
