"""Fault injection: DynamoDB throttling and 5xx on the lock table and the state table, failing notifiers and
holder checks. Faults are injected on the real boto3 client through botocore's event system (a ``before-send``
handler answering in DynamoDB's place), so the SDK's own retries and error parsing run as in production.

The promises: the sweep finishes what it can, counts and reports the rest, deletes nothing wrongly, and the
next sweep (fault gone) reaps what it should.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from factories import digest_item, lock_item
from fakes import FakeLambdaContext
from moto.core.botocore_stubber import MockRawResponse
from tables import LOCK_TABLE, STATE_TABLE, put, table_items
from tflock_reaper.adapters.aws import _CLIENT_CONFIG, AwsClients
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.lock_table import LockTable
from tflock_reaper.adapters.state_table import StateTable
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.liveness import AssumeGone, HolderCheck
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import HolderSpec, NotifySpec, Policy, parse_policy
from tflock_reaper.domain.reconcile import AuditHealth
from tflock_reaper.domain.report import SweepReport
from tflock_reaper.entrypoints.wiring import make_alerter
from tflock_reaper.services.reconcile import Reconciler
from tflock_reaper.services.sweep import HolderChecks, sweep

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(hours=5)
POLICY = parse_policy(
    """
mode: enforce
max_reaps_per_sweep: 10
defaults: {warn_after: 0s, reap_after: 1h, min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}
rules:
  - match: "tf-state/unknown/*"
    holder: {assume: unknown}
"""
)
A, B, C = "tf-state/dev/a.tfstate", "tf-state/dev/b.tfstate", "tf-state/dev/c.tfstate"

THROTTLED = (
    400,
    "ProvisionedThroughputExceededException",
    "The level of configured provisioned throughput was exceeded",
)
THROTTLING = (400, "ThrottlingException", "Rate of requests exceeds the allowed throughput")
UNAVAILABLE = (500, "InternalServerError", "Internal server error")


class Counter(dict[str, int]):
    def __missing__(self, key: str) -> int:
        return 0


@dataclass
class Faults:
    """DynamoDB answering errors in place of moto for chosen calls, as seen on the wire (every attempt)."""

    client: Any
    attempts: Counter = field(default_factory=Counter)
    _handlers: list[tuple[str, Callable[..., Any]]] = field(default_factory=list)

    def fail(
        self,
        operation: str,
        error: tuple[int, str, str],
        *,
        table: str | None = None,
        when: Callable[[dict[str, Any]], bool] = lambda body: True,
        times: int | None = None,
    ) -> None:
        """``operation`` on ``table`` (any, if None) fails with ``error`` while ``when(request body)``; only the
        first ``times`` matching attempts fail, when given."""
        status, code, message = error
        failed = 0

        target = f"DynamoDB_20120810.{operation}"

        def answer(request: Any, **_: Any) -> AWSResponse | None:
            nonlocal failed
            request.headers["X-Amz-Target"] = target  # undo a previous attempt's disarming (see below)
            body = json.loads(request.body or b"{}")
            if (table is not None and body.get("TableName") != table) or not when(body):
                return None
            if times is not None and failed >= times:
                return None
            failed += 1
            self.attempts[operation] += 1
            payload = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message})
            headers = {"x-amzn-RequestId": "fault", "Content-Type": "application/x-amz-json-1.0"}
            # botocore offers the request to every before-send handler and takes the first answer (ours), so
            # moto would still carry it out: turn what moto sees into a harmless ListTables.
            request.headers["X-Amz-Target"] = "DynamoDB_20120810.ListTables"
            return AWSResponse(request.url, status, headers, MockRawResponse(payload))

        event = f"before-send.dynamodb.{operation}"
        # First: moto's own before-send handler would answer otherwise.
        self.client.meta.events.register_first(event, answer)
        self._handlers.append((event, answer))

    def clear(self) -> None:
        for event, handler in self._handlers:
            self.client.meta.events.unregister(event, handler)
        self._handlers.clear()


def _key_is(path: str) -> Callable[[dict[str, Any]], bool]:
    return lambda body: body.get("Key", {}).get("LockID", {}).get("S") == path


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The SDK's retry back-off, recorded instead of slept (the retry decisions themselves are untouched)."""
    slept: list[float] = []
    shim = types.SimpleNamespace(**{name: getattr(time, name) for name in dir(time) if not name.startswith("_")})
    shim.sleep = slept.append
    monkeypatch.setattr(botocore.endpoint, "time", shim)
    return slept


