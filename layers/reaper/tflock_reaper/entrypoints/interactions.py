"""Wiring for the interactions function: the Slack app's button presses, from its Lambda function URL.

The URL's auth type is NONE (Slack cannot sign AWS requests): the Slack signature is the authentication. A request
is refused, before anything is read or written, unless it is a ``POST`` whose body Slack signed with the app's
signing secret less than five minutes ago, a ``block_actions`` payload, one of the app's actions, with a button
value the app made, naming an acquisition this stack recorded:

====================================================================  ======
refused request                                                       status
====================================================================  ======
not a ``POST``                                                        405
no ``X-Slack-Request-Timestamp`` or ``X-Slack-Signature``; a          401
malformed one; a timestamp more than 5 minutes from now (a replay);
a signature that is not the app's (a body changed after signing)
a body that is not base64 (when so flagged), not UTF-8, too large;    400
not a form with one ``payload``; not JSON; not ``block_actions``;
no user or ``response_url``; an unknown ``action_id``; a value or
Snooze option the app did not make
a value whose keys name no acquisition in the state table             404
====================================================================  ======

Each is logged (``slack request refused``, with its status and reason, never the body) and counted
(``SlackRequestsRefused``); nothing else happens, and nothing is posted to Slack. A press that passes is acted on
(:func:`tflock_reaper.services.interactions.act`), answered ``200`` with an empty body, logged as ``slack_action``,
counted (``SlackActions`` by ``action`` and ``outcome``) and answered privately to the presser through its
``response_url`` (``ephemeral``; the message itself is not replaced), whatever the outcome, refusals included.

Slack wants the ``200`` within 3 seconds, and it is given after the work: one state-table read, the lock's read
(each lock table's item, the lockfile), at most one conditional delete and its records, the ``reaped`` alert, and
the answer. The AWS clients give up early (:mod:`tflock_reaper.adapters.slack_interactions`), the alert's channels
get what the function's time leaves after the answer's (its Timeout is 10 s): a slow channel can make Slack show
the presser a timeout while the reap, its alert and the private answer still complete.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from tflock_reaper.adapters.slack_interactions import InteractionClients, ResponseUrl, SignatureCheck, SlackSignature
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor
from tflock_reaper.domain.text import fit, one_line
from tflock_reaper.entrypoints.settings import Settings, get_settings

if TYPE_CHECKING:
    from tflock_reaper.adapters.aws import AwsClients
    from tflock_reaper.adapters.channels.slack_app import SlackAppNotifier
    from tflock_reaper.adapters.slack_messages import SlackMessage
    from tflock_reaper.domain.lock import LockRecord
    from tflock_reaper.domain.notifier import Notifier
    from tflock_reaper.domain.policy import Channel, Policy
    from tflock_reaper.services.interactions import ActionResult, Collaborators, MessageUpdater, Press

_logger = logging.getLogger(__name__)

#: Slack's interaction payloads are a few kilobytes (the message's blocks included); anything far larger is not one.
MAX_BODY_BYTES = 256 * 1024
#: Block Kit: blocks in a message.
MESSAGE_BLOCKS_MAX = 50
#: What the presser's name may take in logs, holds, records and alerts.
NAME_MAX = 80
#: Seconds of the invocation kept for the presser's answer (its POST's total deadline, and a margin): the
#: ``reaped`` alert's channels get the rest.
ANSWER_RESERVE_SECONDS = 3.0
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")
_TS = re.compile(r"^[0-9]{1,12}\.[0-9]{1,9}$")
_SECRET_CACHE_SECONDS = 300

_OK = 200
_BAD_REQUEST = 400
_UNAUTHORIZED = 401
_NOT_FOUND = 404
_NOT_ALLOWED = 405
_SERVER_ERROR = 500


class RefusedRequestError(Exception):
    """A request refused before anything is done: ``status`` and, for the log, ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def response(status: int, body: str = "") -> dict[str, Any]:
    """A function URL's answer (a 405 says which method is allowed)."""
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if status == _NOT_ALLOWED:
        headers["Allow"] = "POST"
    return {"statusCode": status, "headers": headers, "body": body}


