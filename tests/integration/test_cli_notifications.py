"""``tflock-reaper sweep --show-notifications``: what each channel would get, rendered, and nothing sent.

The channels are real (loopback Slack and PagerDuty servers, SNS delivering to SQS in moto, secrets in Secrets
Manager), so "nothing sent" is observed where it would arrive. ``--notify`` is the contrast: it does send.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from alert_stack import ROUTING_KEY, SLACK_PATH, SLACK_SECRET
from factories import lock_item
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.entrypoints.cli import main

PROD = "tf-state/prod/network/terraform.tfstate"
LOCK_ID = "6f1c2b9e-3d4a-4e5f-8a7b-9c0d1e2f3a4b"
UNLOCK = f"terraform force-unlock -force {LOCK_ID}"


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    code = main(["sweep", "--table", LOCK_TABLE, "--region", "us-east-1", *args], out=out)
    return code, out.getvalue()


@pytest.fixture
def stale_lock(dynamodb):
    item = lock_item(PROD, created=datetime.now(UTC) - timedelta(minutes=45), who="runner@ci-runner-7", lock_id=LOCK_ID)
    put(dynamodb, item)
    return item


def test_show_notifications_prints_what_each_channel_would_get_and_sends_nothing(alerts, stale_lock, capsys):
    code, out = run("--policy", str(alerts.policy_path), "--show-notifications")

    assert code == 0
    lines = out.splitlines()
    start = lines.index("    > stale -> slack (would-send), sns (would-send), pagerduty (would-send)")
    assert lines[start + 1 : start + 4] == [
        f"        slack: Stale Terraform lock: {PROD} (OperationTypeApply by runner@ci-runner-7, held 45m)",
        f"        sns: [tflock-reaper] stale lock: {PROD}",
        f"        pagerduty: Stale Terraform lock: {PROD} (OperationTypeApply by runner@ci-runner-7, held 45m)",
    ]
    assert alerts.slack.requests == []
    assert alerts.pagerduty.requests == []
    assert alerts.sns_messages() == []
    assert "XXXXSECRET" not in out + "".join(capsys.readouterr())


def test_show_notifications_json_includes_each_rendered_payload_without_secrets(alerts, stale_lock):
    code, out = run("--policy", str(alerts.policy_path), "--show-notifications", "--json")

    assert code == 0
    (shown,) = json.loads(out)["locks"][0]["notifications"]
    assert (shown["event"], shown["sequence"]) == ("stale", 0)
    assert shown["channels"] == {"slack": "would-send", "sns": "would-send", "pagerduty": "would-send"}
    slack = shown["rendered"]["slack"]
    assert [b["type"] for b in slack["blocks"]] == ["header", "section", "section", "section", "context"]
    assert slack["blocks"][0]["text"]["text"] == "Stale Terraform lock: prod/network/terraform.tfstate"
    assert "*Who*\n`runner@ci-runner-7`" in [f["text"] for f in slack["blocks"][1]["fields"]]
    assert slack["blocks"][3]["text"]["text"].endswith(f"```{UNLOCK}```")
    sns = shown["rendered"]["sns"]
    assert (sns["TopicArn"], sns["MessageAttributes"]["event"]["StringValue"]) == (alerts.topic_arn, "stale")
    pagerduty = shown["rendered"]["pagerduty"]
    assert (pagerduty["event_action"], pagerduty["dedup_key"]) == ("trigger", f"tflock-reaper/{PROD}/{LOCK_ID}")
    assert "routing_key" not in pagerduty
    assert SLACK_PATH not in out
    assert ROUTING_KEY not in out
    assert alerts.slack.requests == []
    assert alerts.pagerduty.requests == []
    assert alerts.sns_messages() == []


def test_show_notifications_with_the_state_table_leaves_the_first_alert_to_the_sweeper(alerts, stale_lock, dynamodb):
    """A look from a laptop at the deployed state table records nothing as sent: ``--notify`` (as the sweeper
    would) then still sends ``stale``, once."""
    shared = ("--policy", str(alerts.policy_path), "--state-table", STATE_TABLE)
    assert run(*shared, "--show-notifications")[0] == 0
    assert not [i for i in table_items(dynamodb, STATE_TABLE) if i["sk"]["S"].startswith("NOTIFY#")]

    code, out = run(*shared, "--notify")
    assert code == 0
    assert "    > stale -> slack (sent), sns (sent), pagerduty (sent)" in out.splitlines()
    assert len(alerts.slack.requests) == len(alerts.pagerduty.requests) == len(alerts.sns_messages()) == 1

    _, again = run(*shared, "--notify")
    assert "    > stale -> slack (duplicate), sns (duplicate), pagerduty (duplicate)" in again.splitlines()
    assert len(alerts.slack.requests) == len(alerts.pagerduty.requests) == 1
    assert alerts.sns_messages() == []


# -- one thing per channel, and a missing secret named with AWS's error (issue 15.7) ----------------------------
SLACK_MISSING = (
    f"cannot read the Slack webhook URL (secret {SLACK_SECRET}: ResourceNotFoundException: Secrets Manager can't "
    "find the specified secret.)"
)
NO_TOPIC = "no topic_arn in the policy and no ALERT_TOPIC_ARN in the deployment"


@pytest.fixture
def broken_channels(alerts, monkeypatch):
    """The Slack secret deleted, and the SNS channel without a topic (none in the deployment either)."""
    monkeypatch.delenv("ALERT_TOPIC_ARN", raising=False)
    secrets = boto3.client("secretsmanager", region_name="us-east-1")
    secrets.delete_secret(SecretId=SLACK_SECRET, ForceDeleteWithoutRecovery=True)
    policy = alerts.policy_path.read_text()
    alerts.policy_path.write_text(
        policy.replace(f'sns: {{type: sns, topic_arn: "{alerts.topic_arn}"}}', "sns: {type: sns}")
    )
    return alerts


def test_a_channel_that_cannot_be_used_shows_as_unusable_with_its_reason_not_as_would_send(broken_channels, stale_lock):
    code, out = run("--policy", str(broken_channels.policy_path), "--show-notifications", "--json")

    assert code == 0
    (shown,) = json.loads(out)["locks"][0]["notifications"]
    assert shown["channels"] == {"slack": "unusable", "sns": "unusable", "pagerduty": "would-send"}
    assert shown["errors"] == {"slack": SLACK_MISSING, "sns": NO_TOPIC}
    assert list(shown["rendered"]) == ["pagerduty"]
    assert broken_channels.pagerduty.requests == []

    _, text = run("--policy", str(broken_channels.policy_path), "--show-notifications")
    lines = text.splitlines()
    start = lines.index("    > stale -> slack (unusable), sns (unusable), pagerduty (would-send)")
    assert lines[start + 1].startswith("        pagerduty: Stale Terraform lock: ")
    assert "would-send), sns" not in text
    assert "slack (would-send)" not in text


def test_a_missing_secret_names_the_secret_and_the_aws_error_where_the_send_fails(broken_channels, stale_lock):
    code, out = run("--policy", str(broken_channels.policy_path), "--notify", "--json")

    assert code == 0
    (sent,) = json.loads(out)["locks"][0]["notifications"]
    assert sent["channels"] == {"slack": "failed", "sns": "failed", "pagerduty": "sent"}
    assert sent["errors"] == {"slack": SLACK_MISSING, "sns": NO_TOPIC}
    assert broken_channels.slack.requests == []
    assert len(broken_channels.pagerduty.requests) == 1
