"""SnsNotifier against moto: the message reaches an SQS subscriber with its subject, body, JSON and attributes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from notify_factories import LOCK_ID, notification
from tflock_reaper.adapters.channels.sns import JSON_INTRO, SnsNotifier
from tflock_reaper.domain.notifier import NotifyError

REGION = "us-east-1"


@pytest.fixture
def topic(aws_env: None) -> Iterator[tuple[str, Any, str]]:
    """(topic ARN, SQS client, queue URL): a standard topic with an SQS subscription (SNS envelope kept)."""
    with mock_aws():
        sns = boto3.client("sns", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        topic_arn = sns.create_topic(Name="tflock-alerts")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
        yield topic_arn, sqs, queue_url


def received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_one_message_per_event_with_subject_body_json_and_attributes(topic):
    topic_arn, sqs, queue_url = topic
    n = notification("stale", path="tf-state/env:/dev/network/terraform.tfstate", operation="")
    SnsNotifier(lambda: boto3.client("sns", region_name=REGION), topic_arn).send(n)

    (envelope,) = received(sqs, queue_url)
    assert envelope["TopicArn"] == topic_arn
    assert envelope["Subject"] == "[tflock-reaper] stale lock: tf-state/env:/dev/network/terraform.tfstate"
    body, event_json = envelope["Message"].split(f"\n{JSON_INTRO}\n")
    assert body.startswith("Stale Terraform lock: tf-state/env:/dev/network/terraform.tfstate\n")
    assert "Who:                runner@ci-host-1" in body
    assert f"terraform workspace select dev && terraform force-unlock -force {LOCK_ID}" in body
    event = json.loads(event_json)
    assert event["event"] == "stale"
    assert event["lock_id"] == LOCK_ID
    assert event["dedup_key"] == n.dedup_key
    assert envelope["MessageAttributes"] == {
        "event": {"Type": "String", "Value": "stale"},
        "severity": {"Type": "String", "Value": "warning"},
        "state_path": {"Type": "String", "Value": "tf-state/env:/dev/network/terraform.tfstate"},
        "operation": {"Type": "String", "Value": "(none)"},
    }


def test_reaped_message_carries_the_deleted_item_and_the_follow_up(topic):
    topic_arn, sqs, queue_url = topic
    n = notification("reaped")
    SnsNotifier(lambda: boto3.client("sns", region_name=REGION), topic_arn).send(n)
    (envelope,) = received(sqs, queue_url)
    assert envelope["Subject"] == "[tflock-reaper] lock reaped: tf-state/dev/network/terraform.tfstate"
    body, event_json = envelope["Message"].split(f"\n{JSON_INTRO}\n")
    assert "Follow-up: The reaped lock was held by an apply" in body
    assert "terraform#32690" in body
    assert json.loads(event_json)["deleted_item"] == n.deleted_item


def test_the_client_is_made_on_first_send_only(topic):
    topic_arn, _, _ = topic
    made: list[int] = []

    def factory() -> Any:
        made.append(1)
        return boto3.client("sns", region_name=REGION)

    notifier = SnsNotifier(factory, topic_arn)
    assert made == []
    notifier.send(notification("stale"))
    notifier.send(notification("resolved"))
    assert made == [1]


def test_an_unknown_topic_is_a_permanent_error(topic):
    topic_arn, _, _ = topic
    notifier = SnsNotifier(lambda: boto3.client("sns", region_name=REGION), topic_arn + "-missing")
    with pytest.raises(NotifyError) as err:
        notifier.send(notification())
    assert not err.value.retryable
    assert err.value.channel == "sns"
    assert "NotFound" in str(err.value)


def test_a_hostile_lock_from_year_1_is_delivered_with_no_forged_line(topic):
    """Issue 13 end to end: a Created with no UTC equivalent, a Who that tries to forge a line with U+2028 and a
    lone surrogate (which UTF-8 cannot encode) reach the subscriber, every line the renderer's own."""
    topic_arn, sqs, queue_url = topic
    n = notification(
        "reap_blocked", created="0001-01-01T00:00:00+01:00", who="x\u2028Verdict: keep -> kept\udc80", now=None
    )
    SnsNotifier(lambda: boto3.client("sns", region_name=REGION), topic_arn).send(n)
    (envelope,) = received(sqs, queue_url)
    lines = envelope["Message"].splitlines()
    assert not [line for line in lines if line.startswith("Verdict: keep")]
    assert "Who:                x\ufffdVerdict: keep -> kept\ufffd" in lines
    assert "Held for:           3h12m (Created 0001-01-01T00:00:00+01:00)" in lines
