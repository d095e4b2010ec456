"""Strongly consistent ``BatchGetItem`` of many keys of one table: 100 keys to a request (the API's maximum), several
requests at a time, and the keys DynamoDB leaves unprocessed (throttling) asked again. Shared by the lock table (an
incremental sweep's read) and the state table (observations the open set does not list)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tflock_reaper.adapters.errors import AwsAccessError

#: The most keys one BatchGetItem takes.
BATCH_GET_MAX = 100


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[dict[str, Any]],
    *,
    workers: int,
    attempts: int,
    backoff: float = 0.0,
    label: str,
) -> list[dict[str, Any]]:
    """The items at ``keys`` that exist, in no particular order. A request's unprocessed keys are asked again, up to
    ``attempts`` requests in all (after ``backoff`` seconds, doubling, at most 1 s; none when 0); then
    :class:`AwsAccessError` ("<label> kept keys unprocessed"). Any other failure (``ClientError``) is raised as is, for
    the caller to word."""

    def chunk(part: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        pending: dict[str, Any] = {table: {"Keys": list(part), "ConsistentRead": True}}
        for attempt in range(attempts):
            if attempt and backoff:
                time.sleep(min(backoff * 2**attempt, 1.0))
            response = client.batch_get_item(RequestItems=pending)
            items.extend(dict(item) for item in response.get("Responses", {}).get(table, []))
            pending = dict(response.get("UnprocessedKeys") or {})
            if not pending:
                return items
        raise AwsAccessError(f"{label} kept keys unprocessed (throttled)")

    parts = [keys[start : start + BATCH_GET_MAX] for start in range(0, len(keys), BATCH_GET_MAX)]
    if len(parts) <= 1:
        return [item for part in parts for item in chunk(part)]
    with ThreadPoolExecutor(max_workers=min(workers, len(parts)), thread_name_prefix="batch-get") as pool:
        return [item for items in pool.map(chunk, parts) for item in items]
