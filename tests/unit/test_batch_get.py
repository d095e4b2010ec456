"""The shared consistent BatchGetItem: 100 keys a request, unprocessed keys asked again, a bound on the attempts."""

from __future__ import annotations

from typing import Any

import pytest
from tflock_reaper.adapters import batch_get as module
from tflock_reaper.adapters.batch_get import batch_get
from tflock_reaper.adapters.errors import AwsAccessError


class Throttling:
    """A table of items keyed by ``k``; the first ``refuse`` requests leave half their keys unprocessed."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.requests: list[int] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803 - boto3's name
        ((table, request),) = RequestItems.items()
        assert request["ConsistentRead"] is True
        keys = request["Keys"]
        self.requests.append(len(keys))
        if self.refuse:
            self.refuse -= 1
            done, left = keys[: len(keys) // 2], keys[len(keys) // 2 :]
            return {"Responses": {table: done}, "UnprocessedKeys": {table: {"Keys": left, "ConsistentRead": True}}}
        return {"Responses": {table: keys}, "UnprocessedKeys": {}}


KEYS = [{"k": {"S": str(n)}} for n in range(250)]


def test_keys_are_read_a_hundred_to_a_request() -> None:
    client = Throttling()
    items = batch_get(client, "t", KEYS, workers=4, attempts=3, label="table 't'")
    assert sorted(client.requests) == [50, 100, 100]
    assert sorted(item["k"]["S"] for item in items) == sorted(key["k"]["S"] for key in KEYS)


def test_unprocessed_keys_are_asked_again_after_a_growing_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(module.time, "sleep", sleeps.append)
    client = Throttling(refuse=2)
    items = batch_get(client, "t", KEYS[:100], workers=1, attempts=3, backoff=0.05, label="table 't'")
    assert client.requests == [100, 50, 25]
    assert len(items) == 100
    assert sleeps == [0.1, 0.2]


def test_keys_still_unprocessed_after_the_last_attempt_are_an_error() -> None:
    client = Throttling(refuse=5)
    with pytest.raises(AwsAccessError, match="state table 't' kept keys unprocessed"):
        batch_get(client, "t", KEYS[:8], workers=1, attempts=5, label="state table 't'")
    assert len(client.requests) == 5


def test_nothing_to_read_makes_no_request() -> None:
    client = Throttling()
    assert batch_get(client, "t", [], workers=4, attempts=3, label="table 't'") == []
    assert client.requests == []
