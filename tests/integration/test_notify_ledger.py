"""DynamoLedger on the reaper's state table (moto): exactly once across overlapping sweeps, retry after failure."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from factories import NOW
from notify_factories import lock_record, notification
from tables import STATE_TABLE, table_items
from tflock_reaper.adapters.notification_ledger import DynamoLedger
from tflock_reaper.adapters.state_table import StateTable, digest, state_pk
from tflock_reaper.domain.memory import lock_key
from tflock_reaper.domain.notification import DedupKey, Notification
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.services.dispatch import dispatch


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self):
        return self.now


class FakeNotifier:
    def __init__(self, name: str, *, failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.delivered: list[str] = []

    def render(self, n: Notification) -> dict:
        return n.to_dict()

    def send(self, n: Notification) -> None:
        if self.failures:
            self.failures -= 1
            raise NotifyError(self.name, "HTTP 503", retryable=True)
        self.delivered.append(n.dedup_key)


def ledger_items(client) -> list[dict]:
    return [i for i in table_items(client, STATE_TABLE) if i["sk"]["S"].startswith("NOTIFY#")]


KEY = DedupKey("tf-state/dev/network/terraform.tfstate", "lock-1", "stale")


@pytest.fixture
def dynamodb(any_dynamodb):
    """Every test here runs on moto and on dynalite (DynamoDB's real key limits)."""
    return any_dynamodb


def test_a_claim_is_a_conditional_put_with_keys_and_ttl(dynamodb):
    ledger = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    assert ledger.claim("slack", KEY) is True
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", KEY) is False
    (item,) = ledger_items(dynamodb)
    assert item["pk"] == {"S": state_pk("", "tf-state/dev/network/terraform.tfstate")}
    assert item["sk"] == {"S": f"NOTIFY#{digest('lock-1', 'stale', 'slack')}"}
    assert (item["lock_path"]["S"], item["lock_id"]["S"], item["event"]["S"], item["channel"]["S"]) == (
        "tf-state/dev/network/terraform.tfstate",
        "lock-1",
        "stale",
        "slack",
    )
    assert item["notify_status"] == {"S": "sending"}
    assert int(item["expires_at"]["N"]) == int((NOW + timedelta(days=30)).timestamp())
    assert ledger.claim("sns", KEY) is True  # another channel is another claim


def test_complete_makes_the_claim_permanent_even_after_the_lease(dynamodb):
    clock = Clock()
    ledger = DynamoLedger(dynamodb, STATE_TABLE, clock=clock)
    assert ledger.claim("slack", KEY)
    ledger.complete("slack", KEY)
    clock.now = NOW + timedelta(days=2)
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=clock).claim("slack", KEY) is False
    (item,) = ledger_items(dynamodb)
    assert item["notify_status"] == {"S": "sent"}


def test_release_lets_a_later_attempt_claim_again(dynamodb):
    ledger = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    assert ledger.claim("slack", KEY)
    ledger.release("slack", KEY)
    assert ledger_items(dynamodb) == []
    assert ledger.claim("slack", KEY)


def test_a_claim_abandoned_mid_send_is_taken_over_after_the_lease(dynamodb):
    clock = Clock()
    crashed = DynamoLedger(dynamodb, STATE_TABLE, clock=clock)
    assert crashed.claim("slack", KEY)  # ... and the process dies (a Lambda timeout): no complete, no release
    later = DynamoLedger(dynamodb, STATE_TABLE, clock=clock)
    clock.now = NOW + timedelta(minutes=5)
    assert later.claim("slack", KEY) is False  # maybe still sending
    clock.now = NOW + timedelta(minutes=25)
    assert later.claim("slack", KEY) is True
    crashed.release("slack", KEY)  # a late release of the old claim must not drop the new one
    (item,) = ledger_items(dynamodb)
    assert item["notify_status"] == {"S": "sending"}
    later.complete("slack", KEY)
    assert ledger_items(dynamodb)[0]["notify_status"] == {"S": "sent"}


def test_overlapping_sweeps_send_each_event_once_per_channel(dynamodb):
    slack, sns = FakeNotifier("slack"), FakeNotifier("sns")
    first_sweep = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    second_sweep = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    n = notification("stale")
    assert dispatch(n, [slack, sns], first_sweep).sent == ("slack", "sns")
    assert dispatch(n, [slack, sns], second_sweep).duplicates == ("slack", "sns")
    assert dispatch(notification("still_stale", sequence=1), [slack], second_sweep).sent == ("slack",)
    assert slack.delivered == [n.dedup_key, notification("still_stale", sequence=1).dedup_key]
    assert sns.delivered == [n.dedup_key]


