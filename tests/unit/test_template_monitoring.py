"""template.yaml watches the reaper: alarms on failed and missing sweeps, a lagging or failing audit and queued
failures, published to an encrypted topic CloudWatch may use; a dashboard of the metrics the sweeper emits."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from cfn_template import load_template

#: What the dashboard must show (issue 8): locks held, the oldest lock's age, stale locks, reaps, notification failures;
#: (issue 13) unreadable locks and skipped items.
REQUIRED_ON_DASHBOARD = {
    "LocksSeen",
    "OldestLockAgeSeconds",
    "StaleLocks",
    "LocksReaped",
    "NotificationFailures",
    "UnreadableLocks",
    "ItemsSkipped",
    # issue 16: which kind each sweep was
    "IncrementalSweeps",
    "FullSweeps",
    # issue 17.6: locks released by hand after the reaper reported them stale (the stream function's)
    "ForceUnlocks",
}
#: Hold-time percentiles per operation (issue 17.6), from the stream function's LockHoldSeconds.
HOLD_PERCENTILES = {"p50", "p95", "p99"}
_HOLD_SEARCH = re.compile(
    r"SEARCH\('\{(?P<schema>[^}]*)\} MetricName=\"(?P<name>\w+)\" service=\"(?P<service>[^\"]+)\"', "
    r"'(?P<stat>p\d+)', (?P<period>\d+)\)"
)


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def alarms(template) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


def _dimension(alarm: dict[str, Any], name: str) -> Any:
    (value,) = [d["Value"] for d in alarm["Properties"]["Dimensions"] if d["Name"] == name]
    return value


def test_each_function_failing_raises_an_alarm(alarms):
    for alarm_name, function in (("SweeperErrorsAlarm", "SweeperFunction"), ("StreamErrorsAlarm", "StreamFunction")):
        props = alarms[alarm_name]["Properties"]
        assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Errors", "Sum")
        assert _dimension(alarms[alarm_name], "FunctionName") == {"!Ref": function}
        assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarms["StreamErrorsAlarm"]["Condition"] == "HasLockTableStream"


def test_a_lagging_stream_raises_an_alarm(alarms):
    alarm = alarms["StreamIteratorAgeAlarm"]
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "IteratorAge", "Maximum")
    assert _dimension(alarm, "FunctionName") == {"!Ref": "StreamFunction"}
    # In milliseconds, and well before records expire into the failure queue (MaximumRecordAgeInSeconds).
    assert 0 < props["Threshold"] < 3600 * 1000
    assert alarm["Condition"] == "HasLockTableStream"


def test_a_record_in_the_failure_queue_raises_an_alarm(alarms):
    alarm = alarms["StreamFailureAlarm"]
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert _dimension(alarm, "QueueName") == {"!GetAtt": "StreamFailureQueue.QueueName"}
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)


def test_a_sweeper_that_stopped_running_raises_an_alarm(template, alarms):
    alarm = alarms["SweeperNotRunningAlarm"]
    props = alarm["Properties"]
    assert (props["Namespace"], props["MetricName"], props["Statistic"]) == ("AWS/Lambda", "Invocations", "Sum")
    assert _dimension(alarm, "FunctionName") == {"!Ref": "SweeperFunction"}
    assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1)
    # No invocation means no data point at all: that must count as breaching, or the alarm could never fire.
    assert props["TreatMissingData"] == "breaching"
    assert props["Period"] == {"!Ref": "MissedSweepAlarmSeconds"}
    parameter = template["Parameters"]["MissedSweepAlarmSeconds"]
    assert all(v % 60 == 0 for v in parameter["AllowedValues"])  # CloudWatch periods
    schedule = re.fullmatch(r"rate\((\d+) minutes?\)", template["Parameters"]["SweepSchedule"]["Default"])
    assert schedule is not None
    # The default window must span several scheduled sweeps, or one late sweep would page someone.
    assert parameter["Default"] >= 3 * int(schedule.group(1)) * 60


def test_every_alarm_notifies_the_alarm_topic_and_is_named_for_its_key_policy(template, alarms):
    assert set(alarms) == {
        "SweeperErrorsAlarm",
        "SweeperNotRunningAlarm",
        "StreamErrorsAlarm",
        "StreamIteratorAgeAlarm",
        "StreamFailureAlarm",
        "UnreadableLocksAlarm",
        "InteractionsErrorsAlarm",
    }
    key_statements = template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    (cloudwatch,) = [s for s in key_statements if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}]
    pattern = cloudwatch["Condition"]["ArnLike"]["aws:SourceArn"]["!Sub"]
    assert pattern.endswith(":alarm:${AWS::StackName}-*")
    for name, alarm in alarms.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"!Ref": "AlarmTopic"}], name
        assert props["OKActions"] == [{"!Ref": "AlarmTopic"}], name
        # Only alarms whose ARN matches the key policy's condition can publish to the encrypted topic.
        assert props["AlarmName"]["!Sub"].startswith("${AWS::StackName}-"), name
        assert props["AlarmDescription"], name


def test_the_alarm_topic_is_encrypted_with_a_rotated_customer_managed_key_cloudwatch_may_use(template):
    resources = template["Resources"]
    assert resources["AlarmTopic"]["Properties"]["KmsMasterKeyId"] == {"!Ref": "AlarmTopicKey"}
    key = resources["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    statements = {s["Sid"]: s for s in key["KeyPolicy"]["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublish"]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"]["StringEquals"] == {"aws:SourceAccount": {"!Ref": "AWS::AccountId"}}
    # Nobody else but the account's own IAM principals.
    assert {json.dumps(s["Principal"], sort_keys=True) for s in statements.values()} == {
        json.dumps({"AWS": {"!Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}),
        json.dumps({"Service": "cloudwatch.amazonaws.com"}),
    }


def _dashboard_metrics(template: dict[str, Any]) -> list[list[Any]]:
    body, _ = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    # ${...} substitutions only ever stand inside JSON strings: any placeholder keeps the JSON valid.
    parsed = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))
    return [metric for widget in parsed["widgets"] for metric in widget["properties"].get("metrics", [])]


def _emitted_by_the_sweeper(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The metric names the sweeper's handler publishes for a sweep (every one, zeros included)."""
    # Configured as deployed, in case this is the handler's first import in the process.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tflock-reaper")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TflockReaper")
    import sweeper_handler  # noqa: PLC0415
    from tflock_reaper.domain.report import SweepReport  # noqa: PLC0415

    sweeper_handler.publish_metrics(SweepReport(table="locks", mode="dry-run", started_at=datetime.now(UTC)))
    try:
        return set(sweeper_handler.metrics.metric_set)
    finally:
        sweeper_handler.metrics.clear_metrics()


