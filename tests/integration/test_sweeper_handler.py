"""The scheduled Lambda handler against moto: the same engine, structured logs and EMF metrics."""

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from factories import digest_item, lock_item
from fakes import FakeLambdaContext
from tables import LOCK_TABLE, STATE_TABLE, put, table_items

EVENT = json.loads((Path(__file__).parents[2] / "events" / "sweeper_schedule.json").read_text())
STALE_PATH = "tf-state/dev/app.tfstate"


@pytest.fixture
def logs():
    """What the function logs (Powertools binds its handler to the stdout of import time: redirect it)."""
    import sweeper_handler  # noqa: PLC0415

    buffer = io.StringIO()
    previous = sweeper_handler.logger.registered_handler.setStream(buffer)
    yield buffer
    sweeper_handler.logger.registered_handler.setStream(previous)


@pytest.fixture
def handler(dynamodb, monkeypatch, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "mode: enforce\ndefaults: {min_observed: 0s, trust_holder_clock: true}\n"
        "rules:\n  - match: 'tf-state/dev/*'\n    holder: {assume: gone}\n"
    )
    monkeypatch.setenv("LOCK_TABLE_NAME", LOCK_TABLE)
    monkeypatch.setenv("STATE_TABLE_NAME", STATE_TABLE)
    monkeypatch.setenv("POLICY_PATH", str(policy))
    monkeypatch.setenv("REAPER_MODE", "enforce")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tflock-reaper")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "TflockReaper")
    import sweeper_handler  # noqa: PLC0415 - imported after the environment is set, as Lambda does
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    # Metrics read their namespace and service at first import, which another test module may have done before us.
    monkeypatch.setattr(sweeper_handler.metrics, "namespace", "TflockReaper")
    monkeypatch.setattr(sweeper_handler.metrics, "service", "tflock-reaper")
    get_settings.cache_clear()
    yield sweeper_handler.lambda_handler
    get_settings.cache_clear()


