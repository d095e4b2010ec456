"""A loopback stand-in for Slack's Web API: a real HTTP server on 127.0.0.1 that keeps the messages it is sent.

It answers ``chat.postMessage``, ``chat.update`` and ``chat.delete`` at ``<base_url><method>`` the way Slack does
(always a JSON body; errors as ``{"ok": false, "error": ...}`` with HTTP 200, except throttling: 429 with
``Retry-After``), from JSON bodies (what slack_sdk sends for messages) or form bodies (``chat.delete``). It checks
the bearer token (``not_authed``, ``invalid_auth``), the channel (``channel_not_found``, ``not_in_channel``) and
Block Kit's limits (``invalid_blocks``, ``msg_too_long``), and records every call. ``fail`` scripts the next
answers of one method (a :class:`~http_stub.Reply` each: 429 with Retry-After, 5xx, an error, a delay), used once
each, in order.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from itertools import count
from typing import Any
from urllib.parse import parse_qs

from http_stub import Reply, serve_loopback

TOKEN = "xoxb-1111111111-2222222222-T0kEnT0kEnT0kEnT0kEn"
CHANNEL = "C0TFLOCK01"

# Block Kit's and chat.postMessage's limits (Slack's reference): a stand-in that refuses what Slack refuses.
TEXT_MAX = 40_000
BLOCKS_MAX = 50
HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELD_MAX = 2000
FIELDS_MAX = 10
CONTEXT_ELEMENTS_MAX = 10
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
ID_MAX = 255
CONFIRM_MAX = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
PLACEHOLDER_MAX = 150


def ratelimited(retry_after: int = 1) -> Reply:
    return Reply(429, '{"ok":false,"error":"ratelimited"}', {"Retry-After": str(retry_after)})


def slow(seconds: float) -> Reply:
    """A normal answer, given after ``seconds``."""
    return Reply(200, "", delay=seconds)


def error(code: str, status: int = 200) -> Reply:
    return Reply(status, json.dumps({"ok": False, "error": code}), {"Content-Type": "application/json"})


@dataclass(frozen=True)
class Call:
    """One request as received: the method, its arguments (JSON or form), its headers, when."""

    method: str
    args: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    at: float
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.answer.get("ok"))


def block_problems(blocks: Any) -> list[str]:
    """What in ``blocks`` Slack would refuse (``invalid_blocks``): the limits a message of ours may reach."""
    problems: list[str] = []
    if not isinstance(blocks, list) or len(blocks) > BLOCKS_MAX:
        return [f"blocks: a list of at most {BLOCKS_MAX}"]
    for index, block in enumerate(blocks):
        problems += [f"blocks[{index}]: {p}" for p in _block_problems(block)]
    return problems


def _too_long(text: Any, limit: int, what: str) -> list[str]:
    value = text.get("text", "") if isinstance(text, dict) else text
    return [f"{what}: {len(value)} > {limit}"] if not isinstance(value, str) or len(value) > limit else []


def _block_problems(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    problems = _too_long(block.get("block_id", ""), ID_MAX, "block_id")
    if kind == "header":
        problems += _too_long(block["text"], HEADER_MAX, "header")
        problems += [] if block["text"].get("type") == "plain_text" else ["header: plain_text only"]
    elif kind == "section":
        if "text" in block:
            problems += _too_long(block["text"], SECTION_TEXT_MAX, "section text")
        fields = block.get("fields", [])
        problems += [f"{len(fields)} fields"] if len(fields) > FIELDS_MAX else []
        for item in fields:
            problems += _too_long(item, FIELD_MAX, "field")
    elif kind == "context":
        problems += [] if len(block["elements"]) <= CONTEXT_ELEMENTS_MAX else ["context elements"]
    elif kind == "actions":
        problems += [] if len(block["elements"]) <= ACTIONS_ELEMENTS_MAX else ["actions elements"]
        for element in block["elements"]:
            problems += _element_problems(element)
    else:
        problems.append(f"unexpected block {kind!r}")
    return problems


def _element_problems(element: dict[str, Any]) -> list[str]:
    problems = _too_long(element.get("action_id", ""), ID_MAX, "action_id")
    if element["type"] == "button":
        problems += _too_long(element["text"], BUTTON_TEXT_MAX, "button text")
        problems += _too_long(element.get("value", ""), BUTTON_VALUE_MAX, "button value")
        problems += [] if element.get("style", "primary") in ("primary", "danger") else ["button style"]
    elif element["type"] == "static_select":
        problems += _too_long(element["placeholder"], PLACEHOLDER_MAX, "placeholder")
        for option in element["options"]:
            problems += _too_long(option["text"], OPTION_TEXT_MAX, "option text")
            problems += _too_long(option["value"], OPTION_VALUE_MAX, "option value")
    else:
        problems.append(f"unexpected element {element['type']!r}")
    confirm = element.get("confirm")
    if confirm is not None:
        for part, limit in CONFIRM_MAX.items():
            problems += _too_long(confirm[part], limit, f"confirm {part}")
        problems += [] if confirm.get("style", "primary") in ("primary", "danger") else ["confirm style"]
    return problems


class SlackApi:
    """The stand-in (see the module). ``messages`` holds each message as it now reads (``(channel, ts)``: its
    arguments), ``replies`` each thread's replies, ``deleted`` what was deleted; ``calls`` everything received."""

    def __init__(self, token: str = TOKEN, channels: tuple[str, ...] = (CHANNEL,)) -> None:
        self.token = token
        self.channels = set(channels)
        self.not_member: set[str] = set()
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], dict[str, Any]] = {}
        self.replies: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.deleted: list[tuple[str, str]] = []
        self._faults: dict[str, list[Reply]] = {}
        self._ts = count(100)
        self._lock = threading.Lock()
        self._released = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, answer, delay = api._answer(self.path, dict(self.headers), body)
                if delay:
                    api._released.wait(delay)
                payload = json.dumps(answer).encode() if isinstance(answer, dict) else answer.encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json; charset=utf-8", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server, self._thread = serve_loopback(Handler, quiet_errors=True)

    # -- the test's side ----------------------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def fail(self, method: str, *replies: Reply) -> None:
        """The next answers to ``method``, once each, before it answers normally again. A reply with status 200
        and a body of ``""`` answers normally after its ``delay``."""
        with self._lock:
            self._faults.setdefault(method, []).extend(replies)

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def top_level(self) -> list[Call]:
        """The messages posted (not replies), accepted or not."""
        return [c for c in self.calls_to("chat.postMessage") if "thread_ts" not in c.args]

    def thread(self, ts: str, channel: str = CHANNEL) -> list[dict[str, Any]]:
        return self.replies.get((channel, ts), [])

    def start(self) -> SlackApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- Slack's side --------------------------------------------------------------------------------------------
    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], Any, float]:
        method = path.split("?", 1)[0].rsplit("/", 1)[-1]
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.startswith("application/json"):
            args = json.loads(body or b"{}")
        else:
            args = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        with self._lock:
            faults = self._faults.get(method) or []
            fault = faults.pop(0) if faults else None
            if fault is not None and (fault.status != 200 or fault.body != ""):
                answer: Any = fault.body
                status, extra, delay = fault.status, fault.headers, fault.delay
            else:
                answer = self._handle(method, args, headers)
                status, extra, delay = 200, {}, fault.delay if fault else 0.0
            parsed = answer if isinstance(answer, dict) else _maybe_json(answer)
            self.calls.append(Call(method, args, headers, body, time.monotonic(), parsed))
        return status, extra, answer, delay

    def _handle(self, method: str, args: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        auth = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        if not auth:
            return {"ok": False, "error": "not_authed"}
        if auth != f"Bearer {self.token}":
            return {"ok": False, "error": "invalid_auth"}
        channel = str(args.get("channel", ""))
        if channel not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        handlers = {"chat.postMessage": self._post, "chat.update": self._update, "chat.delete": self._delete}
        if method not in handlers:
            return {"ok": False, "error": "unknown_method"}
        return handlers[method](channel, args)

    def _message_problem(self, args: dict[str, Any]) -> str | None:
        text, blocks = args.get("text"), args.get("blocks")
        if not text and not blocks:
            return "no_text"
        if isinstance(text, str) and len(text) > TEXT_MAX:
            return "msg_too_long"
        if blocks is not None and block_problems(blocks):
            return "invalid_blocks"
        return None

    def _post(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        problem = self._message_problem(args)
        if problem:
            return {"ok": False, "error": problem}
        ts = f"1764158400.{next(self._ts):06d}"
        thread = args.get("thread_ts")
        if thread is not None:
            if (channel, thread) not in self.messages:
                return {"ok": False, "error": "thread_not_found"}
            self.replies.setdefault((channel, thread), []).append({**args, "ts": ts})
        else:
            self.messages[(channel, ts)] = dict(args)
        return {"ok": True, "channel": channel, "ts": ts, "message": {"text": args.get("text", ""), "ts": ts}}

    def _update(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args.get("ts", ""))
        if (channel, ts) not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        problem = self._message_problem(args)
        if problem:
            return {"ok": False, "error": problem}
        self.messages[(channel, ts)] = {**self.messages[(channel, ts)], **args}
        return {"ok": True, "channel": channel, "ts": ts, "text": args.get("text", "")}

    def _delete(self, channel: str, args: dict[str, Any]) -> dict[str, Any]:
        ts = str(args.get("ts", ""))
        if self.messages.pop((channel, ts), None) is None:
            return {"ok": False, "error": "message_not_found"}
        self.deleted.append((channel, ts))
        return {"ok": True, "channel": channel, "ts": ts}


def _maybe_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