#: Whether the test's sweeps are incremental (the ``aws`` fixture runs each test in both kinds).
SWEEP_KIND = {"incremental": False}


class _HealthyAudit:
    def health(self, stream_arn: str | None) -> AuditHealth:
        return AuditHealth(consumer=True, failed_records=0, iterator_age=None)

    def lockfile_health(self, buckets: object) -> AuditHealth:
        return self.health(None)


@pytest.fixture(params=["full", "incremental"])
def aws(request: pytest.FixtureRequest, dynamodb: Any, sleeps: list[float]) -> Iterator[tuple[AwsClients, Faults]]:
    """The reaper's own clients (retry configuration included) and a fault injector on its DynamoDB client; each
    test runs with full sweeps, then with incremental ones (the audit healthy, the locks recorded as the stream
    function records them)."""
    SWEEP_KIND["incremental"] = request.param == "incremental"
    clients = AwsClients(region="us-east-1")
    faults = Faults(clients.dynamodb())
    yield clients, faults
    faults.clear()
    SWEEP_KIND["incremental"] = False


def _full_sweeps_only(reason: str) -> None:
    if SWEEP_KIND["incremental"]:
        pytest.skip(f"full sweeps only: {reason}")


def _audited(scope_client: Any) -> Reconciler:
    """What the stream function would have recorded by now (every lock of the table acquired at its Created, by a
    client without faults), and a recent reconciliation: so the sweep is incremental."""
    clean = boto3.client("dynamodb", region_name="us-east-1")
    store = StateTable(clean, STATE_TABLE)
    arn = clean.describe_table(TableName=LOCK_TABLE)["Table"]["TableArn"]
    for n, item in enumerate(table_items(clean)):
        lock = classify_item(item, NOW, table=LOCK_TABLE, table_arn=arn)
        if isinstance(lock, LockRecord):
            store.record_acquired(lock, lock.info.created, str(10**20 + n))
    store.record_full(arn, NOW, deployment="faults", failed_records=0)
    return Reconciler(store=StateTable(scope_client, STATE_TABLE), probe=_HealthyAudit(), deployment="faults")


def _sweep(
    clients: AwsClients, *, holders: HolderChecks | None = None, alerts: Any = None, policy: Policy = POLICY
) -> SweepReport:
    client = clients.dynamodb()
    reconciler = _audited(client) if SWEEP_KIND["incremental"] else None
    report = sweep(
        lock_table=LockTable(client, LOCK_TABLE),
        state=StateTable(client, STATE_TABLE),
        policy=policy,
        mode="enforce",
        clock=lambda: NOW,
        holders=holders,
        alerts=alerts,
        reconciler=reconciler,
    )
    assert report.sweep_kind.value == ("incremental" if SWEEP_KIND["incremental"] else "full"), report.sweep_reasons
    return report


def _paths(dynamodb: Any) -> list[str]:
    return [item["LockID"]["S"] for item in table_items(dynamodb)]


def _outcomes(report: SweepReport) -> dict[str, Outcome]:
    return {entry.lock.lock_path: entry.outcome for entry in report.locks}


# -- the SDK's retries -------------------------------------------------------------------------------------------
#: botocore's ``retries.max_attempts`` counts retries, not attempts: 3 means 1 call + 3 retries.
ATTEMPTS = 4


def test_the_clients_retry_in_standard_mode_a_bounded_number_of_times() -> None:
    client = AwsClients(region="us-east-1").dynamodb()
    # botocore rewrites the shared Config's max_attempts (3 retries) as total_max_attempts (4) when it builds
    # a client: compare what the clients run with.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": ATTEMPTS}
    assert _CLIENT_CONFIG.retries is not None
    assert _CLIENT_CONFIG.retries["mode"] == "standard"