def _log_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_handler_reaps_logs_each_verdict_and_emits_metrics(handler, dynamodb, logs, capsys):
    stale = lock_item(STALE_PATH, created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, stale, digest_item(STALE_PATH), {"LockID": {"S": "tf-state/x"}, "Info": {"S": "nope"}})
    result = handler(EVENT, FakeLambdaContext())
    assert result["mode"] == "enforce"
    assert result["summary"]["reaped"] == 1
    assert table_items(dynamodb) == sorted(
        [digest_item(STALE_PATH), {"LockID": {"S": "tf-state/x"}, "Info": {"S": "nope"}}],
        key=lambda i: str(i["LockID"]),
    )
    lines = _log_lines(logs.getvalue())
    reaped = next(line for line in lines if line.get("message") == "lock reaped")
    assert reaped["deleted_item"] == stale
    assert reaped["lock_path"] == STALE_PATH
    verdicts = [line for line in lines if line.get("message") == "lock verdict"]
    assert [(v["lock_path"], v["outcome"]) for v in verdicts] == [(STALE_PATH, "reaped")]
    # An Info that is not JSON at a state's LockID: a lock that cannot be read, logged in full, counted, kept.
    unreadable = next(line for line in lines if line.get("message") == "unreadable lock")
    assert (unreadable["lock_id"], unreadable["level"]) == ("tf-state/x", "WARNING")
    assert unreadable["item"] == {"LockID": {"S": "tf-state/x"}, "Info": {"S": "nope"}}
    emf = next(line for line in _log_lines(capsys.readouterr().out) if "LocksReaped" in line)
    assert emf["LocksReaped"] == [1.0]
    assert emf["ItemsSkipped"] == [1.0]
    assert emf["UnreadableLocks"] == [1.0]
    assert emf["LocksSeen"] == [1.0]
    assert emf["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TflockReaper"


def test_handler_in_dry_run_deployment_never_deletes(handler, dynamodb, monkeypatch):
    monkeypatch.setenv("REAPER_MODE", "dry-run")
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    stale = lock_item(STALE_PATH, created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, stale)
    result = handler(EVENT, FakeLambdaContext())
    assert result["summary"]["would_reap"] == 1
    assert table_items(dynamodb) == [stale]


def test_handler_fails_loudly_on_a_bad_policy_and_deletes_nothing(handler, dynamodb, monkeypatch, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: sometimes\n")
    monkeypatch.setenv("POLICY_PATH", str(bad))
    from tflock_reaper.domain.policy import PolicyError  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    stale = lock_item(STALE_PATH, created=datetime.now(UTC) - timedelta(hours=5))
    put(dynamodb, stale)
    with pytest.raises(PolicyError, match=r"bad\.yaml:1:7: mode"):
        handler(EVENT, FakeLambdaContext())
    assert table_items(dynamodb) == [stale]


def test_policy_from_ssm_parameter(handler, dynamodb, monkeypatch):
    import boto3  # noqa: PLC0415

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/tflock-reaper/policy",
        Type="String",
        Value="mode: dry-run\ndefaults: {min_observed: 0s, trust_holder_clock: true}\n",
    )
    monkeypatch.setenv("POLICY_PARAMETER", "/tflock-reaper/policy")
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    put(dynamodb, lock_item(STALE_PATH, created=datetime.now(UTC) - timedelta(hours=5)))
    result = handler(EVENT, FakeLambdaContext())
    # The SSM policy (dry-run, holder unknown) wins over the packaged file (enforce, holder gone).
    assert result["mode"] == "dry-run"
    assert result["summary"]["blocked"] == 1


def test_handler_sweeps_lockfiles_without_a_lock_table(handler, dynamodb, monkeypatch, tmp_path):
    import boto3  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="tf-state")
    info = json.loads(lock_item("tf-state/dev/app.tfstate")["Info"]["S"])
    info["Created"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    s3.put_object(Bucket="tf-state", Key="dev/app.tfstate.tflock", Body=json.dumps(info).encode())
    s3.put_object(Bucket="tf-state", Key="dev/app.tfstate", Body=b"{}")  # the state itself: never touched
    policy = tmp_path / "lockfiles.yaml"
    policy.write_text(
        "mode: enforce\ndefaults: {warn_after: 0s, reap_after: 0s, min_observed: 0s, holder: {assume: gone}}\n"
    )
    monkeypatch.setenv("POLICY_PATH", str(policy))
    monkeypatch.setenv("LOCK_TABLE_NAME", "")
    monkeypatch.setenv("STATE_BUCKETS", "tf-state")
    get_settings.cache_clear()
    result = handler(EVENT, FakeLambdaContext())
    assert result["summary"]["reaped"] == 1
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tf-state")["Contents"]]
    assert keys == ["dev/app.tfstate"]


def test_settings_need_a_lock_table_or_state_buckets(monkeypatch):
    from pydantic import ValidationError  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import Settings  # noqa: PLC0415

    with pytest.raises(ValidationError, match="set LOCK_TABLE_NAMES"):
        Settings.model_validate({"LOCK_TABLE_NAME": "", "STATE_BUCKETS": " , "})
    assert Settings.model_validate({"STATE_BUCKETS": "a, b/envs"}).state_buckets == ("a", "b/envs")


def _emf(out: str) -> dict:
    (emf,) = [line for line in _log_lines(out) if "_aws" in line and "LocksSeen" in line]
    return emf


def test_handler_emits_the_dashboard_metrics_from_the_sweep(handler, dynamodb, capsys):
    """Locks held, the oldest lock's age, stale locks and reaps: what the template's dashboard plots."""
    stale_created = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
    put(
        dynamodb,
        lock_item(STALE_PATH, created=stale_created),
        lock_item("tf-state/dev/fresh.tfstate", created=datetime.now(UTC) - timedelta(minutes=1)),
        lock_item("tf-state/prod/db.tfstate", created=datetime.now(UTC) - timedelta(hours=1)),
    )
    result = handler(EVENT, FakeLambdaContext())
    emf = _emf(capsys.readouterr().out)
    assert emf["LocksSeen"] == [3.0]
    assert emf["StaleLocks"] == [2.0]  # the 5 h lock (reaped) and the 1 h one (past warn_after, no rule to reap)
    assert emf["LocksReaped"] == [result["summary"]["reaped"]] == [1.0]
    assert emf["NotificationFailures"] == [0.0]  # no channel configured
    age = emf["OldestLockAgeSeconds"][0]
    assert 5 * 3600 <= age < 5 * 3600 + 120
    definitions = {m["Name"]: m.get("Unit") for m in emf["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert definitions["OldestLockAgeSeconds"] == "Seconds"
    assert emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]
    assert emf["service"] == "tflock-reaper"


def test_an_empty_table_reports_zero_locks_and_a_zero_oldest_age(handler, dynamodb, capsys):
    handler(EVENT, FakeLambdaContext())
    emf = _emf(capsys.readouterr().out)
    assert emf["LocksSeen"] == [0.0]
    assert emf["OldestLockAgeSeconds"] == [0.0]
    assert emf["StaleLocks"] == [0.0]


def test_notification_metrics_count_the_typed_outcomes_of_every_lock(handler):
    """Sent and failed channels are counted by their status, and an alert path that raised counts as one failure;
    duplicates, skipped channels and dry runs count as neither."""
    import sweeper_handler  # noqa: PLC0415
    from fakes import FakeLockTable  # noqa: PLC0415
    from tflock_reaper.adapters.memory import MemoryStateStore  # noqa: PLC0415
    from tflock_reaper.domain.notification import NotificationKind  # noqa: PLC0415
    from tflock_reaper.domain.notifier import NotSent, SendStatus, SentNotification  # noqa: PLC0415
    from tflock_reaper.domain.policy import Policy  # noqa: PLC0415
    from tflock_reaper.services.sweep import sweep  # noqa: PLC0415

    class Sink:
        def on_entry(self, entry, now):
            if entry.lock.lock_path == "tf-state/dev/broken.tfstate":
                raise RuntimeError("state table unavailable")
            statuses = {"a": SendStatus.SENT, "b": SendStatus.FAILED, "c": NotSent.SKIPPED, "d": SendStatus.DUPLICATE}
            return [
                SentNotification(NotificationKind.STALE, 0, statuses, errors={"b": "HTTP 500"}),
                SentNotification(NotificationKind.STILL_STALE, 1, {"a": SendStatus.SENT}),
                SentNotification(NotificationKind.STALE, 0, {"a": NotSent.WOULD_SEND}, rendered={"a": {}}),
            ]

    old = datetime.now(UTC) - timedelta(hours=5)
    table = FakeLockTable([lock_item(STALE_PATH, created=old), lock_item("tf-state/dev/broken.tfstate", created=old)])
    report = sweep(lock_table=table, state=MemoryStateStore(), policy=Policy(), mode="dry-run", alerts=Sink())
    assert [n.to_dict() for n in report.locks[1].notifications] == [{"error": "RuntimeError: state table unavailable"}]

    sweeper_handler.metrics.clear_metrics()
    sweeper_handler.publish_metrics(report)
    published = {name: list(metric["Value"]) for name, metric in sweeper_handler.metrics.metric_set.items()}
    sweeper_handler.metrics.clear_metrics()
    assert published["NotificationsSent"] == [2.0]
    assert published["NotificationFailures"] == [2.0]