def test_a_failed_channel_is_released_and_sent_once_by_a_later_sweep(dynamodb):
    slack, sns = FakeNotifier("slack", failures=1), FakeNotifier("sns")
    n = notification("reap_blocked")
    first = dispatch(n, [slack, sns], DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()))
    assert first.sent == ("sns",)
    assert [r.channel for r in first.failed] == ["slack"]
    assert [i["channel"]["S"] for i in ledger_items(dynamodb)] == ["sns"]
    for _ in range(3):
        dispatch(n, [slack, sns], DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()))
    assert slack.delivered == sns.delivered == [n.dedup_key]


def test_ledger_items_live_beside_observations_without_disturbing_them(dynamodb):
    lock = lock_record()
    state = StateTable(dynamodb, STATE_TABLE)
    state.observe([lock], NOW)
    state.settle([], NOW)
    dispatch(notification("stale"), [FakeNotifier("slack")], DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()))
    later = state.observe([lock], NOW + timedelta(hours=1))
    assert later[lock_key(lock)].first_seen == NOW
    assert len(table_items(dynamodb, STATE_TABLE)) == 2


#: What any Terraform user can write: a lock ID over DynamoDB's 1,024-byte sort-key limit, a LockID at its
#: 2,048-byte partition-key limit (moto accepts keys built from them; DynamoDB and dynalite refuse them).
LONG_ID = "i" * 1100
LONG_PATH = "tf-state/" + "p" * (2048 - len("tf-state/"))


def test_a_hostile_lock_id_and_path_are_claimed_sent_and_completed(dynamodb):
    """Issue 13.3: the ledger's keys are bounded, whatever the lock's ID and path (dynalite enforces the limits)."""
    key = DedupKey(LONG_PATH, LONG_ID, "stale", "arn:aws:dynamodb:us-east-1:123456789012:table/tf-locks")
    ledger = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    assert ledger.claim("slack", key) is True
    ledger.complete("slack", key)
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", key) is False
    (item,) = ledger_items(dynamodb)
    assert (item["notify_status"]["S"], item["lock_id"]["S"], item["lock_path"]["S"]) == ("sent", LONG_ID, LONG_PATH)


def test_a_claim_dynamodb_refuses_for_its_key_is_not_a_channel_outage(dynamodb):
    """Issue 13.3: a ValidationException on one notification's claim fails that notification alone (not transient);
    throttling stays transient, so that the channel is skipped for the rest of the sweep."""

    def refuse(**_):
        raise ClientError({"Error": {"Code": "ValidationException", "Message": "key too large"}}, "PutItem")

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", refuse)
    result = dispatch(notification("stale"), [FakeNotifier("slack")], DynamoLedger(dynamodb, STATE_TABLE))
    assert [(r.channel, r.retryable) for r in result.failed] == [("slack", False)]
    dynamodb.meta.events.unregister("before-call.dynamodb.PutItem", refuse)

    def throttle(**_):
        raise ClientError(
            {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
        )

    dynamodb.meta.events.register("before-call.dynamodb.PutItem", throttle)
    result = dispatch(notification("stale"), [FakeNotifier("slack")], DynamoLedger(dynamodb, STATE_TABLE))
    assert [(r.channel, r.retryable) for r in result.failed] == [("slack", True)]


def test_a_warm_process_does_not_claim_again_what_it_knows_was_sent(dynamodb):
    """At rate(1 minute) every sweep offers a stale lock's notifications again: a sent one must not cost a refused
    conditional write each time. Sent is final, so the process remembers it; a `sending` claim is not (its lease may
    pass), so a refusal of that kind is asked again."""
    from tflock_reaper.adapters import notification_ledger  # noqa: PLC0415

    puts: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb.PutItem", lambda **_: puts.append("PutItem"))
    ledger = DynamoLedger(dynamodb, STATE_TABLE, clock=Clock())
    assert ledger.claim("slack", KEY)
    ledger.complete("slack", KEY)
    assert len(puts) == 1
    for _ in range(3):  # the next sweeps of this warm process
        assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", KEY) is False
    assert len(puts) == 1

    notification_ledger._SENT.clear()  # another process (or a cold start): DynamoDB refuses, and says it was sent
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", KEY) is False
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", KEY) is False
    # dynalite (4.0) predates ReturnValuesOnConditionCheckFailure: its refusal carries no item, so nothing is
    # learned from it and each claim asks again, as before the cache (DynamoDB and moto return the item).
    says_why = "127.0.0.1" not in str(dynamodb.meta.endpoint_url)
    assert len(puts) == (2 if says_why else 3)

    other = DedupKey(KEY.lock_path, "lock-2", "stale")
    asked = len(puts)
    assert ledger.claim("slack", other)  # claimed, not sent: a refusal now is asked again every time
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", other) is False
    assert DynamoLedger(dynamodb, STATE_TABLE, clock=Clock()).claim("slack", other) is False
    assert len(puts) == asked + 3