# -- the request ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedRequest:
    """A function URL's ``POST``: its headers (lower-case names, as the URL gives them) and its body as sent."""

    headers: Mapping[str, str]
    body: str


def http_request(event: object) -> SignedRequest:
    """The ``POST`` in a function URL event (payload format 2.0), its body base64-decoded when so flagged."""
    if not isinstance(event, dict):
        raise RefusedRequestError(_BAD_REQUEST, "not a function URL event")
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    if method != "POST":
        raise RefusedRequestError(_NOT_ALLOWED, f"method {one_line(str(method))[:16]} is not POST")
    headers = event.get("headers")
    names = {str(k).lower(): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
    body = event.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str) or len(body) > MAX_BODY_BYTES * 2:
        raise RefusedRequestError(_BAD_REQUEST, "no body, or far too large a body")
    if event.get("isBase64Encoded") is True:
        try:
            raw = base64.b64decode(body, validate=True)
            body = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            raise RefusedRequestError(_BAD_REQUEST, "the body is not base64 of UTF-8 text") from None
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise RefusedRequestError(_BAD_REQUEST, "the body is too large")
    return SignedRequest(names, body)


def verify(request: SignedRequest, signature: SlackSignature) -> None:
    """Refuse (401) a request that Slack did not sign with the app's secret within the last five minutes."""
    check = signature.check(
        request.body, request.headers.get("x-slack-request-timestamp"), request.headers.get("x-slack-signature")
    )
    if check is not SignatureCheck.VALID:
        reasons = {
            SignatureCheck.MISSING: "no X-Slack-Request-Timestamp or X-Slack-Signature header",
            SignatureCheck.MALFORMED: "a malformed X-Slack-Request-Timestamp or X-Slack-Signature",
            SignatureCheck.STALE: "signed more than 5 minutes from now (a replay?)",
            SignatureCheck.INVALID: "not signed with the app's signing secret (or changed after signing)",
        }
        raise RefusedRequestError(_UNAUTHORIZED, reasons[check])


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise RefusedRequestError(_BAD_REQUEST, f"no {what}")
    return value


def _payload(body: str) -> dict[str, Any]:
    try:
        form = parse_qs(body, keep_blank_values=True, strict_parsing=True, max_num_fields=8)
    except ValueError:
        raise RefusedRequestError(_BAD_REQUEST, "the body is not a form") from None
    payloads = form.get("payload", [])
    if len(payloads) != 1:
        raise RefusedRequestError(_BAD_REQUEST, "the form has no single payload")
    try:
        payload = json.loads(payloads[0])
    except (json.JSONDecodeError, RecursionError):
        raise RefusedRequestError(_BAD_REQUEST, "the payload is not JSON") from None
    if not isinstance(payload, dict):
        raise RefusedRequestError(_BAD_REQUEST, "the payload is not a JSON object")
    if payload.get("type") != "block_actions":
        raise RefusedRequestError(
            _BAD_REQUEST, f"not a block_actions payload ({one_line(str(payload.get('type')))[:40]})"
        )
    return payload


def _button_value(action: Mapping[str, Any], kind: SlackAction) -> tuple[ButtonValue, SnoozeFor | None]:
    """The acquisition a press names: a button's ``value``; for Snooze's menu, its block's ``block_id`` (its
    option carries the duration)."""
    snooze: SnoozeFor | None = None
    if kind is SlackAction.SNOOZE:
        option = action.get("selected_option")
        chosen = option.get("value") if isinstance(option, dict) else None
        try:
            snooze = SnoozeFor(str(chosen))
        except ValueError:
            raise RefusedRequestError(_BAD_REQUEST, "not one of the Snooze menu's options") from None
        carried = action.get("block_id")
    else:
        carried = action.get("value")
    try:
        return ButtonValue.decode(_text(carried, "button value")), snooze
    except ValueError:
        raise RefusedRequestError(_BAD_REQUEST, "not a button value this app made") from None


