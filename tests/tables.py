"""Table helpers shared by the integration tests: the Terraform lock table and the reaper's state table."""

from __future__ import annotations

from typing import Any

from cfn_template import load_template

LOCK_TABLE = "tf-locks"
STATE_TABLE = "tflock-reaper-state"


def create_lock_table(client: Any, name: str = LOCK_TABLE) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def create_state_table(client: Any, name: str = STATE_TABLE) -> None:
    """The reaper's state table exactly as template.yaml declares it (keys and indexes)."""
    declared = load_template()["Resources"]["StateTable"]["Properties"]
    client.create_table(
        TableName=name,
        KeySchema=declared["KeySchema"],
        AttributeDefinitions=declared["AttributeDefinitions"],
        GlobalSecondaryIndexes=declared["GlobalSecondaryIndexes"],
        BillingMode="PAY_PER_REQUEST",
    )


def put(client: Any, *items: dict[str, Any]) -> None:
    for item in items:
        client.put_item(TableName=LOCK_TABLE, Item=item)


def table_items(client: Any, name: str = LOCK_TABLE) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=lambda i: str(i.get("LockID")))
