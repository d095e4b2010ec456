"""The alert channels of the integration tests, for real: Slack and PagerDuty as HTTP servers on 127.0.0.1,
an SNS topic (moto) delivering to an SQS queue the test reads, and the secrets in Secrets Manager (moto).

moto's ``mock_aws`` intercepts botocore only: the notifiers' urllib3 (Slack, PagerDuty)
requests reach the loopback servers unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from http_stub import Reply, StubServer
from tables import LOCK_TABLE, STATE_TABLE
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.policy import Policy
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.entrypoints.wiring import make_alerter
from tflock_reaper.services.sweep import sweep

REGION = "us-east-1"
SLACK_SECRET = "tflock-reaper/slack-webhook"
PAGERDUTY_SECRET = "tflock-reaper/pagerduty-routing-key"
SLACK_PATH = "/services/T0000/B0000/XXXXSECRETXXXX"
ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY32"
PAGERDUTY_PATH = "/v2/enqueue"
PAGERDUTY_ACCEPTED = Reply(202, '{"status":"success","message":"Event processed","dedup_key":"x"}')

POLICY = """\
mode: enforce
channels:
  slack: {{type: slack, webhook: {{secret: {slack_secret}}}}}
  sns: {{type: sns, topic_arn: "{topic_arn}"}}
  pagerduty: {{type: pagerduty, routing_key: {{secret: {pagerduty_secret}}}, url: "{pagerduty_url}"}}
defaults:
  warn_after: 30m
  reap_after: 12h
  min_observed: 0s
  trust_holder_clock: true
  notify: {{channels: [slack, sns, pagerduty], renotify_every: 1h}}
rules:
  - match: "tf-state/ci/*"
    reap_after: 2h
    holder: {{assume: gone}}
"""


@dataclass
class AlertStack:
    topic_arn: str
    queue_url: str
    slack: StubServer
    pagerduty: StubServer
    policy_path: Path

    def sns_messages(self) -> list[dict[str, Any]]:
        """The SNS envelopes delivered since the last call (read and deleted from the queue)."""
        sqs = boto3.client("sqs", region_name=REGION)
        envelopes: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return envelopes
            for message in messages:
                envelopes.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def slack_posts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.slack.requests]

    def pagerduty_events(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.pagerduty.requests]

    def stop(self) -> None:
        self.slack.stop()
        self.pagerduty.stop()


def start_alert_stack(directory: Path) -> AlertStack:
    """Within an active ``mock_aws``: the topic, its queue, both secrets, both servers and the policy file."""
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    topic_arn = sns.create_topic(Name="tflock-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)

    slack, pagerduty = StubServer().start(), StubServer().start()
    pagerduty.reply(PAGERDUTY_ACCEPTED)
    secrets = boto3.client("secretsmanager", region_name=REGION)
    secrets.create_secret(Name=SLACK_SECRET, SecretString=slack.url(SLACK_PATH))
    secrets.create_secret(Name=PAGERDUTY_SECRET, SecretString=ROUTING_KEY)

    policy_path = directory / "policy.yaml"
    policy_path.write_text(
        POLICY.format(
            slack_secret=SLACK_SECRET,
            topic_arn=topic_arn,
            pagerduty_secret=PAGERDUTY_SECRET,
            pagerduty_url=pagerduty.url(PAGERDUTY_PATH),
        )
    )
    return AlertStack(topic_arn, queue_url, slack, pagerduty, policy_path)


def sweep_with_alerts(dynamodb: Any, policy: Policy, at: datetime) -> SweepReport:
    """One enforce sweep of the tests' lock table at ``at``, its alerts through the deployed wiring (a new alerter
    each, as each invocation has; the ledger and the Slack app's messages in the tests' state table)."""
    state = StateTable(dynamodb, STATE_TABLE)
    alerts = make_alerter(
        policy,
        table=LOCK_TABLE,
        clients=AwsClients(region=REGION),
        state=state,
        state_table=STATE_TABLE,
        default_topic_arn=None,
    )
    return sweep(
        lock_table=LockTable(dynamodb, LOCK_TABLE),
        state=state,
        policy=policy,
        mode="enforce",
        alerts=alerts,
        clock=lambda: at,
    )