def parse_press(body: str) -> Press:
    """The press in a signed body: refused (400) unless it is one of the app's, in full."""
    from tflock_reaper.services.interactions import Press, Presser  # noqa: PLC0415 - signed requests only

    payload = _payload(body)
    actions = payload.get("actions")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise RefusedRequestError(_BAD_REQUEST, "not exactly one action")
    action = actions[0]
    try:
        kind = SlackAction(str(action.get("action_id")))
    except ValueError:
        raise RefusedRequestError(_BAD_REQUEST, "an action_id this app does not have") from None
    value, snooze = _button_value(action, kind)
    user = payload.get("user")
    user = user if isinstance(user, dict) else {}
    user_id = user.get("id")
    if not isinstance(user_id, str) or _USER_ID.match(user_id) is None:
        raise RefusedRequestError(_BAD_REQUEST, "no Slack user ID")
    name = next((n for n in (user.get("username"), user.get("name")) if isinstance(n, str) and n.strip()), user_id)
    container = payload.get("container")
    container = container if isinstance(container, dict) else {}
    channel, ts = container.get("channel_id"), container.get("message_ts")
    blocks, text = _message(payload.get("message"))
    return Press(
        action=kind,
        value=value,
        presser=Presser(user_id, fit(one_line(name), NAME_MAX)),
        snooze=snooze,
        response_url=_text(payload.get("response_url"), "response_url"),
        channel_id=channel if isinstance(channel, str) and _SLACK_ID.match(channel) else None,
        message_ts=ts if isinstance(ts, str) and _TS.match(ts) else None,
        message_blocks=blocks,
        message_text=text,
    )


def _message(message: object) -> tuple[tuple[dict[str, Any], ...], str]:
    """The pressed message's blocks and fallback text, as Slack sends them back (nothing when they are not what a
    message of Block Kit is: the message is then left as it is)."""
    if not isinstance(message, dict):
        return (), ""
    blocks, text = message.get("blocks"), message.get("text")
    if not isinstance(blocks, list) or len(blocks) > MESSAGE_BLOCKS_MAX or not all(isinstance(b, dict) for b in blocks):
        return (), ""
    return tuple(blocks), text if isinstance(text, str) else ""


# -- the presser's answer ---------------------------------------------------------------------------------------
def _lock_now(lock: LockRecord) -> str:
    from tflock_reaper.adapters.channels.slack import code  # noqa: PLC0415 - answers only

    info = lock.info
    return (
        f"lock ID {code(fit(info.id, 80))}, {code(fit(info.operation, 60))} by {code(fit(info.who, 120))}, "
        f"created {info.created.isoformat()}"
    )


