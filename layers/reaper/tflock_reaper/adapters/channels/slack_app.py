"""Slack through the tflock-reaper Slack app (a bot token and the Web API): one message per lock acquisition.

The first notification of an acquisition, of any kind, is posted (``chat.postMessage``); its channel and ``ts`` are
kept in the state table (:mod:`tflock_reaper.adapters.slack_messages`). Every later one updates that message in
place (``chat.update``: the state in the header, with its emoji, and the latest age, verdict and reasons) and
says what changed in a short reply in its thread, instead of a new message. The message shows the most serious
state reached so far (``stale`` < ``still_stale`` < ``reap_blocked`` < ``reaped`` | ``resolved``), with the facts of
the latest notification. After ``reaped`` or ``resolved`` it is final: updated one last time, its buttons removed,
and nothing more is posted about that acquisition. An unreadable lock has no acquisition: each is one message.

While the lock is held the message carries the app's buttons (:mod:`tflock_reaper.domain.slack_actions`): *Reap
now* (with a confirmation naming the lock), *Snooze* (a menu) and *It's mine* (with a confirmation). Each button's
``value``, and the actions block's ``block_id`` (Snooze's menu options carry only their duration), is the
:class:`~tflock_reaper.domain.slack_actions.ButtonValue` of the acquisition: its state-table keys and the digest of
the raw ``Info`` the message shows. Lock values are escaped as the webhook's message escapes them
(:mod:`tflock_reaper.adapters.channels.slack`, whose blocks this message reuses), and cut to Block Kit's limits.

Races. Only the holder of the message's lease talks to Slack about it (see ``adapters.slack_messages``): of two
senders racing on an acquisition's first notification, one posts and the other, once the lease is free, updates
that message; a sender that finds the lease taken waits up to ``lease_wait`` seconds, then fails retryably (the
next sweep, or the stream function's retry, sends it). A post whose ``ts`` cannot be recorded is deleted again
(``chat.delete``), so that a retry does not leave two messages. A message deleted in Slack by hand is posted anew.

Delivery: ``slack_sdk``'s ``WebClient`` with bounded retries: a ``ratelimited`` answer (HTTP 429) is retried after
its ``Retry-After`` when that is at most ``max_retry_after`` seconds and fits in the send's time; a connection reset
and a 500/503 once. ``timeout`` bounds each connect and each read (urllib's ``urlopen``, inside ``WebClient``: a
server that drips its answer could hold one call longer, which the webhook's own transport does not allow; Slack's
API does not drip). No call and no retry starts past the send's deadline (``total``, or what is left of the sweep's
budget), so a send ends within it plus at most one request's ``timeout``. Failures become
:class:`~tflock_reaper.domain.notifier.NotifyError`: throttling, 5xx, timeouts and unreachable endpoints are
retryable; ``invalid_auth``, ``channel_not_found``, ``not_in_channel``, ``invalid_blocks``, ``msg_too_long`` and
other answers about the configuration or the message are not. The bot token is read on every send through the
factory's resolver (cached), given to the log redaction, and never shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from tflock_reaper.adapters.channels.slack import (
    FALLBACK_MAX,
    HEADER_MAX,
    escape_prose,
    render_slack,
)
from tflock_reaper.adapters.errors import AwsAccessError
from tflock_reaper.adapters.log_redaction import LogRedaction
from tflock_reaper.adapters.outbound import MIN_ATTEMPT_SECONDS
from tflock_reaper.adapters.secret_store import SecretUnavailableError
from tflock_reaper.adapters.slack_messages import SlackMessage, SlackMessages, acquisition_sk
from tflock_reaper.adapters.state_table import state_pk
from tflock_reaper.domain.deadline import UNBOUNDED, Budget, Deadline
from tflock_reaper.domain.holds import Hold, HoldKind
from tflock_reaper.domain.notification import SEVERITIES, TITLES, Notification, NotificationKind
from tflock_reaper.domain.notifier import HTTP_SERVER_ERRORS, HTTP_TOO_MANY_REQUESTS, NotifyError
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor
from tflock_reaper.domain.text import fit, one_line, redact

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

DEFAULT_API_URL = "https://slack.com/api/"
#: Block Kit's limits (composition objects and elements reference).
BUTTON_TEXT_MAX = 75
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
#: What of a lock's path and ID a confirmation quotes (the rest of its 300 characters is ours).
CONFIRM_PATH_MAX = 140
CONFIRM_ID_MAX = 60
#: A thread reply: short, whatever the reasons say.
REPLY_MAX = 1500
#: The ``block_id`` of the line saying who holds the lock (Snooze, It's mine), just above the buttons.
HOLD_BLOCK_ID = "tflock_hold"
#: The ``block_id`` of the context block starts with this, followed by the state the message shows: so that the
#: message as Slack sends it back in a press can be told current (its state recorded) or outdated.
STATE_BLOCK_PREFIX = "tflock_state:"
#: What of the presser's name a hold line shows.
HOLDER_MAX = 100
#: Block Kit: elements of a context block.
CONTEXT_ELEMENTS_MAX = 10

K = NotificationKind
FINAL = frozenset({K.REAPED, K.RESOLVED})
#: How serious each state is: the message shows the most serious one reached.
RANK: Mapping[NotificationKind, int] = {
    K.STALE: 0,
    K.STILL_STALE: 1,
    K.REAP_BLOCKED: 2,
    K.UNREADABLE_LOCK: 2,
    K.REAPED: 3,
    K.RESOLVED: 3,
}
LABELS: Mapping[NotificationKind, str] = {
    K.STALE: "stale",
    K.STILL_STALE: "still stale",
    K.REAP_BLOCKED: "reap blocked",
    K.REAPED: "reaped",
    K.RESOLVED: "released",
    K.UNREADABLE_LOCK: "unreadable",
}
#: The state's colour, as an emoji in the header (shortcodes: the header's ``plain_text`` has ``emoji: true``).
EMOJI: Mapping[NotificationKind, str] = {
    K.STALE: ":large_yellow_circle:",
    K.STILL_STALE: ":large_orange_circle:",
    K.REAP_BLOCKED: ":red_circle:",
    K.REAPED: ":wastebasket:",
    K.RESOLVED: ":white_check_mark:",
    K.UNREADABLE_LOCK: ":red_circle:",
}
#: Slack ``error`` codes that a later attempt may get past (any 429 or 5xx is retryable too).
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
#: ``chat.update``'s answer for a message that is not there any more (deleted by hand): it is posted anew.
MESSAGE_GONE = frozenset({"message_not_found"})


# -- rendering (pure) -------------------------------------------------------------------------------------------
def _kind(value: str | None) -> NotificationKind | None:
    try:
        return None if value is None else NotificationKind(value)
    except ValueError:
        return None


def headline(kind: NotificationKind, shown: str | None) -> NotificationKind:
    """The state a message shows after ``kind``: the more serious of ``kind`` and the one it showed (``shown``)."""
    before = _kind(shown)
    return before if before is not None and RANK[before] > RANK[kind] else kind


def button_value(n: Notification) -> ButtonValue:
    """What the buttons carry: the acquisition's state-table keys and the digest of the raw ``Info`` shown."""
    return ButtonValue(state_pk(n.scope, n.lock_path), acquisition_sk(n.lock_id), n.info_digest)


