"""A Lambda function URL on loopback: a real HTTP server (a thread) that turns each request into the event a function
URL gives its function (payload format 2.0, as AWS builds it) and answers with the function's ``statusCode``,
``headers`` and ``body``. And a Slack stand-in that signs its requests exactly as Slack does.

The event, as AWS documents it and Powertools' ``tests/events/lambdaFunctionUrlEvent*.json`` record it: ``version``
"2.0", ``routeKey`` and ``requestContext.stage`` "$default", ``rawPath``, ``rawQueryString``, the headers with
lower-case names (repeated ones joined with commas), ``queryStringParameters`` only with a query, ``cookies`` only
with cookies, ``requestContext.http`` (method, path, protocol, sourceIp, userAgent), ``requestContext.accountId``
"anonymous" (AuthType NONE), ``body`` only with a body, and ``isBase64Encoded``: a body whose Content-Type is not
text (``text/*``, JSON, JavaScript, XML) is base64-encoded, as Slack's form posts reach their functions.
"""

from __future__ import annotations

import base64
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.error import HTTPError
from urllib.parse import parse_qs, urlencode, urlsplit
from urllib.request import Request, urlopen

import pytest
from fakes import FakeLambdaContext
from http_stub import serve_loopback
from tflock_reaper.adapters.slack_interactions import sign

URL_ID = "a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6"
DOMAIN = f"{URL_ID}.lambda-url.us-east-1.on.aws"
_TEXT_TYPES = ("text/", "application/json", "application/javascript", "application/xml")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def function_url_event(
    method: str, target: str, headers: dict[str, str], body: bytes, *, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The event AWS gives a function behind its URL for this HTTP request."""
    parts = urlsplit(target)
    names: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        names[key] = f"{names[key]},{value}" if key in names else value
    names.setdefault("host", DOMAIN)
    names.setdefault("x-forwarded-proto", "https")
    names.setdefault("x-forwarded-port", "443")
    names.setdefault("x-forwarded-for", source_ip)
    names.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}")
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "headers": names,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": URL_ID,
            "domainName": DOMAIN,
            "domainPrefix": URL_ID,
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": names.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if parts.query:
        event["queryStringParameters"] = {k: ",".join(v) for k, v in parse_qs(parts.query).items()}
    if "cookie" in names:
        event["cookies"] = [c.strip() for c in names.pop("cookie").split(";")]
    if body:
        text = names.get("content-type", "").startswith(_TEXT_TYPES)
        event["body"] = body.decode("utf-8") if text else base64.b64encode(body).decode("ascii")
        event["isBase64Encoded"] = not text
    return event


@dataclass
class Exchange:
    event: dict[str, Any]
    answer: dict[str, Any]


class FunctionUrl:
    """``handler`` (a Lambda handler: event, context) behind a function URL on 127.0.0.1."""

    def __init__(self, handler: Handler, *, function_name: str = "tflock-reaper-interactions") -> None:
        self.exchanges: list[Exchange] = []
        url = self

        class Answer(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
                event = function_url_event(self.command, self.path, dict(self.headers.items()), body)
                answer = handler(event, FakeLambdaContext(function_name=function_name, remaining_ms=10_000))
                url.exchanges.append(Exchange(event, answer))
                payload = str(answer.get("body", "")).encode()
                if answer.get("isBase64Encoded"):
                    payload = base64.b64decode(payload)
                self.send_response(int(answer.get("statusCode", 200)))
                for name, value in (answer.get("headers") or {}).items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 - BaseHTTPRequestHandler's names

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = serve_loopback(Answer)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> FunctionUrl:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def deployed_interactions(
    monkeypatch: pytest.MonkeyPatch, environment: Mapping[str, str]
) -> Iterator[tuple[FunctionUrl, io.StringIO]]:
    """The interactions function as deployed (its handler imported after ``environment`` is set, as Lambda does, and
    the Powertools settings of the stack) behind a loopback function URL, and what it logs. Its settings and warm
    wiring are made afresh, and dropped afterwards."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    deployed = {"POWERTOOLS_SERVICE_NAME": "tflock-reaper", "POWERTOOLS_METRICS_NAMESPACE": "TflockReaper"}
    for name, value in {**deployed, **environment}.items():
        monkeypatch.setenv(name, value)
    import interactions_handler  # noqa: PLC0415 - imported after the environment is set, as Lambda does
    from tflock_reaper.entrypoints import interactions  # noqa: PLC0415
    from tflock_reaper.entrypoints.settings import get_settings  # noqa: PLC0415

    monkeypatch.setattr(interactions_handler.metrics, "namespace", deployed["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setattr(interactions_handler.metrics, "service", deployed["POWERTOOLS_SERVICE_NAME"])
    logs = io.StringIO()
    previous = interactions_handler.logger.registered_handler.setStream(logs)
    get_settings.cache_clear()
    interactions.default_interactions.cache_clear()
    try:
        with FunctionUrl(interactions_handler.lambda_handler) as url:
            yield url, logs
    finally:
        interactions_handler.logger.registered_handler.setStream(previous)
        get_settings.cache_clear()
        interactions.default_interactions.cache_clear()


@dataclass(frozen=True)
class Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def http(url: str, *, method: str = "POST", body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
    """One request to ``url``; any status is an answer."""
    request = Request(url, data=body if method != "GET" else None, method=method, headers=headers or {})  # noqa: S310
    try:
        with urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            return Reply(answer.status, answer.read().decode(), dict(answer.headers.items()))
    except HTTPError as err:
        return Reply(err.code, err.read().decode(), dict(err.headers.items()))


@dataclass
class Slack:
    """Posts interaction payloads as Slack does: ``payload=<JSON>`` as a form, signed with the app's signing secret
    (``v0:{timestamp}:{body}``, HMAC-SHA256) in ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature``."""

    signing_secret: str
    url: str

    @staticmethod
    def form(payload: dict[str, Any]) -> bytes:
        return urlencode({"payload": json.dumps(payload)}).encode()

    def headers(self, body: bytes, *, timestamp: int | None = None, secret: str | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign(secret or self.signing_secret, stamp, body.decode()),
        }

    def post(self, payload: dict[str, Any], **signing: Any) -> Reply:
        body = self.form(payload)
        return http(self.url, body=body, headers=self.headers(body, **signing))


def press_on(
    message: Mapping[str, Any],
    action_id: str,
    *,
    channel: str,
    ts: str,
    user: str,
    name: str,
    response_url: str,
    option: str | None = None,
) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends for a press on ``message`` (as Slack keeps it: its ``text`` and
    ``blocks``) posted in ``channel`` at ``ts``: the element of ``action_id`` in its actions block, pressed by
    ``user``; for a menu, its ``option`` (the option's value) chosen."""
    actions = next(block for block in message["blocks"] if block["type"] == "actions")
    element = next(e for e in actions["elements"] if e["action_id"] == action_id)
    pressed: dict[str, Any] = {**element, "block_id": actions["block_id"], "action_ts": f"{time.time():.6f}"}
    if option is not None:
        pressed["selected_option"] = next(o for o in element["options"] if o["value"] == option)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name, "name": name, "team_id": "T0TEAM001"},
        "api_app_id": "A0APP000001",
        "container": {"type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": False},
        "trigger_id": "1764158400123.1234567890.abcdef0123456789",
        "team": {"id": "T0TEAM001", "domain": "acme"},
        "channel": {"id": channel, "name": "terraform"},
        "message": {"type": "message", "ts": ts, "text": message["text"], "blocks": message["blocks"]},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [pressed],
    }