@pytest.mark.parametrize("error", [THROTTLED, THROTTLING, UNAVAILABLE], ids=lambda e: e[1])
def test_a_persistent_fault_is_retried_a_bounded_number_of_times_then_the_delete_fails_and_the_lock_stays(
    aws, dynamodb, sleeps, error
):
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD), lock_item(B, created=OLD))
    faults.fail("DeleteItem", error, table=LOCK_TABLE, when=_key_is(A))

    report = _sweep(clients)

    assert faults.attempts["DeleteItem"] == ATTEMPTS  # bounded: 1 call + 3 retries, then the error
    assert len(sleeps) == ATTEMPTS - 1
    assert all(0 <= s <= 20 for s in sleeps)  # standard mode caps its back-off at 20 s
    assert _outcomes(report) == {A: Outcome.FAILED, B: Outcome.REAPED}
    failed = next(e for e in report.locks if e.lock.lock_path == A)
    assert any(f"delete failed: cannot delete '{A}'" in r and error[1] in r for r in failed.reasons)
    assert report.summary()["failed"] == 1
    assert report.summary()["reaped"] == 1
    assert report.to_dict()["summary"]["failed"] == 1
    assert _paths(dynamodb) == [A]
    # The reap record says the attempt failed, with nothing deleted.
    [state] = [i for i in table_items(dynamodb, STATE_TABLE) if i.get("lock_path", {}).get("S") == A]
    assert state["reap_status"] == {"S": "failed"}

    faults.clear()
    again = _sweep(clients)
    assert _outcomes(again) == {A: Outcome.REAPED}
    assert _paths(dynamodb) == []


def test_a_throttle_that_clears_within_the_retries_costs_nothing(aws, dynamodb, sleeps):
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD))
    faults.fail("DeleteItem", THROTTLED, table=LOCK_TABLE, times=ATTEMPTS - 1)
    report = _sweep(clients)
    assert faults.attempts["DeleteItem"] == ATTEMPTS - 1
    assert _outcomes(report) == {A: Outcome.REAPED}
    assert _paths(dynamodb) == []


# -- reading the lock table -------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [THROTTLED, UNAVAILABLE], ids=lambda e: e[1])
def test_a_failing_scan_deletes_nothing_and_raises_the_documented_error(aws, dynamodb, error):
    _full_sweeps_only("an incremental sweep makes no Scan (a failed read falls back to one: test_incremental_sweeps)")
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD), digest_item(A))
    faults.fail("Scan", error, table=LOCK_TABLE)
    deletes: list[Any] = []
    clients.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.DeleteItem", lambda **kw: deletes.append(kw)
    )

    with pytest.raises(AwsAccessError, match=f"cannot scan lock table 'tf-locks': {error[1]}"):
        _sweep(clients)

    assert faults.attempts["Scan"] == ATTEMPTS
    assert deletes == []
    assert sorted(_paths(dynamodb)) == [A, A + "-md5"]
    faults.clear()
    assert _outcomes(_sweep(clients)) == {A: Outcome.REAPED}


def test_a_scan_failing_on_a_later_page_deletes_nothing(aws, dynamodb):
    """Locks of the first page are never acted upon before the whole table has been read."""
    _full_sweeps_only("an incremental sweep makes no Scan")
    clients, faults = aws
    put(dynamodb, *(lock_item(f"tf-state/dev/{n:02d}.tfstate", created=OLD) for n in range(5)))
    get_paginator = clients.dynamodb().get_paginator
    original = get_paginator("scan").paginate
    clients.dynamodb().get_paginator = lambda name: (  # Scan pages of 2 items
        types.SimpleNamespace(paginate=lambda **kw: original(**kw, PaginationConfig={"PageSize": 2}))
        if name == "scan"
        else get_paginator(name)
    )
    faults.fail("Scan", UNAVAILABLE, table=LOCK_TABLE, when=lambda body: "ExclusiveStartKey" in body)
    with pytest.raises(AwsAccessError, match="InternalServerError"):
        _sweep(clients)
    assert len(_paths(dynamodb)) == 5


def test_a_failing_get_item_on_the_lock_table_is_the_documented_error(aws, dynamodb):
    """GetItem (explain) fails with AwsAccessError after the SDK's retries, naming the lock."""
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD))
    faults.fail("GetItem", THROTTLED, table=LOCK_TABLE)
    table = LockTable(clients.dynamodb(), LOCK_TABLE)
    with pytest.raises(AwsAccessError, match=f"cannot read '{A}' from lock table 'tf-locks'"):
        table.get(A)
    assert faults.attempts["GetItem"] == ATTEMPTS
    faults.clear()
    item = table.get(A)
    assert item is not None
    assert item["LockID"] == {"S": A}


