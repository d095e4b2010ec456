"""The lockfile adapter against moto (mock_aws): listing `.tflock` objects, and a delete conditional on the ETag
observed (If-Match); a sweep over a lock table and lockfiles together (dual backends)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from factories import NOW, go_time, lock_info
from tables import LOCK_TABLE, put, table_items
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.lockfiles import BucketLocation, LockfileBuckets
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.lock import LockRecord, classify_lockfile
from tflock_reaper.domain.policy import parse_policy
from tflock_reaper.entrypoints.cli import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_OK, main
from tflock_reaper.services.sweep import sweep

BUCKET = "tf-state"
KEY = "dev/network/terraform.tfstate"
PATH = f"{BUCKET}/{KEY}"
POLICY = parse_policy(
    """
mode: enforce
defaults: {warn_after: 0s, reap_after: 0s, min_observed: 0s, trust_holder_clock: true}
rules:
  - match: "tf-state/*"
    holder: {assume: gone}
"""
)


@pytest.fixture
def s3(dynamodb: Any) -> Any:
    """S3 in the same mock_aws as the lock table (the `dynamodb` fixture)."""
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _body(path: str = PATH, **kwargs: Any) -> str:
    # Created = now (moto stamps LastModified with the real clock): server time and Created agree.
    kwargs.setdefault("created", go_time(datetime.now(UTC)))
    return json.dumps(lock_info(path, **kwargs), separators=(",", ":"))


def _put(s3: Any, key: str, body: str | bytes) -> str:
    return str(s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"])


def _keys(s3: Any) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))


def _buckets(s3: Any, *locations: str, page_size: int = 1000) -> LockfileBuckets:
    return LockfileBuckets(s3, [BucketLocation.parse(text) for text in locations or (BUCKET,)], page_size=page_size)


def _sweep(s3: Any, dynamodb: Any, *, table: bool = True) -> Any:
    return sweep(
        lock_table=LockTable(dynamodb, LOCK_TABLE) if table else None,
        lockfiles=_buckets(s3),
        state=MemoryStateStore(),
        policy=POLICY,
        mode="enforce",
    )


def test_scan_lists_only_tflock_objects_across_pages_and_under_the_prefix(s3):
    for n in range(5):
        _put(s3, f"app{n}/terraform.tfstate.tflock", _body(f"{BUCKET}/app{n}/terraform.tfstate"))
        _put(s3, f"app{n}/terraform.tfstate", "{}")
    _put(s3, "other/x.tfstate.tflock", _body(f"{BUCKET}/other/x.tfstate"))

    found = list(_buckets(s3, BUCKET, page_size=2).scan())
    under = list(_buckets(s3, f"{BUCKET}/app3", f"{BUCKET}/app3/").scan())

    assert sorted(o.key for o in found) == sorted(
        [f"app{n}/terraform.tfstate.tflock" for n in range(5)] + ["other/x.tfstate.tflock"]
    )
    assert [o.key for o in under] == ["app3/terraform.tfstate.tflock"]
    obj = found[0]
    assert obj.etag.startswith('"')
    assert obj.last_modified.tzinfo is not None
    assert isinstance(classify_lockfile(obj, NOW.replace(year=2100)), LockRecord)


def test_delete_with_the_etag_observed_removes_the_lockfile(s3):
    _put(s3, f"{KEY}.tflock", _body())
    buckets = _buckets(s3)
    [obj] = buckets.scan()
    assert buckets.delete_if_unchanged(obj).deleted
    assert _keys(s3) == []


def test_a_lockfile_replaced_between_read_and_delete_is_not_deleted(s3):
    # Given a lockfile read by the reaper, then released and re-acquired (a new object, a new ETag)
    _put(s3, f"{KEY}.tflock", _body())
    buckets = _buckets(s3)
    [obj] = buckets.scan()
    new_body = _body(lock_id="the-new-holder")
    _put(s3, f"{KEY}.tflock", new_body)

    # When the reaper deletes what it read
    result = buckets.delete_if_unchanged(obj)

    # Then S3 refuses (412) and the new holder's lockfile survives
    assert not result.deleted
    assert result.reason is not None
    assert "PreconditionFailed" in result.reason
    assert s3.get_object(Bucket=BUCKET, Key=f"{KEY}.tflock")["Body"].read().decode() == new_body


def test_a_lockfile_released_before_the_delete_is_changed_not_an_error(s3):
    _put(s3, f"{KEY}.tflock", _body())
    buckets = _buckets(s3)
    [obj] = buckets.scan()
    s3.delete_object(Bucket=BUCKET, Key=f"{KEY}.tflock")
    assert not buckets.delete_if_unchanged(obj).deleted


def test_a_missing_bucket_is_a_clear_access_error(s3):
    with pytest.raises(AwsAccessError, match="cannot list s3://absent-bucket: NoSuchBucket"):
        list(_buckets(s3, "absent-bucket").scan())


def test_sweep_reaps_a_lockfile_and_skips_a_malformed_one(s3, dynamodb):
    _put(s3, f"{KEY}.tflock", _body())
    _put(s3, "bad/terraform.tfstate.tflock", b"{not json")

    report = _sweep(s3, dynamodb, table=False)

    [entry] = report.locks
    assert (entry.lock.backend, entry.outcome.value, entry.verdict.age_basis) == ("s3", "reaped", "server time")
    [skipped] = report.skipped
    assert skipped.lock_id == f"{BUCKET}/bad/terraform.tfstate.tflock"
    assert "not valid JSON" in skipped.reason
    assert _keys(s3) == ["bad/terraform.tfstate.tflock"]


def test_sweep_reaps_both_sides_of_a_dual_backend(s3, dynamodb):
    body = _body(lock_id="dual-id")
    _put(s3, f"{KEY}.tflock", body)
    put(dynamodb, {"LockID": {"S": PATH}, "Info": {"S": body}})

    report = _sweep(s3, dynamodb)

    [entry] = report.locks
    assert (entry.lock.backend, entry.outcome.value) == ("dual", "reaped"), entry.reasons
    assert _keys(s3) == []
    assert table_items(dynamodb) == []


def test_sweep_of_a_dual_backend_whose_lockfile_changed_leaves_the_item(s3, dynamodb, monkeypatch):
    body = _body(lock_id="dual-id")
    _put(s3, f"{KEY}.tflock", body)
    item = {"LockID": {"S": PATH}, "Info": {"S": body}}
    put(dynamodb, item)
    replacement = _body(lock_id="dual-id", Info="re-written")
    original_delete = LockfileBuckets.delete_if_unchanged

    def replaced_first(self: LockfileBuckets, obj: Any) -> Any:
        _put(s3, obj.key, replacement)  # between the sweep's read and its delete
        return original_delete(self, obj)

    monkeypatch.setattr(LockfileBuckets, "delete_if_unchanged", replaced_first)
    report = _sweep(s3, dynamodb)

    [entry] = report.locks
    assert entry.outcome.value == "changed"
    assert "the DynamoDB lock item was left alone" in entry.reasons
    assert _keys(s3) == [f"{KEY}.tflock"]
    assert table_items(dynamodb) == [item]


def test_sweep_of_a_dual_backend_whose_item_changed_reports_the_item_side(s3, dynamodb):
    body = _body(lock_id="dual-id")
    _put(s3, f"{KEY}.tflock", body)
    put(dynamodb, {"LockID": {"S": PATH}, "Info": {"S": body}})
    lock_table = LockTable(dynamodb, LOCK_TABLE)
    newer = {"LockID": {"S": PATH}, "Info": {"S": _body(lock_id="dual-id", Who="someone@else")}}

    class ReplacedTable:
        name = lock_table.name
        scan = lock_table.scan
        read = lock_table.read

        @property
        def arn(self) -> str | None:
            return lock_table.arn

        def delete_if_unchanged(self, lock_path: str, raw_info: str) -> Any:
            put(dynamodb, newer)
            return lock_table.delete_if_unchanged(lock_path, raw_info)

    report = sweep(
        lock_table=ReplacedTable(),
        lockfiles=_buckets(s3),
        state=MemoryStateStore(),
        policy=POLICY,
        mode="enforce",
    )

    [entry] = report.locks
    assert entry.outcome.value == "reaped"  # the lockfile was deleted: reaped, saying what was left and why
    assert any("the DynamoDB lock item was released or re-acquired" in r for r in entry.reasons)
    assert table_items(dynamodb) == [newer]


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_cli_without_table_or_bucket_says_which_to_give(s3, capsys):
    assert _cli("locks")[0] == EXIT_CONFIG
    assert "give the lock table (--table T), the state bucket(s) (--bucket B[/PREFIX]), or both" in (
        capsys.readouterr().err
    )


def test_cli_lists_explains_and_sweeps_lockfiles_with_their_backend(s3, dynamodb, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "mode: enforce\ndefaults: {warn_after: 0s, reap_after: 0s, min_observed: 0s, trust_holder_clock: true}\n"
        'rules: [{match: "tf-state/*", holder: {assume: gone}}]\n'
    )
    body = _body(lock_id="dual-id")
    _put(s3, f"{KEY}.tflock", body)
    put(dynamodb, {"LockID": {"S": PATH}, "Info": {"S": body}})
    _put(s3, "solo/terraform.tfstate.tflock", _body(f"{BUCKET}/solo/terraform.tfstate"))

    code, listed = _cli("locks", "--bucket", BUCKET, "--table", LOCK_TABLE, "--json")
    assert code == EXIT_OK
    assert sorted((lk["path"], lk["backend"]) for lk in json.loads(listed)["locks"]) == [
        (PATH, "dual"),
        (f"{BUCKET}/solo/terraform.tfstate", "s3"),
    ]

    code, explained = _cli("explain", "--bucket", BUCKET, "--policy", str(policy), f"{BUCKET}/solo/terraform.tfstate")
    assert code == EXIT_OK
    assert "(backend s3)" in explained
    assert _cli("explain", "--bucket", BUCKET, "--policy", str(policy), f"{BUCKET}/none.tfstate")[0] == EXIT_NOT_FOUND

    code, swept = _cli("sweep", "--bucket", f"{BUCKET}/solo", "--policy", str(policy), "--enforce", "--json")
    assert code == EXIT_OK
    report = json.loads(swept)
    assert (report["table"], report["buckets"]) == (None, f"s3://{BUCKET}/solo")
    assert [(lk["backend"], lk["outcome"]) for lk in report["locks"]] == [("s3", "reaped")]
    assert _keys(s3) == [f"{KEY}.tflock"]


# -- incremental sweeps of lockfiles: the open set (s3://<bucket>, written by the lockfile audit) says which to read
class _Healthy:
    def health(self, stream_arn: str | None) -> Any:
        from tflock_reaper.domain.reconcile import AuditHealth  # noqa: PLC0415

        return AuditHealth(consumer=True, failed_records=0, iterator_age=None)

    lockfile_health = health


def test_an_incremental_sweep_reads_the_held_lockfiles_without_listing_the_bucket(s3, dynamodb):
    from collections import Counter  # noqa: PLC0415

    from tables import STATE_TABLE  # noqa: PLC0415
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
    from tflock_reaper.services.reconcile import Reconciler  # noqa: PLC0415

    for n in range(30):  # states, unlocked
        s3.put_object(Bucket=BUCKET, Key=f"dev/s{n}/terraform.tfstate", Body=b"{}")
    _put(s3, KEY + ".tflock", _body())
    calls: Counter[str] = Counter()
    s3.meta.events.register("before-call.s3", lambda event_name, **_: calls.update([event_name.rsplit(".", 1)[-1]]))

    def run() -> Any:
        calls.clear()
        state = StateTable(dynamodb, STATE_TABLE)
        reconciler = Reconciler(store=state, probe=_Healthy(), deployment="d1")  # type: ignore[arg-type]
        policy = parse_policy("mode: dry-run\n")
        return sweep(
            lock_table=None, lockfiles=_buckets(s3), state=state, policy=policy, mode="dry-run", reconciler=reconciler
        )

    first = run()
    assert first.sweep_kind.value == "full"
    assert calls["ListObjectsV2"] == 1
    second = run()
    assert second.sweep_kind.value == "incremental"
    assert [entry.lock.lock_path for entry in second.locks] == [PATH]
    assert calls == Counter({"GetObject": 1})  # no listing: one read per held lockfile
    s3.delete_object(Bucket=BUCKET, Key=KEY + ".tflock")  # released; the audit's record of it not in yet
    third = run()
    assert (third.sweep_kind.value, third.locks, third.reads[0].held) == ("incremental", [], 1)
    assert StateTable(dynamodb, STATE_TABLE).held(f"s3://{BUCKET}") == []  # closed, nothing deleted
    assert calls["DeleteObject"] == 0


def test_the_lockfile_audit_is_healthy_only_with_its_rule_enabled_and_each_bucket_sending_events(s3):
    from tflock_reaper.adapters.audit_health import AuditHealthProbe  # noqa: PLC0415

    events = boto3.client("events", region_name="us-east-1")
    events.put_rule(Name="lockfiles", EventPattern=json.dumps({"source": ["aws.s3"]}), State="ENABLED")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="failures")["QueueUrl"]
    probe = AuditHealthProbe(
        lambda_client=boto3.client("lambda", region_name="us-east-1"),
        sqs_client=sqs,
        cloudwatch_client=boto3.client("cloudwatch", region_name="us-east-1"),
        mappings=[],
        function_name="stream",
        queue_url=queue,
        lockfile_rule="lockfiles",
        events_client=events,
        s3_client=s3,
    )
    assert probe.lockfile_health([BUCKET]).consumer is False  # the bucket sends nothing to EventBridge yet
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"EventBridgeConfiguration": {}})
    # moto keeps the setting but does not render it back; S3 answers with this body, which botocore's own parser
    # then reads (as it would S3's).
    answer = (
        b'<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
        b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration></EventBridgeConfiguration>'
        b"</NotificationConfiguration>"
    )

    def as_s3_answers(request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse  # noqa: PLC0415

        return AWSResponse(request.url, 200, {}, _Raw(answer))

    s3.meta.events.register("before-send.s3.GetBucketNotificationConfiguration", as_s3_answers)
    health = probe.lockfile_health([BUCKET])
    assert (health.consumer, health.failed_records, health.problem) == (True, 0, None)
    events.disable_rule(Name="lockfiles")
    assert probe.lockfile_health([BUCKET]).consumer is False


class _Raw:
    """A raw HTTP body, as urllib3 gives botocore one."""

    def __init__(self, body: bytes) -> None:
        self._body = io.BytesIO(body)

    def stream(self, **_: Any) -> Any:
        yield self._body.read()

    def read(self, *_: Any) -> bytes:
        return self._body.read()


def test_a_dual_backend_stays_in_both_open_sets_and_is_read_whole_by_incremental_sweeps(s3, dynamodb):
    """The stream records a dual backend's lock item under the table's scope and the lockfile audit its lockfile
    under the bucket's: a sweep that merges them into one lock must close neither, and an incremental sweep must
    read both sides (a reap of the item alone would leave the lockfile blocking Terraform)."""
    from tables import STATE_TABLE  # noqa: PLC0415
    from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
    from tflock_reaper.domain.lock import classify_item  # noqa: PLC0415
    from tflock_reaper.services.reconcile import Reconciler  # noqa: PLC0415

    body = _body(lock_id="dual-id")
    etag = _put(s3, f"{KEY}.tflock", body)
    put(dynamodb, {"LockID": {"S": PATH}, "Info": {"S": body}})
    arn = dynamodb.describe_table(TableName=LOCK_TABLE)["Table"]["TableArn"]
    store = StateTable(dynamodb, STATE_TABLE)
    now = datetime.now(UTC)
    item_side = classify_item({"LockID": {"S": PATH}, "Info": {"S": body}}, now, table=LOCK_TABLE, table_arn=arn)
    file_side = classify_lockfile(_buckets(s3).get(PATH), now)  # type: ignore[arg-type]
    assert isinstance(item_side, LockRecord)
    assert isinstance(file_side, LockRecord)
    assert file_side.lockfile is not None
    assert file_side.lockfile.etag == etag
    store.record_acquired(item_side, now, "1" * 21)  # the stream function
    store.record_acquired(file_side, now, "evt-1")  # the lockfile audit

    def run() -> Any:
        state = StateTable(dynamodb, STATE_TABLE)
        return sweep(
            lock_table=LockTable(dynamodb, LOCK_TABLE),
            lockfiles=_buckets(s3),
            state=state,
            policy=parse_policy("mode: dry-run\n"),
            mode="dry-run",
            reconciler=Reconciler(store=state, probe=_Healthy(), deployment="d1"),  # type: ignore[arg-type]
        )

    assert run().sweep_kind.value == "full"
    assert [h.lock_id for h in store.held(f"s3://{BUCKET}")] == ["dual-id"]  # not closed by the merge
    assert [h.lock_id for h in store.held(arn)] == ["dual-id"]
    incremental = run()
    assert incremental.sweep_kind.value == "incremental"
    [entry] = incremental.locks
    assert entry.lock.backend == "dual"