def _named_by_the_stream_function() -> set[str]:
    """The metric names the stream function's wiring publishes: the PascalCase string literals of
    ``tflock_reaper.entrypoints.stream`` (its counters, LockHoldSeconds, ForceUnlocks), read without importing it."""
    spec = find_spec("tflock_reaper.entrypoints.stream")
    assert spec is not None
    assert spec.origin is not None
    return set(re.findall(r'"([A-Z][a-z]+(?:[A-Z][a-z]+)+)"', Path(spec.origin).read_text(encoding="utf-8")))


def test_the_dashboard_plots_the_metrics_the_functions_emit_under_their_namespace_and_service(template, monkeypatch):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    ours = [m for m in _dashboard_metrics(template) if m[0] == namespace]
    names = {m[1] for m in ours}
    assert names >= REQUIRED_ON_DASHBOARD
    # A name the code never emits would plot nothing, silently.
    assert names - _emitted_by_the_sweeper(monkeypatch) <= _named_by_the_stream_function() | _named_by_interactions()
    for metric in ours:
        assert metric[2:4] == ["service", service], metric  # Powertools' only default dimension


def test_the_dashboard_shows_hold_time_percentiles_per_operation(template):
    """One series per operation (a SEARCH over the `operation` dimension the stream function adds to the default
    `service`), for each of p50, p95 and p99, under the functions' namespace and service."""
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    namespace, service = env["POWERTOOLS_METRICS_NAMESPACE"], env["POWERTOOLS_SERVICE_NAME"]
    expressions = [m[0]["expression"] for m in _dashboard_metrics(template) if isinstance(m[0], dict)]
    searches = [match.groupdict() for match in map(_HOLD_SEARCH.fullmatch, expressions) if match]
    assert {s["stat"] for s in searches} == HOLD_PERCENTILES
    for search in searches:
        assert search["schema"].split(",") == [namespace, "operation", "service"], search
        assert (search["name"], search["service"]) == ("LockHoldSeconds", service)
    assert "LockHoldSeconds" in _named_by_the_stream_function()
    body, _ = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    # Each series is labelled with its operation (a dynamic label; "${!" is Fn::Sub's escape of "${").
    assert body.count('"label": "${!PROP(\'Dim.operation\')}"') == len(HOLD_PERCENTILES)