# -- the state table --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error", [THROTTLED, UNAVAILABLE], ids=lambda e: e[1])
def test_an_unreadable_state_table_deletes_nothing(aws, dynamodb, error):
    _full_sweeps_only("an incremental sweep finds its observations in the open set: no state-table BatchGetItem")
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD))
    faults.fail("BatchGetItem", error, table=None)
    with pytest.raises(AwsAccessError, match=f"cannot use state table '{STATE_TABLE}': {error[1]}"):
        _sweep(clients)
    assert _paths(dynamodb) == [A]
    faults.clear()
    assert _outcomes(_sweep(clients)) == {A: Outcome.REAPED}


def test_a_reap_that_cannot_be_recorded_first_is_not_attempted(aws, dynamodb):
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD), lock_item(B, created=OLD))
    # The intent record of A's reap (reap_status = pending) is refused; everything else is written.
    faults.fail(
        "UpdateItem",
        THROTTLED,
        table=STATE_TABLE,
        when=lambda body: (
            body["ExpressionAttributeValues"][":path"]["S"] == A
            and "reap_status = :pending" in body["UpdateExpression"]
        ),
    )
    deletes: list[str] = []
    clients.dynamodb().meta.events.register(
        "provide-client-params.dynamodb.DeleteItem", lambda params, **kw: deletes.append(params["Key"]["LockID"]["S"])
    )
    report = _sweep(clients)
    assert _outcomes(report) == {A: Outcome.FAILED, B: Outcome.REAPED}
    failed = next(e for e in report.locks if e.lock.lock_path == A)
    assert any("could not record the reap before deleting" in r for r in failed.reasons)
    assert deletes == [B]
    assert _paths(dynamodb) == [A]
    faults.clear()
    assert _outcomes(_sweep(clients)) == {A: Outcome.REAPED}


def test_bookkeeping_after_the_delete_may_fail_without_stopping_the_sweep(aws, dynamodb):
    """end_reap and the warnings settle records are best effort: the lock is reaped, and the next lock too."""
    clients, faults = aws
    put(dynamodb, lock_item(A, created=OLD), lock_item(B, created=OLD))
    faults.fail(
        "UpdateItem",
        UNAVAILABLE,
        table=STATE_TABLE,
        when=lambda body: "reap_finished_at" in body["UpdateExpression"] or "warned_at" in body["UpdateExpression"],
    )
    report = _sweep(clients)
    assert _outcomes(report) == {A: Outcome.REAPED, B: Outcome.REAPED}
    assert _paths(dynamodb) == []


# -- notifiers and holder checks ----------------------------------------------------------------------------------
class _BrokenSink:
    def __init__(self) -> None:
        self.calls = 0

    def on_entry(self, entry: Any, now: datetime) -> list[dict[str, Any]]:
        self.calls += 1
        raise ConnectionError("slack.com unreachable")


def test_a_raising_notifier_never_stops_the_sweep(aws, dynamodb):
    clients, _ = aws
    put(dynamodb, lock_item(A, created=OLD), lock_item("tf-state/unknown/u.tfstate", created=OLD), lock_item(B))
    sink = _BrokenSink()
    report = _sweep(clients, alerts=sink)
    assert sink.calls == 3
    assert _outcomes(report)[A] is Outcome.REAPED
    assert _outcomes(report)["tf-state/unknown/u.tfstate"] is Outcome.BLOCKED
    assert all(
        [n.to_dict() for n in e.notifications] == [{"error": "ConnectionError: slack.com unreachable"}]
        for e in report.locks
    )
    assert _paths(dynamodb) == ["tf-state/unknown/u.tfstate"]