def _answer_text(result: ActionResult, time_zone: str) -> str:  # noqa: C901 - one sentence per outcome
    from tflock_reaper.adapters.channels.slack import code, escape_prose  # noqa: PLC0415 - answers only
    from tflock_reaper.services.interactions import ActionOutcome, zone  # noqa: PLC0415

    press, outcome = result.press, result.outcome
    lock = f"{code(fit(result.lock_path, 300))} (lock ID {code(fit(result.lock_id, 80))})"
    rule = escape_prose(fit(result.rule.name, 200)) if result.rule is not None else "?"
    detail = escape_prose(fit(result.detail, 600))
    if outcome is ActionOutcome.REAPED:
        return (
            f":white_check_mark: Reaped the lock on {lock}, approved by you. Its `reaped` alert goes to the "
            "rule's channels. If it was an apply, run `terraform plan` and review what it left."
        )
    if outcome is ActionOutcome.SNOOZED and result.hold is not None and result.hold.until is not None:
        until = result.hold.until.astimezone(zone(time_zone)).strftime("%Y-%m-%d %H:%M")
        return f":zzz: Snoozed {lock} until {until} ({escape_prose(time_zone)}): no automatic reap until then."
    if outcome is ActionOutcome.CLAIMED:
        return (
            f":raised_hand: {lock} is yours: tflock-reaper will not reap it automatically, and reminds the channel "
            "at most once a day while it is held."
        )
    if outcome is ActionOutcome.NOT_APPROVED:
        if press.action is not SlackAction.REAP_NOW:
            return f":no_entry: Only the approvers of this lock's rule ({rule}) may snooze or claim it: nothing done."
        if result.rule is not None and not result.rule.approvers:
            return (
                f":no_entry: Nobody may reap this lock from Slack: its rule ({rule}) names no approvers. Nothing done."
            )
        return f":no_entry: Only the approvers of this lock's rule ({rule}) may reap it from Slack: nothing done."
    if outcome is ActionOutcome.RELEASED:
        return f"This acquisition does not hold {lock} any more: nothing done."
    if outcome is ActionOutcome.CHANGED:
        held = "; ".join(_lock_now(now) for now in result.held_now[:3]) or "nothing (released)"
        return f":warning: The lock on {lock} changed since this message: nothing deleted. Held now: {held}."
    if outcome is ActionOutcome.NOT_DELETABLE:
        return f":warning: {lock} was not deleted: {detail}. Inspect it, and delete it by hand if it is stale."
    if outcome is ActionOutcome.OUT_OF_REACH:
        return (
            f":warning: {lock} is held where this function does not reach ({escape_prose(fit(result.scope, 300))}): "
            "nothing done. Use `tflock-reaper unlock` with access to it."
        )
    return f":x: That did not work: {detail}. See the interactions function's log."


def answer(result: ActionResult, time_zone: str) -> dict[str, Any]:
    """The presser's private answer (``response_url``): ephemeral, the message left as it is."""
    return {"response_type": "ephemeral", "replace_original": False, "text": _answer_text(result, time_zone)}


# -- the audit --------------------------------------------------------------------------------------------------
class PowertoolsActionLog:
    """Every press as a ``slack_action`` log line and a ``SlackActions`` data point (by action and outcome); every
    refused request as a ``slack request refused`` line and a ``SlackRequestsRefused`` data point (by status); a
    press that AWS failed, and an error of ours, as an ``InteractionFailures`` data point too."""

    def __init__(self, logger: Logger, metrics: Metrics) -> None:
        self._logger = logger
        self._metrics = metrics

    def _count(self, name: str, **dimensions: str) -> None:
        try:
            with single_metric(
                name=name,
                unit=MetricUnit.Count,
                value=1,
                namespace=self._metrics.namespace,
                default_dimensions=self._metrics.default_dimensions,
            ) as metric:
                for key, value in dimensions.items():
                    metric.add_dimension(name=key, value=value)
        except Exception:
            self._logger.exception("metric not published", extra={"metric": name})

    def pressed(self, result: ActionResult) -> None:
        from tflock_reaper.services.interactions import DONE, ActionOutcome  # noqa: PLC0415

        press = result.press
        fields: dict[str, Any] = {
            "event": "slack_action",
            "action": press.action.value,
            "user_id": press.presser.user_id,
            "user_name": press.presser.name,
            "lock_path": result.lock_path,
            "lock_id": result.lock_id,
            "scope": result.scope,
            "outcome": result.outcome.value,
            "detail": result.detail,
            "rule": result.rule.name if result.rule is not None else None,
            "channel_id": press.channel_id,
            "message_ts": press.message_ts,
        }
        if press.snooze is not None:
            fields["snooze"] = press.snooze.value
        if result.hold is not None and result.hold.until is not None:
            fields["until"] = result.hold.until.isoformat()
        level = "info" if result.outcome in DONE else "warning"
        getattr(self._logger, level)("slack_action", extra=fields)
        self._count("SlackActions", action=press.action.value, outcome=result.outcome.value)
        if result.outcome is ActionOutcome.FAILED:
            self._count("InteractionFailures")

    def refused(self, error: RefusedRequestError) -> None:
        self._logger.warning("slack request refused", extra={"status": error.status, "reason": error.reason})
        self._count("SlackRequestsRefused", status=str(error.status))

    def failed(self) -> None:
        """An error of ours (settings, policy, secret, a bug), with its traceback, counted as an
        ``InteractionFailures`` data point (what the stack's interactions alarm watches, with the function's
        errors)."""
        self._logger.exception("interaction failed")
        self._count("InteractionFailures")


