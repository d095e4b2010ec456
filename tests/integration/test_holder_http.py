"""The generic HTTP holder check against a loopback endpoint: the URL filled per lock, the secret header, strict
answers, and one request per filled URL per sweep."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import quote

import boto3
import pytest
from drip_server import DripServer
from factories import NOW, lock_item
from fakes import FakeLockTable
from http_stub import Reply, StubServer
from moto import mock_aws
from tflock_reaper.adapters.aws import AwsClients
from tflock_reaper.adapters.channels.factory import secret_resolver
from tflock_reaper.adapters.holders import make_providers
from tflock_reaper.adapters.holders.http import HttpHolderCheck, HttpSession
from tflock_reaper.adapters.holders.web import Web
from tflock_reaper.adapters.memory import MemoryStateStore
from tflock_reaper.domain.deadline import Budget
from tflock_reaper.domain.decision import Outcome
from tflock_reaper.domain.liveness import HolderState, HolderStatus
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import HttpCheck, HttpHeader, SecretRef, parse_policy
from tflock_reaper.services.sweep import HolderChecks, sweep

NO_BOOLEAN = 'answered without a boolean "running" (expected {"running": true|false})'
API_KEY = "k3y-K3Y-k3y-K3Y-k3y-K3Y-0000"
KEY_SECRET = "tflock-reaper/ci-api-key"
PATH = "tf-state/env:/prod/network/terraform.tfstate"
LOCK_ID = "8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d"
CREATED = NOW - timedelta(hours=3)
RUNNING = Reply(200, '{"running": true}', {"Content-Type": "application/json"})
GONE = Reply(200, '{"running": false, "build": "infra-apply #482"}', {"Content-Type": "application/json"})


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = StubServer().start()
    yield server
    server.stop()


def lock(path: str = PATH, *, who: str = "jenkins@agent 7/b", lock_id: str = LOCK_ID) -> LockRecord:
    record = classify_item(lock_item(path, who=who, created=CREATED, lock_id=lock_id), None)
    assert isinstance(record, LockRecord)
    return record


def check(server: StubServer, template: str, *, header: bool = True, session=None, value=lambda: API_KEY, **options):
    spec = HttpCheck(
        url=server.url(template),
        header=HttpHeader(name="X-Api-Key", value=SecretRef(secret=KEY_SECRET)) if header else None,
    )
    return HttpHolderCheck(spec, value if header else None, session=session, **{"timeout": 2.0, **options})


def test_the_url_is_filled_url_encoded_and_the_header_sent(endpoint):
    endpoint.reply(RUNNING)
    status = check(endpoint, "/tflock/{lock_path}/holder?id={lock_id}&who={who}").status(lock(), NOW, CREATED)

    (request,) = endpoint.requests
    assert request.method == "GET"
    assert request.path == (
        f"/tflock/{quote(PATH, safe='')}/holder?id={LOCK_ID}&who={quote('jenkins@agent 7/b', safe='')}"
    )
    assert request.route == "/tflock/tf-state%2Fenv%3A%2Fprod%2Fnetwork%2Fterraform.tfstate/holder"
    assert request.query == {"id": [LOCK_ID], "who": ["jenkins@agent 7/b"]}
    assert request.headers["X-Api-Key"] == API_KEY
    assert request.headers["Accept"] == "application/json"
    assert status == HolderStatus(
        HolderState.RUNNING,
        f"{endpoint.url('/tflock/tf-state%2Fenv%3A%2Fprod%2Fnetwork%2Fterraform.tfstate/holder')} says the holder "
        "is running",
        "http",
    )
    assert API_KEY not in status.evidence


def test_running_false_means_not_running_and_the_query_string_stays_out_of_the_evidence(endpoint):
    endpoint.reply(GONE)
    status = check(endpoint, "/holder?lock={lock_id}&token=in-the-template").status(lock(), NOW, CREATED)
    assert status == HolderStatus(
        HolderState.NOT_RUNNING, f"{endpoint.url('/holder')} says the holder is not running", "http"
    )


def test_no_header_is_sent_when_none_is_configured(endpoint):
    endpoint.reply(GONE)
    check(endpoint, "/holder/{lock_id}", header=False).status(lock(), NOW, CREATED)
    assert "X-Api-Key" not in endpoint.requests[0].headers


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(500, "boom"), "answered HTTP 500: boom"),
        (Reply(404, '{"message": "no such lock"}'), "answered HTTP 404: no such lock"),
        (Reply(302, "", {"Location": "/login"}), "answered HTTP 302: (empty body)"),
        (Reply(200, "running"), 'did not answer JSON {"running": true|false}'),
        (Reply(200, '{"running": "false"}'), NO_BOOLEAN),
        (Reply(200, '{"running": 0}'), NO_BOOLEAN),
        (Reply(200, '{"running": null}'), NO_BOOLEAN),
        (Reply(200, '{"status": "finished"}'), NO_BOOLEAN),
        (Reply(200, "[false]"), NO_BOOLEAN),
    ],
    ids=["500", "404", "redirect", "not-json", "string", "zero", "null", "no-running", "list"],
)
def test_anything_but_a_boolean_running_in_a_2xx_json_object_is_unknown(endpoint, reply, why):
    endpoint.reply(reply)
    status = check(endpoint, "/holder/{lock_id}").status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert status.evidence == f"{endpoint.url('/holder/' + LOCK_ID)} {why}"


def test_a_redirect_is_not_followed_so_the_secret_header_goes_nowhere_else(endpoint):
    endpoint.reply(Reply(307, "", {"Location": "/elsewhere"}), RUNNING)
    assert check(endpoint, "/holder").status(lock(), NOW, CREATED).state is HolderState.UNKNOWN
    assert [r.route for r in endpoint.requests] == ["/holder"]


def test_a_server_error_is_retried(endpoint):
    endpoint.reply(Reply(503, "busy"), GONE)
    assert check(endpoint, "/holder").status(lock(), NOW, CREATED).state is HolderState.NOT_RUNNING
    assert len(endpoint.requests) == 2


def test_a_hanging_endpoint_times_out_and_its_host_is_not_asked_again_in_the_sweep(endpoint):
    endpoint.reply(Reply(hang=30))
    session = HttpSession()
    started = time.monotonic()
    first = check(endpoint, "/holder/{lock_id}", session=session, timeout=0.3, max_attempts=2).status(
        lock(), NOW, CREATED
    )
    assert 0.6 <= time.monotonic() - started < 3
    assert first.state is HolderState.UNKNOWN
    assert "did not answer: no answer after 2 attempt(s) of 0.3s" in first.evidence
    second = check(endpoint, "/holder/{lock_id}", session=session).status(lock(lock_id="another-id"), NOW, CREATED)
    assert second.state is HolderState.UNKNOWN
    assert f"was not asked: {endpoint.url('')} did not answer earlier in this sweep" in second.evidence
    assert len(endpoint.requests) == 2


def test_429_stops_asking_that_host_in_the_sweep(endpoint):
    endpoint.reply(Reply(429, "slow down", {"Retry-After": "30"}))
    session = HttpSession()
    assert check(endpoint, "/h/{lock_id}", session=session).status(lock(), NOW, CREATED).state is HolderState.UNKNOWN
    assert (
        check(endpoint, "/h/{lock_id}", session=session).status(lock(lock_id="x"), NOW, CREATED).state
        is HolderState.UNKNOWN
    )
    assert len(endpoint.requests) == 1


def test_an_unreadable_header_secret_is_unknown_and_nothing_is_sent(endpoint):
    def missing() -> str:
        raise KeyError("nope")

    status = check(endpoint, "/holder", value=missing).status(lock(), NOW, CREATED)
    assert status == HolderStatus(HolderState.UNKNOWN, "cannot read the X-Api-Key header value (KeyError)", "http")
    assert endpoint.requests == []


def test_the_secret_never_appears_in_an_error(endpoint):
    endpoint.reply(Reply(400, json.dumps({"message": f"bad key {API_KEY}"})))
    status = check(endpoint, "/holder").status(lock(), NOW, CREATED)
    assert status.state is HolderState.UNKNOWN
    assert API_KEY not in status.evidence
    assert "bad key <redacted>" in status.evidence


# -- wired as the sweep wires it --------------------------------------------------------------------------------
POLICY = """
mode: enforce
max_reaps_per_sweep: 10
defaults: {{warn_after: 30m, reap_after: 2h, min_observed: 0s, trust_holder_clock: true}}
rules:
  - match: "tf-state/by-lock/*"
    holder:
      http: {{url: "{base}/locks/{{lock_path}}/{{lock_id}}", header: {{name: X-Api-Key, value: {{secret: {secret}}}}}}}
  - match: "tf-state/by-who/*"
    holder: {{http: {{url: "{base}/agents/{{who}}", header: {{name: X-Api-Key, value: {{secret: {secret}}}}}}}}}