def _plain(text: str, *, emoji: bool = False) -> dict[str, Any]:
    """Trusted text (ours) as ``plain_text``."""
    return {"type": "plain_text", "text": text, "emoji": emoji}


def _confirm(title: str, text: str, confirm: str, *, danger: bool = False) -> dict[str, Any]:
    dialog = {
        "title": _plain(title[:CONFIRM_TITLE_MAX]),
        "text": _plain(text[:CONFIRM_TEXT_MAX]),
        "confirm": _plain(confirm[:CONFIRM_BUTTON_MAX]),
        "deny": _plain("Cancel"),
    }
    return {**dialog, "style": "danger"} if danger else dialog


def _the_lock(n: Notification) -> str:
    """The lock's path and ID for a confirmation, escaped, each cut to its share of the 300 characters."""
    return (
        f"{fit(n.lock_path, CONFIRM_PATH_MAX, escape_prose)} (lock ID {fit(n.lock_id, CONFIRM_ID_MAX, escape_prose)})"
    )


def actions_block(n: Notification) -> dict[str, Any]:
    """The buttons of a held lock's message. Snooze's menu options carry their duration (:class:`SnoozeFor`); the
    acquisition it applies to is the block's ``block_id``, the same value as the buttons'."""
    value = button_value(n).encode()
    lock = _the_lock(n)
    options = (
        ("For 1 hour", SnoozeFor.ONE_HOUR),
        ("For 4 hours", SnoozeFor.FOUR_HOURS),
        ("Until tomorrow 09:00", SnoozeFor.TOMORROW_0900),
    )
    return {
        "type": "actions",
        "block_id": value,
        "elements": [
            {
                "type": "button",
                "action_id": SlackAction.REAP_NOW.value,
                "text": _plain("Reap now"),
                "style": "danger",
                "value": value,
                "confirm": _confirm(
                    "Reap this lock now?",
                    f"Delete the lock on {lock}, only if it is still the one shown here. A run that still holds it "
                    "would fail.",
                    "Reap it",
                    danger=True,
                ),
            },
            {
                "type": "static_select",
                "action_id": SlackAction.SNOOZE.value,
                "placeholder": _plain("Snooze"),
                "options": [{"text": _plain(text), "value": snooze.value} for text, snooze in options],
            },
            {
                "type": "button",
                "action_id": SlackAction.MINE.value,
                "text": _plain("It's mine"),
                "value": value,
                "confirm": _confirm(
                    "Is this lock yours?",
                    f"Claim the lock on {lock}: tflock-reaper will not reap it, and reminds you less often.",
                    "It's mine",
                ),
            },
        ],
    }


