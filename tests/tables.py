"""Table helpers shared by the integration tests: the Terraform lock table and the reaper's state table."""

from __future__ import annotations

from typing import Any

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
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def put(client: Any, *items: dict[str, Any]) -> None:
    for item in items:
        client.put_item(TableName=LOCK_TABLE, Item=item)


def table_items(client: Any, name: str = LOCK_TABLE) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=name, ConsistentRead=True)["Items"], key=lambda i: str(i.get("LockID")))