"""


def _sweep(server: StubServer, locks: list[dict]):
    clients = AwsClients(region="us-east-1")
    policy = parse_policy(POLICY.format(base=server.url(""), secret=KEY_SECRET))
    state = MemoryStateStore()
    table = FakeLockTable(locks)
    providers = make_providers(clients=clients, secrets=secret_resolver(clients), state=state)
    report = sweep(
        lock_table=table,
        state=state,
        policy=policy,
        mode="enforce",
        clock=lambda: NOW,
        holders=HolderChecks(providers=providers),
    )
    return report, table


def test_one_request_per_filled_url_per_sweep(endpoint, aws_env):
    endpoint.reply(GONE)
    with mock_aws():
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(Name=KEY_SECRET, SecretString=API_KEY)
        # Given 3 locks whose URL names the lock, and 4 locks of two agents whose URL names only the agent
        locks = [lock_item(f"tf-state/by-lock/app{i}.tfstate", created=CREATED) for i in range(3)]
        locks += [
            lock_item(f"tf-state/by-who/app{i}.tfstate", created=CREATED, who=f"jenkins@agent-{i % 2}")
            for i in range(4)
        ]
        report, table = _sweep(endpoint, locks)

    routes = sorted(r.route for r in endpoint.requests)
    assert [r for r in routes if r.startswith("/agents/")] == ["/agents/jenkins%40agent-0", "/agents/jenkins%40agent-1"]
    assert len([r for r in routes if r.startswith("/locks/")]) == 3
    assert all(r.headers["X-Api-Key"] == API_KEY for r in endpoint.requests)
    assert {r.outcome for r in report.locks} == {Outcome.REAPED}
    assert len(table.deletes) == 7


def test_a_missing_header_secret_blocks_the_reap(endpoint, aws_env):
    endpoint.reply(GONE)
    with mock_aws():
        report, table = _sweep(endpoint, [lock_item("tf-state/by-lock/app.tfstate", created=CREATED)])
    [entry] = report.locks
    assert entry.outcome is Outcome.BLOCKED
    assert table.deletes == []
    assert entry.verdict.holder is not None
    assert entry.verdict.holder.evidence.startswith(
        f"cannot read the X-Api-Key header value (secret {KEY_SECRET}: ResourceNotFoundException: Secrets Manager "
    )
    assert endpoint.requests == []


# -- a total deadline per request, and the sweep's budget (issue 13: hangs) --------------------------------------
# A socket timeout bounds one read: an endpoint that sends a byte every second or two never trips the 5 s one,
# and held a check for as long as its answer took (36 s for {"running": false} at a byte every 2 s). Each request
# now ends by its own deadline (``Web(total=...)``), here 3 s, whatever the endpoint does.
SLOW = {
    "body": {"interval": 2.0},  # the body a byte every 2 s: 36 s in all
    "headers": {"interval": 0.5},  # status line and headers too, a byte every 0.5 s: 45 s in all
    "silent": {},  # accepts, reads the request, never answers: before, each attempt waited its 5 s read timeout
}


@pytest.fixture(params=list(SLOW))
def slow(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DripServer]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = DripServer(request.param, **SLOW[request.param]).start()
    yield server
    server.stop()


def test_an_endpoint_that_drips_or_never_answers_is_cut_off_at_the_request_deadline(slow):
    session = HttpSession(web=Web(total=3))
    check_ = check(slow, "/holder/{lock_id}", header=False, session=session, timeout=5.0, max_attempts=3)
    started = time.monotonic()
    status = check_.status(lock(), NOW, CREATED)
    elapsed = time.monotonic() - started

    assert status.state is HolderState.UNKNOWN
    assert status.evidence == f"{slow.url('/holder/' + LOCK_ID)} did not answer: no complete answer within 3.0s"
    assert elapsed < 8  # 3 s and a margin, where before it took 15 s (silent), 36 s (body) or 45 s (headers)
    assert len(slow.requests) <= 1


def test_github_dripping_its_answer_is_cut_off_at_the_request_deadline(slow):
    from tflock_reaper.adapters.holders.github import GitHubActions, GitHubSession  # noqa: PLC0415
    from tflock_reaper.domain.policy import GitHubCheck  # noqa: PLC0415

    spec = GitHubCheck(repo="octo-org/infra", api_url=slow.url("/api/v3"), token=SecretRef(secret="gh-token"))
    github = GitHubActions(spec, lambda: "ghp_T0KEN", session=GitHubSession(web=Web(total=3)), max_attempts=3)
    started = time.monotonic()
    status = github.status(lock(), NOW, CREATED)
    elapsed = time.monotonic() - started

    assert status.state is HolderState.UNKNOWN
    assert "the GitHub API did not answer for " in status.evidence
    assert status.evidence.endswith(": no complete answer within 3.0s")
    assert elapsed < 8


def test_a_request_ends_with_the_sweeps_budget_and_none_is_made_once_it_is_spent(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = DripServer("body", interval=2.0).start()
    try:
        started = time.monotonic()
        budget = Budget(lambda: 1.5 - (time.monotonic() - started))  # 1.5 s left in the sweep
        session = HttpSession(web=Web(budget=budget))  # the default 10 s per request
        first = check(server, "/holder/{lock_id}", header=False, session=session).status(lock(), NOW, CREATED)
        elapsed = time.monotonic() - started
        second = check(server, "/other/{lock_id}", header=False, session=HttpSession(web=Web(budget=budget)))
        unasked = second.status(lock(), NOW, CREATED)
    finally:
        server.stop()

    assert first.state is HolderState.UNKNOWN
    assert first.evidence.endswith("did not answer: no complete answer within 1.5s (all the time left in this sweep)")
    assert elapsed < 5
    assert unasked.state is HolderState.UNKNOWN
    assert unasked.evidence == f"{server.url('/other/' + LOCK_ID)} did not answer: no time left in this sweep to ask"
    assert [r.path for r in server.requests] == [f"/holder/{LOCK_ID}"]