def slack_time(at: datetime) -> str:
    """A time as Slack shows it to each reader, in their own time zone (``<!date^...>``); UTC where it cannot."""
    fallback = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def hold_text(hold: Hold) -> str:
    """Who holds the lock and what that means, for the message (mrkdwn; the presser's name escaped)."""
    by = fit(hold.by, HOLDER_MAX, escape_prose)
    if hold.kind is HoldKind.CLAIM:
        return (
            f":raised_hand: *Claimed* by {by} {slack_time(hold.at)} (It's mine): no automatic reap of this "
            "acquisition, reminders at most daily."
        )
    until = slack_time(hold.until) if hold.until is not None else "?"
    return f":zzz: *Snoozed* by {by} until {until}: no reminders and no automatic reap until then."


def hold_block(holds: Sequence[Hold]) -> dict[str, Any]:
    """The line saying who holds the lock (one element per hold): a context block above the buttons."""
    elements = [{"type": "mrkdwn", "text": hold_text(hold)} for hold in holds[:CONTEXT_ELEMENTS_MAX]]
    return {"type": "context", "block_id": HOLD_BLOCK_ID, "elements": elements}


def with_holds(blocks: Sequence[Mapping[str, Any]], holds: Sequence[Hold]) -> list[dict[str, Any]] | None:
    """A message's blocks as Slack has them (an interaction's ``message``), with the hold line saying ``holds``
    just above its buttons (an earlier one replaced); ``None`` for a message without buttons (final)."""
    kept = [dict(block) for block in blocks if block.get("block_id") != HOLD_BLOCK_ID]
    at = next((i for i, block in enumerate(kept) if block.get("type") == "actions"), None)
    if at is None:
        return None
    return [*kept[:at], *([hold_block(holds)] if holds else []), *kept[at:]]


def hold_reply(hold: Hold) -> str:
    """The reply in the message's thread when someone snoozes or claims the lock."""
    return fit(hold_text(hold), REPLY_MAX)


def _fallback(n: Notification, state: NotificationKind) -> str:
    operation = n.operation or "(no operation)"
    who = n.who or "(unknown)"
    return fit(f"{TITLES[state]}: {n.lock_path} ({operation} by {who}, held {n.age})", FALLBACK_MAX, escape_prose)