# -- the message ------------------------------------------------------------------------------------------------
class SlackAppMessageUpdate:
    """The :class:`~tflock_reaper.services.interactions.MessageUpdater` of the deployed function: after a *Snooze* or
    *It's mine* press, the message pressed on shows who holds the lock, with a reply in its thread, through the
    ``slack_app`` channel that posted it (its bot token, its lease on the message). A message this stack did not
    post (no record of it in the state table for that acquisition) is left as it is. *Reap now* needs nothing
    here: its ``reaped`` alert updates the message."""

    def __init__(
        self,
        find: Callable[[str, str, str], SlackMessage | None],
        notifier_for: Callable[[str], SlackAppNotifier | None],
    ) -> None:
        self._find = find
        self._notifier_for = notifier_for

    def update(self, result: ActionResult) -> None:
        press, hold = result.press, result.hold
        if hold is None or press.channel_id is None or press.message_ts is None or not press.message_blocks:
            return
        shown = self._find(press.value.pk, press.channel_id, press.message_ts)
        notifier = self._notifier_for(shown.notifier) if shown is not None else None
        if shown is None or shown.acquisition_sk != press.value.sk or notifier is None:
            _logger.info(
                "slack message not updated: not one this stack's slack_app channels posted about the acquisition",
                extra={"lock_path": result.lock_path, "channel_id": press.channel_id},
            )
            return
        notifier.show_holds(
            shown, blocks=press.message_blocks, text=press.message_text, hold=hold, holds=result.holds or (hold,)
        )


def slack_app_notifiers(policy: Policy, factory: Callable[[str, Channel], Notifier]) -> Callable[[str], Any]:
    """The policy's ``slack_app`` channel of a name, built by ``factory`` (once); ``None`` for another kind."""
    built: dict[str, Any] = {}

    def notifier_for(name: str) -> Any:
        from tflock_reaper.domain.policy import SlackAppChannel  # noqa: PLC0415

        channel = policy.channels.get(name)
        if not isinstance(channel, SlackAppChannel):
            return None
        if name not in built:
            built[name] = factory(name, channel)
        return built[name]

    return notifier_for