def _named_by_interactions() -> set[str]:
    """The metric names the interactions function publishes: the PascalCase string literals of its handler and of
    ``tflock_reaper.entrypoints.interactions`` (SlackRequests, SlackActions, SlackRequestsRefused, ...)."""
    spec = find_spec("tflock_reaper.entrypoints.interactions")
    assert spec is not None
    assert spec.origin is not None
    handler = Path(__file__).parents[2] / "functions" / "interactions" / "interactions_handler.py"
    text = Path(spec.origin).read_text(encoding="utf-8") + handler.read_text(encoding="utf-8")
    return set(re.findall(r'"([A-Z][a-z]+(?:[A-Z][a-z]+)+)"', text))


def test_a_failing_slack_app_press_raises_an_alarm(template, alarms):
    """Issue 18: the function's own errors and the presses it answered with a failure, summed; refusals are not."""
    alarm = alarms["InteractionsErrorsAlarm"]
    assert alarm["Condition"] == "HasSlackApp"
    metrics = {m["Id"]: m for m in alarm["Properties"]["Metrics"]}
    errors, failures = metrics["errors"]["MetricStat"]["Metric"], metrics["failures"]["MetricStat"]["Metric"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"!Ref": "InteractionsFunction"}}]
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert (failures["Namespace"], failures["MetricName"]) == (
        env["POWERTOOLS_METRICS_NAMESPACE"],
        "InteractionFailures",
    )
    assert failures["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}]
    assert "InteractionFailures" in _named_by_interactions()
    assert [m["Id"] for m in metrics.values() if m["ReturnData"]] == ["failed"]
    assert metrics["failed"]["Expression"] == "FILL(errors, 0) + FILL(failures, 0)"
    props = alarm["Properties"]
    assert (props["ComparisonOperator"], props["Threshold"], props["TreatMissingData"]) == (
        "GreaterThanThreshold",
        0,
        "notBreaching",
    )


def test_the_dashboard_shows_the_slack_apps_presses_and_its_function(template):
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    expressions = [m[0]["expression"] for m in _dashboard_metrics(template) if isinstance(m[0], dict)]
    assert any('MetricName="SlackActions"' in e and "{TflockReaper,action,outcome,service}" in e for e in expressions)
    assert any('MetricName="SlackRequestsRefused"' in e and "{TflockReaper,service,status}" in e for e in expressions)
    names = {m[1] for m in _dashboard_metrics(template) if not isinstance(m[0], dict)}
    assert {"SlackRequests", "InteractionFailures"} <= names
    assert {"SlackActions", "SlackRequestsRefused", "SlackRequests"} <= _named_by_interactions()
    assert '"FunctionName", "${InteractionsFunctionName}"' in body
    assert variables["InteractionsFunctionName"]["!If"][:2] == ["HasSlackApp", {"!Ref": "InteractionsFunction"}]


def test_the_dashboard_shows_the_locks_force_unlocked(template):
    body, _ = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "x", body))["widgets"]
    [widget] = [w for w in widgets if any(m[1:2] == ["ForceUnlocks"] for m in w["properties"].get("metrics", []))]
    assert widget["properties"]["stat"] == "Sum"  # a count of releases per period
    assert "ForceUnlocks" in _named_by_the_stream_function()


def test_the_dashboard_plots_the_functions_by_name(template):
    lambda_metrics = [m for m in _dashboard_metrics(template) if m[0] == "AWS/Lambda"]
    assert {m[1] for m in lambda_metrics} >= {"Invocations", "Errors", "IteratorAge"}
    body, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["!Sub"]
    assert '"FunctionName", "${SweeperFunction}"' in body
    assert '"FunctionName", "${StreamFunctionName}"' in body
    # The stream function is conditional: the dashboard must not reference it when it is not deployed.
    assert variables["StreamFunctionName"]["!If"][:2] == ["HasLockTableStream", {"!Ref": "StreamFunction"}]


def test_an_unreadable_lock_raises_an_alarm(alarms):
    """Issue 13.5: a lock that cannot be judged blocks its state and is never reaped: an alarm watches for it."""
    props = alarms["UnreadableLocksAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("TflockReaper", "UnreadableLocks")
    assert _dimension(alarms["UnreadableLocksAlarm"], "service") == "tflock-reaper"
    assert (props["ComparisonOperator"], props["Threshold"]) == ("GreaterThanThreshold", 0)