def message_blocks(n: Notification, state: NotificationKind, *, buttons: bool) -> list[dict[str, Any]]:
    """The message's blocks: the state in the header, the facts, reasons, command, deleted item and follow-up of
    the webhook's message (the same escaping), the buttons while ``buttons``, and what the message shows."""
    header = {
        "type": "header",
        "text": _plain(
            fit(n.state_key, HEADER_MAX, lambda key: f"{EMOJI[state]} {TITLES[state]}: {escape_prose(key)}"),
            emoji=True,
        ),
    }
    facts = render_slack(n)["blocks"][1:-1]  # the webhook's header and context are replaced
    blocks = [header, *facts]
    if buttons:
        if n.holds:
            blocks.append(hold_block(n.holds))
        blocks.append(actions_block(n))
    context = f"tflock-reaper · state `{state}` · last event `{n.kind}` · severity {SEVERITIES[state]}"
    blocks.append(
        {
            "type": "context",
            "block_id": f"{STATE_BLOCK_PREFIX}{state}",
            "elements": [{"type": "mrkdwn", "text": context, "verbatim": True}],
        }
    )
    return blocks


def shown_state(blocks: Sequence[Mapping[str, Any]]) -> str | None:
    """The state a message's blocks show (its context block's ``block_id``), as Slack sent them back."""
    for block in blocks:
        block_id = block.get("block_id")
        if isinstance(block_id, str) and block_id.startswith(STATE_BLOCK_PREFIX):
            return block_id.removeprefix(STATE_BLOCK_PREFIX)
    return None


def render_message(n: Notification, *, channel: str, state: NotificationKind | None = None) -> dict[str, Any]:
    """The message of an acquisition as ``chat.postMessage`` takes it (no token): ``channel``, ``text`` (the
    fallback), ``blocks``; ``state`` is what it shows (default: the notification's kind). Buttons while held."""
    shown = state or n.kind
    held = shown not in FINAL and n.kind not in FINAL and n.kind is not K.UNREADABLE_LOCK
    return {
        "channel": channel,
        "text": _fallback(n, shown),
        "blocks": message_blocks(n, shown, buttons=held),
        "unfurl_links": False,
        "unfurl_media": False,
    }


def _what_happened(n: Notification) -> str:
    """The event in words (untrusted: it may quote the lock's reasons), for the thread reply."""
    if n.kind is K.STILL_STALE:
        return f"Still held after {n.held} (reminder {n.sequence})."
    if n.kind is K.REAP_BLOCKED:
        why = n.reasons[-1] if n.reasons else "a gate keeps it"
        return f"Past reap_after, and the reaper may not clear it: only a human can. {why}"
    if n.kind is K.REAPED:
        return f"Reaped by tflock-reaper after {n.age}. {n.follow_up or ''}"
    if n.kind is K.RESOLVED:
        why = n.reasons[0] if n.reasons else "released by its holder"
        return f"{why[:1].upper()}{why[1:]}. Nothing more will be posted about this lock."
    return f"{TITLES[n.kind]}: held {n.held}."


def thread_reply(n: Notification, *, previous: str | None, state: NotificationKind) -> str:
    """The reply in the message's thread: the change of state, and what happened (escaped, short)."""
    before = _kind(previous)
    change = f"*{LABELS[before]}* → *{LABELS[state]}*" if before is not None and before is not state else ""
    prefix = f"{EMOJI[n.kind]} {change}{': ' if change else ''}"
    return fit(one_line(_what_happened(n)).strip(), REPLY_MAX - len(prefix), lambda text: prefix + escape_prose(text))


# -- delivery ---------------------------------------------------------------------------------------------------
class _Bounded(RetryHandler):
    """A retry only while the send's deadline leaves time for another attempt."""

    deadline: Deadline = Deadline(float("inf"))

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if self.deadline.remaining() <= MIN_ATTEMPT_SECONDS:
            return False
        return super().can_retry(state=state, request=request, response=response, error=error)


class _RateLimited(_Bounded, RateLimitErrorRetryHandler):
    """slack_sdk's handler (it sleeps ``Retry-After`` plus up to a second), for a ``Retry-After`` that is at most
    ``max_wait`` seconds and ends before the deadline; a longer one fails the send now, retryably."""

    def __init__(self, max_retry_count: int, deadline: Deadline, max_wait: float) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.deadline = deadline
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != HTTP_TOO_MANY_REQUESTS:
            return False
        wait = _retry_after(response) + 1.0
        return wait <= self.max_wait and wait + MIN_ATTEMPT_SECONDS < self.deadline.remaining()