# -- the wiring -------------------------------------------------------------------------------------------------
@dataclass
class Interactions:
    """What a warm function keeps between presses: its settings, AWS clients (and so the cached secrets), the
    answer's HTTP pool. Every collaborator can be given (tests give moto-backed and loopback ones)."""

    settings: Settings
    clients: AwsClients = field(default_factory=InteractionClients)
    answers: ResponseUrl | None = None
    updater: MessageUpdater | None = None
    now: Callable[[], float] = time.time
    _secrets: Any = field(default=None, init=False, repr=False)
    _answers: ResponseUrl = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._answers = self.answers or ResponseUrl(prefix=self.settings.slack_response_url_prefix)

    def signing_secret(self) -> str:
        """The app's signing secret, through Powertools Parameters (cached 5 minutes); told to the log redaction."""
        name = self.settings.slack_signing_secret_name
        if not name:
            raise RuntimeError("SLACK_SIGNING_SECRET_NAME is not set: the interactions function cannot check requests")
        from aws_lambda_powertools.utilities.parameters import SecretsProvider  # noqa: PLC0415 - cold start

        from tflock_reaper.entrypoints.wiring import log_redaction  # noqa: PLC0415 - signed requests only

        redaction = log_redaction()
        if self._secrets is None:
            self._secrets = SecretsProvider(boto3_client=self.clients.client("secretsmanager"))
        value = str(self._secrets.get(name, max_age=_SECRET_CACHE_SECONDS))
        redaction.add(value)
        return value

    def collaborators(self, remaining_seconds: Callable[[], float] | None) -> Collaborators:
        """The real state table, lock tables, lockfiles, policy and alerts (the ``reaped`` alert's channels get
        the invocation's time less :data:`ANSWER_RESERVE_SECONDS`)."""
        # Imported here: only a press that passed every check needs them (cold start).
        from tflock_reaper.adapters.slack_messages import DynamoSlackMessages  # noqa: PLC0415
        from tflock_reaper.adapters.state_table import StateTable  # noqa: PLC0415
        from tflock_reaper.domain.deadline import UNBOUNDED, Budget  # noqa: PLC0415
        from tflock_reaper.entrypoints.wiring import (  # noqa: PLC0415
            channel_factory,
            load_deployed_policy,
            lock_sources,
            make_alerter,
        )
        from tflock_reaper.services.interactions import Collaborators  # noqa: PLC0415

        settings = self.settings
        if not settings.state_table_name:
            raise RuntimeError("STATE_TABLE_NAME is not set: the buttons name acquisitions in the state table")
        policy = load_deployed_policy(settings)
        store = StateTable(self.clients.dynamodb(), settings.state_table_name)
        tables, lockfiles = lock_sources(self.clients, tables=settings.lock_table_names, buckets=settings.state_buckets)
        budget = UNBOUNDED if remaining_seconds is None else Budget.keeping(remaining_seconds, ANSWER_RESERVE_SECONDS)
        # One factory for the reaped alert's channels and the hold's message update: one secret resolver (the bot
        # token read once) and one store of the Slack messages.
        factory = channel_factory(
            self.clients,
            default_topic_arn=settings.alert_topic_arn,
            state_table=settings.state_table_name,
            budget=budget,
        )
        alerts = make_alerter(
            policy,
            table=", ".join(settings.lock_table_names or settings.state_buckets),
            clients=self.clients,
            state=store,
            state_table=settings.state_table_name,
            default_topic_arn=settings.alert_topic_arn,
            factory=factory,
        )
        updater = self.updater or SlackAppMessageUpdate(
            DynamoSlackMessages(self.clients.dynamodb(), settings.state_table_name).find,
            slack_app_notifiers(policy, factory),
        )
        return Collaborators(
            store=store, tables=tables, lockfiles=lockfiles, policy=policy, alerts=alerts, updater=updater
        )

    def handle(
        self, event: object, log: PowertoolsActionLog, *, remaining_seconds: Callable[[], float] | None = None
    ) -> dict[str, Any]:
        """One function URL request, answered."""
        try:
            request = http_request(event)
            verify(request, SlackSignature(self.signing_secret, now=self.now))
            press = parse_press(request.body)
        except RefusedRequestError as refused:
            log.refused(refused)
            return response(refused.status, refused.reason)
        from tflock_reaper.services.interactions import ActionOutcome, act  # noqa: PLC0415 - signed presses only

        deps = self.collaborators(remaining_seconds)
        result = act(press, deps)
        log.pressed(result)
        if result.outcome is ActionOutcome.UNKNOWN_ACQUISITION:
            log.refused(RefusedRequestError(_NOT_FOUND, result.detail))
            return response(_NOT_FOUND, "no such acquisition")
        self._answers.post(press.response_url, answer(result, deps.policy.defaults.time_zone))
        return response(_OK)


@lru_cache(maxsize=1)
def default_interactions() -> Interactions:
    """The deployed function's wiring, made on the first request (never at import) and kept while warm."""
    return Interactions(get_settings())


def handle_request(
    event: object, log: PowertoolsActionLog, *, remaining_seconds: Callable[[], float] | None = None
) -> dict[str, Any]:
    """A request to the function URL, answered; an error of ours (settings, policy, secret) is a 500 with nothing
    done, logged with its traceback."""
    try:
        return default_interactions().handle(event, log, remaining_seconds=remaining_seconds)
    except Exception:  # noqa: BLE001 - logged with its traceback; Slack gets a 500, not Lambda's 502
        log.failed()
        return response(_SERVER_ERROR, "internal error")