def test_sns_failing_on_every_attempt_is_counted_and_the_sweep_reaps_on(aws, dynamodb):
    clients, _ = aws
    sns = clients.sns()
    topic = sns.create_topic(Name="tflock-reaper-alerts")["TopicArn"]
    alert_policy = POLICY.model_copy(
        update={
            "channels": parse_policy("channels: {alerts: {type: sns}}").channels,
            "defaults": POLICY.defaults.model_copy(update={"notify": NotifySpec(channels=["alerts"])}),
        }
    )
    published: list[int] = []

    def refuse(request: Any, **_: Any) -> AWSResponse:
        published.append(1)
        error = "<Error><Type>Receiver</Type><Code>InternalError</Code><Message>down</Message></Error>"
        body = f"<ErrorResponse>{error}</ErrorResponse>"
        return AWSResponse(request.url, 500, {}, MockRawResponse(body))

    sns.meta.events.register_first("before-send.sns.Publish", refuse)
    put(dynamodb, lock_item(A, created=OLD), lock_item("tf-state/unknown/u.tfstate", created=OLD))
    state = StateTable(clients.dynamodb(), STATE_TABLE)
    alerter = make_alerter(
        alert_policy, table=LOCK_TABLE, clients=clients, state=state, state_table=STATE_TABLE, default_topic_arn=topic
    )
    report = _sweep(clients, alerts=alerter, policy=alert_policy)
    assert _outcomes(report) == {A: Outcome.REAPED, "tf-state/unknown/u.tfstate": Outcome.BLOCKED}
    assert len(published) == ATTEMPTS  # one Publish, retried as far as the SDK goes, then given up
    statuses = [s for e in report.locks for n in e.notifications for s in n.to_dict().get("channels", {}).values()]
    # The channel failed once; for the rest of this sweep it is known to be down and skipped, never "sent".
    assert statuses[0] == "failed"
    assert set(statuses[1:]) <= {"skipped"}
    assert len(statuses) >= 2
    assert _paths(dynamodb) == ["tf-state/unknown/u.tfstate"]


class _Raising:
    name = "ci"

    def status(self, lock: Any, now: datetime, acquired_by: datetime) -> Any:
        raise TimeoutError("CI API timed out")


def _factory(broken: Callable[[], HolderCheck]) -> Callable[[HolderSpec], HolderCheck]:
    def build(spec: HolderSpec) -> HolderCheck:
        return broken() if spec.assume == "unknown" else AssumeGone()

    return build


@pytest.mark.parametrize("failure", ["raises", "cannot-be-built"])
def test_a_failing_holder_check_means_unknown_never_deleted_and_the_sweep_goes_on(aws, dynamodb, failure):
    clients, _ = aws
    doubtful = "tf-state/unknown/u.tfstate"
    put(dynamodb, lock_item(doubtful, created=OLD), lock_item(A, created=OLD))

    def broken() -> HolderCheck:
        if failure == "cannot-be-built":
            raise RuntimeError("no token")
        return _Raising()

    report = _sweep(clients, holders=HolderChecks(_factory(broken)))
    assert _outcomes(report) == {doubtful: Outcome.BLOCKED, A: Outcome.REAPED}
    entry = next(e for e in report.locks if e.lock.lock_path == doubtful)
    assert entry.verdict.holder is not None
    assert entry.verdict.holder.state.value == "unknown"
    assert ("TimeoutError" if failure == "raises" else "RuntimeError") in entry.verdict.holder.evidence
    assert _paths(dynamodb) == [doubtful]


# -- the Lambda handler ---------------------------------------------------------------------------------------------
def test_the_lambda_reports_a_throttled_scan_as_an_error_and_deletes_nothing(dynamodb, sleeps, monkeypatch, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("mode: enforce\ndefaults: {min_observed: 0s, trust_holder_clock: true, holder: {assume: gone}}\n")
    for name, value in {
        "LOCK_TABLE_NAME": LOCK_TABLE,
        "STATE_TABLE_NAME": STATE_TABLE,
        "POLICY_PATH": str(policy),
        "REAPER_MODE": "enforce",
        "POWERTOOLS_METRICS_NAMESPACE": "TflockReaper",
        "POWERTOOLS_SERVICE_NAME": "tflock-reaper",
    }.items():
        monkeypatch.setenv(name, value)
    import sweeper_handler  # noqa: PLC0415 - imported after the environment is set, as Lambda does
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415
    from tflock_reaper.entrypoints.wiring import default_clients  # noqa: PLC0415

    monkeypatch.setattr(sweeper_handler.metrics, "namespace", "TflockReaper")
    get_settings.cache_clear()
    default_clients.cache_clear()
    put(dynamodb, lock_item(A, created=OLD))
    faults = Faults(default_clients().dynamodb())
    faults.fail("Scan", THROTTLED, table=LOCK_TABLE)
    try:
        with pytest.raises(AwsAccessError, match="ProvisionedThroughputExceededException"):
            sweeper_handler.lambda_handler({}, FakeLambdaContext())
        assert _paths(dynamodb) == [A]
        faults.clear()
        result = sweeper_handler.lambda_handler({}, FakeLambdaContext())
        assert result["summary"]["reaped"] == 1
        assert _paths(dynamodb) == []
    finally:
        faults.clear()
        get_settings.cache_clear()
        sweeper_handler.metrics.metric_set.clear()