class _Reconnect(_Bounded, ConnectionErrorRetryHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__(max_retry_count=1)
        self.deadline = deadline


class _ServerError(_Bounded, ServerErrorRetryHandler):
    def __init__(self, deadline: Deadline) -> None:
        super().__init__(max_retry_count=1)
        self.deadline = deadline


def _retry_after(response: HttpResponse) -> float:
    for name, values in response.headers.items():
        if name.lower() == "retry-after":
            value = values[0] if isinstance(values, list) and values else values
            try:
                return float(str(value))
            except ValueError:
                return float("inf")
    return 1.0  # slack_sdk waits about a second without the header


class SlackApiCallError(NotifyError):
    """A Web API call that Slack answered with an error: ``code`` is Slack's (``channel_not_found``, ...)."""

    def __init__(self, channel: str, message: str, *, retryable: bool, code: str) -> None:
        super().__init__(channel, message, retryable=retryable)
        self.code = code


class _Api:
    """One send's calls to the Web API, each checked against the send's deadline, every failure a NotifyError."""

    def __init__(self, notifier: SlackAppNotifier, token: str, deadline: Deadline) -> None:
        self._name = notifier.name
        self._token = token
        self._deadline = deadline
        handlers: list[RetryHandler] = [
            _RateLimited(notifier.max_attempts - 1, deadline, notifier.max_retry_after),
            _Reconnect(deadline),
            _ServerError(deadline),
        ]
        self._client = WebClient(
            token=token, base_url=notifier.api_url, timeout=notifier.timeout, retry_handlers=handlers
        )

    def call(self, method: str, **payload: Any) -> dict[str, Any]:
        if self._deadline.remaining() <= MIN_ATTEMPT_SECONDS:
            raise NotifyError(self._name, f"Slack API {method} not called: no time left for this send", retryable=True)
        calls: dict[str, Callable[..., Any]] = {
            "chat.postMessage": self._client.chat_postMessage,
            "chat.update": self._client.chat_update,
            "chat.delete": self._client.chat_delete,
        }
        try:
            response = calls[method](**payload)
        except SlackApiError as err:
            raise _api_error(self._name, method, err, self._token) from None
        except Exception as err:  # noqa: BLE001 - urllib raises many types; its cause may hold the request
            reason = getattr(err, "reason", None) or err
            detail = redact(f"{type(reason).__name__}: {reason}", self._token)
            raise NotifyError(self._name, f"Slack API {method} unreachable: {detail}", retryable=True) from None
        data = response.data
        return data if isinstance(data, dict) else {}


def _api_error(name: str, method: str, err: SlackApiError, token: str) -> SlackApiCallError:
    response = err.response
    status = int(getattr(response, "status_code", 0) or 0)
    data = getattr(response, "data", None)
    code = str(data.get("error", "")) if isinstance(data, dict) else ""
    retryable = status == HTTP_TOO_MANY_REQUESTS or status in HTTP_SERVER_ERRORS or code in RETRYABLE_ERRORS
    what = code or f"HTTP {status}"
    if isinstance(data, dict) and data.get("needed"):
        what += f" (needs scope {data['needed']})"
    message = redact(f"Slack API {method} failed: {what}", token)[:300]
    return SlackApiCallError(name, message, retryable=retryable, code=code)


class SlackAppNotifier:
    """The ``slack_app`` channel (see the module). ``token_provider`` is called on every send (a cached secret);
    ``messages`` keeps each acquisition's message; ``redaction``: the process's log redaction, told of the token."""

    def __init__(
        self,
        token_provider: Callable[[], str],
        *,
        channel: str,
        messages: SlackMessages,
        name: str = "slack_app",
        api_url: str = DEFAULT_API_URL,
        timeout: int = 5,
        max_attempts: int = 3,
        max_retry_after: float = 30.0,
        total: float = 30.0,
        lease_wait: float = 10.0,
        lease_poll: float = 0.25,
        budget: Budget = UNBOUNDED,
        redaction: LogRedaction | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._token_provider = token_provider
        self.channel = channel
        self._messages = messages
        self._name = name
        self.api_url = api_url
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self.total = total
        self.lease_wait = lease_wait
        self.lease_poll = lease_poll
        self.budget = budget
        self._redaction = redaction
        self._sleep = sleep

    @property
    def name(self) -> str:
        return self._name

    def render(self, notification: Notification) -> dict[str, Any]:
        """The ``chat.postMessage`` payload of the acquisition's first message (a dry run's preview)."""
        return render_message(notification, channel=self.channel)

    def unusable(self) -> str | None:
        """Why nothing can be sent here (the token cannot be read, or is not a bot token), else ``None``."""
        try:
            self._token()
        except NotifyError as err:
            return err.message
        return None

    def _token(self) -> str:
        try:
            token = self._token_provider().strip()
        except SecretUnavailableError as err:  # names the secret and AWS's error, never the value
            raise NotifyError(self.name, f"cannot read the Slack bot token ({err})", retryable=True) from None
        except Exception as err:  # noqa: BLE001 - any failure to fetch the secret is a failed send
            raise NotifyError(
                self.name, f"cannot read the Slack bot token: {type(err).__name__}", retryable=True
            ) from None
        if not token.startswith("xoxb-"):
            raise NotifyError(self.name, "the Slack bot token does not start with xoxb-", retryable=False)
        if self._redaction is not None:
            self._redaction.add(token)
        return token

    def _session(self) -> tuple[_Api, Deadline]:
        """The Web API for one send (or one hold's update), and its deadline: ``total``, or what is left of the
        budget for outbound requests (none left: a retryable failure, nothing called)."""
        if self.budget.spent(at_least=MIN_ATTEMPT_SECONDS):
            raise NotifyError(self.name, "not sent: no time left in this sweep for outbound requests", retryable=True)
        deadline = self.budget.deadline(self.total)
        return _Api(self, self._token(), deadline), deadline

    def send(self, notification: Notification) -> None:
        api, deadline = self._session()
        if notification.kind is K.UNREADABLE_LOCK:  # no acquisition to follow: one message per unreadable item
            api.call("chat.postMessage", **render_message(notification, channel=self.channel))
            return
        message = self._take(notification.scope, notification.lock_path, notification.lock_id, deadline)
        released = False
        try:
            released = self._deliver(api, notification, message)
        finally:
            if not released:
                self._release(message)

    def _release(self, message: SlackMessage) -> None:
        try:
            self._messages.release(message)
        except AwsAccessError as err:  # the lease then expires by itself (LEASE)
            logger.warning("slack message lease not released", extra={"channel": self.name, "error": str(err)})

    def show_holds(
        self,
        shown: SlackMessage,
        *,
        blocks: Sequence[Mapping[str, Any]],
        text: str,
        hold: Hold,
        holds: Sequence[Hold],
    ) -> bool:
        """After a Snooze or It's mine press on ``shown`` (as recorded): the message updated in place with who holds
        the lock (``blocks``: the message as Slack sent it in the press), and ``hold`` said in its thread. Under the
        message's lease, as every update; nothing is done to a message that is final, or is not the one recorded
        any more (posted anew). Blocks that show another state than the one recorded (a sweep updated the message
        after it was displayed) are not put back: only the thread reply is posted, and the next update shows the
        hold. Whether the message was updated; a failure raises :class:`NotifyError`."""
        api, deadline = self._session()
        message = self._take(shown.scope, shown.lock_path, shown.lock_id, deadline)
        try:
            updated = with_holds(blocks, holds)
            if message.final or (message.channel, message.ts) != (shown.channel, shown.ts) or updated is None:
                logger.info(
                    "slack message not updated with its hold: final, or posted anew",
                    extra={"channel": self.name, "lock_path": shown.lock_path},
                )
                return False
            current = message.state is None or shown_state(blocks) == message.state
            if current:
                api.call("chat.update", channel=shown.channel, ts=shown.ts, text=text, blocks=updated)
            else:
                logger.info(
                    "slack message outdated in the press: only its thread says who holds it",
                    extra={"channel": self.name, "lock_path": shown.lock_path, "state": message.state},
                )
            api.call(
                "chat.postMessage",
                channel=shown.channel,
                thread_ts=shown.ts,
                text=hold_reply(hold),
                unfurl_links=False,
                unfurl_media=False,
            )
            return current
        finally:
            self._release(message)

    def _take(self, scope: str, lock_path: str, lock_id: str, deadline: Deadline) -> SlackMessage:
        """The acquisition's message with its lease, waiting (bounded) while another sender holds it."""
        waited = 0.0
        while True:
            message = self._store(
                "take a Slack message",
                lambda: self._messages.take(scope, lock_path, lock_id, self.name, channel=self.channel),
            )
            if message is not None:
                return message
            if waited + self.lease_poll > self.lease_wait or deadline.remaining() <= self.lease_poll:
                raise NotifyError(
                    self.name,
                    "the Slack message of this lock is being sent by another sweep or function: a later attempt "
                    "updates it",
                    retryable=True,
                )
            self._sleep(self.lease_poll)
            waited += self.lease_poll

    def _deliver(self, api: _Api, n: Notification, message: SlackMessage) -> bool:
        """Post or update the message; whether its lease is given back (with what the message now shows)."""
        if message.final and message.ts:
            logger.info(
                "slack message final: nothing more is posted",
                extra={"channel": self.name, "event": str(n.kind), "lock_path": n.lock_path},
            )
            return False
        state = headline(n.kind, message.state)
        final = n.kind in FINAL
        payload = render_message(n, channel=message.channel or self.channel, state=state)
        if message.ts is not None:
            try:
                self._update(api, n, message, payload, state)
            except SlackApiCallError as err:
                if err.code not in MESSAGE_GONE:
                    raise
                logger.warning(
                    "slack message gone: posted anew", extra={"channel": self.name, "lock_path": n.lock_path}
                )
            else:
                return self._record(message, n, state=state, final=final)
        self._post(api, message, payload, state=state, final=final)
        return True

    def _update(
        self, api: _Api, n: Notification, message: SlackMessage, payload: dict[str, Any], state: NotificationKind
    ) -> None:
        """The message in place, then a reply in its thread saying what changed."""
        channel, ts = payload["channel"], message.ts
        api.call("chat.update", channel=channel, ts=ts, text=payload["text"], blocks=payload["blocks"])
        reply = thread_reply(n, previous=message.state, state=state)
        api.call("chat.postMessage", channel=channel, thread_ts=ts, text=reply, unfurl_links=False, unfurl_media=False)

    def _record(self, message: SlackMessage, n: Notification, *, state: NotificationKind, final: bool) -> bool:
        """What the updated message shows. Slack has it already: a failure here is logged, not a failed send (a
        retry would post the thread reply again); the next update then starts from the state recorded before."""
        fields = {"channel": self.name, "lock_path": n.lock_path, "event": str(n.kind)}
        try:
            if not self._messages.advance(message, state=state.value, final=final):
                logger.warning("slack message lease lost before its update was recorded", extra=fields)
        except AwsAccessError as err:
            logger.error("slack message updated but not recorded", extra={**fields, "error": str(err)})
            return False
        return True

    def _post(
        self, api: _Api, message: SlackMessage, payload: dict[str, Any], *, state: NotificationKind, final: bool
    ) -> None:
        """Post the message and record its ``ts``; a post that cannot be recorded is deleted again (a retry would
        otherwise leave two messages)."""
        answer = api.call("chat.postMessage", **payload)
        ts, channel = str(answer.get("ts", "")), str(answer.get("channel") or payload["channel"])
        try:
            recorded = self._messages.advance(message, state=state.value, final=final, ts=ts)
            problem = "" if recorded else "the lease on the Slack message was lost before its ts was recorded"
        except AwsAccessError as err:
            problem = f"cannot record a Slack message: {err}"
        if not problem:
            return
        try:
            api.call("chat.delete", channel=channel, ts=ts)
        except NotifyError as err:
            logger.error(
                "slack message posted but neither recorded nor deleted",
                extra={"channel": self.name, "error": err.message},
            )
        raise NotifyError(self.name, f"{problem} (the message was deleted again)", retryable=True)

    def _store(self, what: str, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except AwsAccessError as err:
            raise NotifyError(self.name, f"cannot {what}: {err}", retryable=err.transient) from None


__all__ = [
    "FINAL",
    "SlackAppNotifier",
    "actions_block",
    "button_value",
    "headline",
    "hold_block",
    "message_blocks",
    "render_message",
    "thread_reply",
    "with_holds",
]
