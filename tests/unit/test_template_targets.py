"""Several lock tables and other accounts from one deployment: what template.yaml and the target role grant."""

from __future__ import annotations

from typing import Any

from cfn_template import TEMPLATE, function_policies, load_template

TARGET_ROLE = TEMPLATE.parent / "cross-account" / "target-role.yaml"
SHARED_SIDS = ("LockTableRead", "LockTableDeleteLocksOnly", "StateBucketsList", "LockfilesReadDelete")


def _statements(statements: list[Any]) -> dict[str, dict[str, Any]]:
    """Statements by Sid, looking inside ``!If [condition, statement, NoValue]``."""
    found = {}
    for entry in statements:
        statement = entry["!If"][1] if "!If" in entry else entry
        found[statement["Sid"]] = statement
    return found


def _sweeper_statements() -> dict[str, dict[str, Any]]:
    (policy,) = function_policies(load_template(), "SweeperFunction")
    return _statements(policy["Statement"])


def _target_statements() -> dict[str, dict[str, Any]]:
    policy = load_template(TARGET_ROLE)["Resources"]["TargetRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return _statements(policy["Statement"])


def _table_conditions(resources: list[Any]) -> list[str | None]:
    return [r["!If"][0] if "!If" in r else None for r in resources]


def test_each_of_up_to_five_lock_tables_gets_its_own_arn_never_a_wildcard():
    sweeper = _sweeper_statements()
    for sid in ("LockTableRead", "LockTableDeleteLocksOnly"):
        resources = sweeper[sid]["Resource"]
        assert _table_conditions(resources) == [
            None,
            "HasLockTable2",
            "HasLockTable3",
            "HasLockTable4",
            "HasLockTable5",
        ]
        assert "*" not in str(resources)
    assert sweeper["LockTableDeleteLocksOnly"]["Condition"] == {
        "ForAllValues:StringNotLike": {"dynamodb:LeadingKeys": ["*-md5"]}
    }
    assert "dynamodb:DescribeTable" in sweeper["LockTableRead"]["Action"]


def test_the_sweeper_assumes_only_the_listed_target_roles():
    statement = _sweeper_statements()["AssumeTargetRoles"]
    assert statement["Action"] == ["sts:AssumeRole"]
    assert statement["Resource"] == {"!Ref": "TargetRoleArns"}
    env = load_template()["Resources"]["SweeperFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TARGETS"] == {"!Ref": "CrossAccountTargets"}
    assert env["LOCK_TABLE_NAMES"] == {"!Join": [",", {"!Ref": "LockTableNames"}]}


def test_the_target_role_grants_in_its_account_exactly_what_the_sweeper_has_in_its_own():
    sweeper, target = _sweeper_statements(), _target_statements()
    assert set(target) == set(SHARED_SIDS)
    for sid in SHARED_SIDS:
        assert target[sid]["Action"] == sweeper[sid]["Action"], sid
        assert target[sid].get("Condition") == sweeper[sid].get("Condition"), sid
        assert target[sid]["Resource"] == sweeper[sid]["Resource"], sid


def test_the_target_role_trusts_only_the_sweeper_role_with_the_external_id():
    template = load_template(TARGET_ROLE)
    (trust,) = template["Resources"]["TargetRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": {"!Ref": "ReaperRoleArn"}}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": {"!Ref": "ExternalId"}}}
