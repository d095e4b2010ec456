"""The Slack buttons' pure parts (issue 18): who may press (the policy's approvers, holds for approvers only, the
time zone), the signature check on a fixed clock, the parsing of a press, and the private answer's escaping."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from tflock_reaper.adapters.slack_interactions import SignatureCheck, SlackSignature, sign
from tflock_reaper.domain.policy import PolicyError, parse_policy
from tflock_reaper.domain.slack_actions import ButtonValue, SlackAction, SnoozeFor
from tflock_reaper.entrypoints.interactions import RefusedRequestError, answer, http_request, parse_press
from tflock_reaper.services.interactions import ActionOutcome, ActionResult, Press, Presser, approved

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_764_158_400
VALUE = ButtonValue("LOCK#" + "a" * 32, "ID#" + "b" * 32, "c" * 64)


# -- the policy -------------------------------------------------------------------------------------------------
def test_approvers_are_the_rules_else_the_defaults_and_none_means_nobody():
    policy = parse_policy(
        "defaults: {approvers: [U0123456789, W0123456789]}\n"
        "rules:\n"
        "  - {match: 'tf-state/prod/*', approvers: [U0AAAAAAAA1]}\n"
        "  - {match: 'tf-state/locked/*', approvers: []}\n"
        "  - {match: 'tf-state/strict/*', holds_by_approvers_only: true}\n"
    )
    assert policy.rule_for_path("tf-state/dev/x").approvers == ("U0123456789", "W0123456789")
    assert policy.rule_for_path("tf-state/prod/x").approvers == ("U0AAAAAAAA1",)
    assert policy.rule_for_path("tf-state/locked/x").approvers == ()
    assert policy.rule_for_path("tf-state/strict/x").holds_by_approvers_only is True
    assert policy.rule_for_path("tf-state/dev/x").holds_by_approvers_only is False
    assert parse_policy("{}").rule_for_path("a/b").approvers == ()  # none configured: nobody may Reap now
    assert parse_policy("{}").defaults.time_zone == "UTC"
    rule = policy.rule_for_path("tf-state/prod/x")
    assert approved(Presser("U0AAAAAAAA1", "a"), rule)
    assert not approved(Presser("U0123456789", "b"), rule)


@pytest.mark.parametrize(
    ("yaml", "says"),
    [
        ("defaults: {approvers: [S0123456789]}", "S0123456789 is a Slack user group: approvers are matched by user ID"),
        ("defaults: {approvers: [alice]}", "must be a Slack user ID such as U0123456789"),
        ("rules: [{match: x, approvers: ['alice@example.com']}]", "rules[0].approvers[0]: must be a Slack user ID"),
        ("defaults: {time_zone: Mars/Olympus}", "unknown time zone 'Mars/Olympus'"),
        ("defaults: {time_zone: /etc/localtime}", "defaults.time_zone: unknown time zone"),
        ("defaults: {holds_by_approvers_only: maybe}", "defaults.holds_by_approvers_only"),
    ],
)
def test_the_policy_refuses_what_cannot_name_a_slack_user_or_a_time_zone(yaml: str, says: str):
    with pytest.raises(PolicyError) as refused:
        parse_policy(yaml + "\n", source="policy.yaml")
    assert says in str(refused.value)


# -- the signature ----------------------------------------------------------------------------------------------
def _check(body: str, timestamp: str | None, signature: str | None, *, now: float = NOW) -> SignatureCheck:
    reads: list[str] = []

    def secret() -> str:
        reads.append("read")
        return SECRET

    check = SlackSignature(secret, now=lambda: now).check(body, timestamp, signature)
    if check in (SignatureCheck.MISSING, SignatureCheck.MALFORMED, SignatureCheck.STALE):
        assert reads == []  # refused before the secret is even read
    return check


def test_a_request_signed_as_slack_signs_is_valid_for_five_minutes():
    body = "payload=%7B%7D"
    signature = sign(SECRET, str(NOW), body)
    assert signature.startswith("v0=")
    assert _check(body, str(NOW), signature) is SignatureCheck.VALID
    assert _check(body, str(NOW), signature, now=NOW + 299) is SignatureCheck.VALID
    assert _check(body, str(NOW), signature, now=NOW + 301) is SignatureCheck.STALE
    assert _check(body, str(NOW), signature, now=NOW - 301) is SignatureCheck.STALE  # from the future
    assert _check(body + "&x=1", str(NOW), signature) is SignatureCheck.INVALID
    assert _check(body, str(NOW), sign("another-secret", str(NOW), body)) is SignatureCheck.INVALID


@pytest.mark.parametrize(
    ("timestamp", "signature", "check"),
    [
        (None, "v0=" + "0" * 64, SignatureCheck.MISSING),
        (str(NOW), None, SignatureCheck.MISSING),
        ("1764158400.5", "v0=" + "0" * 64, SignatureCheck.MALFORMED),
        ("now", "v0=" + "0" * 64, SignatureCheck.MALFORMED),
        (str(NOW), "v1=" + "0" * 64, SignatureCheck.MALFORMED),
        (str(NOW), "v0=" + "é" * 64, SignatureCheck.MALFORMED),  # compare_digest raises on non-ASCII text
        (str(NOW), "v0=" + "0" * 64 + ",v0=" + "1" * 64, SignatureCheck.MALFORMED),
    ],
)
def test_headers_that_cannot_be_checked_are_refused_before_the_secret_is_read(timestamp, signature, check):
    assert _check("payload=%7B%7D", timestamp, signature) is check


# -- the request and the press ----------------------------------------------------------------------------------
def _event(method: str = "POST", body: str = "", *, b64: bool = False) -> dict[str, object]:
    return {
        "version": "2.0",
        "rawPath": "/",
        "headers": {"x-slack-signature": "v0=x"},
        "requestContext": {"http": {"method": method}},
        "body": body,
        "isBase64Encoded": b64,
    }


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (_event("GET"), 405),
        (_event("PUT"), 405),
        ("not an event", 400),
        (_event(body="!!!", b64=True), 400),
        (_event(body="//79", b64=True), 400),  # base64 of bytes that are not UTF-8
        (_event(body="x" * (300 * 1024)), 400),
    ],
)
def test_what_is_not_a_post_of_a_text_body_is_refused(event, status):
    with pytest.raises(RefusedRequestError) as refused:
        http_request(event)
    assert refused.value.status == status


def test_a_base64_body_is_decoded_and_header_names_are_lower_case():
    request = http_request(_event(body="cGF5bG9hZD0lN0IlN0Q=", b64=True) | {"headers": {"X-Slack-Signature": "s"}})
    assert request.body == "payload=%7B%7D"
    assert request.headers == {"x-slack-signature": "s"}


def _form(payload: object) -> str:
    return urlencode({"payload": json.dumps(payload)})


def _press(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "type": "block_actions",
        "user": {"id": "U0123456789", "username": "alice", "name": "alice"},
        "container": {"type": "message", "message_ts": "1764158400.000100", "channel_id": "C0123456789"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"action_id": "tflock_reap_now", "value": VALUE.encode(), "block_id": VALUE.encode()}],
    }
    return base | changes


def test_a_press_is_parsed_in_full():
    press = parse_press(_form(_press()))
    assert press == Press(
        SlackAction.REAP_NOW,
        VALUE,
        Presser("U0123456789", "alice"),
        response_url="https://hooks.slack.com/actions/T0/1/abc",
        channel_id="C0123456789",
        message_ts="1764158400.000100",
    )
    snooze = {"action_id": "tflock_snooze", "block_id": VALUE.encode(), "selected_option": {"value": "4h"}}
    assert parse_press(_form(_press(actions=[snooze]))).snooze is SnoozeFor.FOUR_HOURS
    assert parse_press(_form(_press(user={"id": "W0123456789"}))).presser == Presser("W0123456789", "W0123456789")


@pytest.mark.parametrize(
    "body",
    [
        "payload=not-json",
        "a=b",
        _form(_press()) + "&payload=%7B%7D",
        _form([1, 2]),
        _form(_press(type="view_submission")),
        _form(_press(actions=[])),
        _form(_press(actions=[{"action_id": "tflock_reap_now"}, {"action_id": "tflock_mine"}])),
        _form(_press(actions=[{"action_id": "tflock_unlock_all", "value": VALUE.encode()}])),
        _form(_press(actions=[{"action_id": "tflock_mine", "value": "v1|LOCK#x|ID#y|z"}])),
        _form(_press(actions=[{"action_id": "tflock_snooze", "block_id": VALUE.encode()}])),
        _form(_press(actions=[{"action_id": "tflock_snooze", "block_id": "x", "selected_option": {"value": "1h"}}])),
        _form(_press(user={"id": "B0123456789"})),
        _form(_press(user=None)),
        _form(_press(response_url=None)),
        "payload=" + "[" * 100_000,
    ],
)
def test_anything_but_one_of_the_apps_presses_is_refused_as_malformed(body: str):
    with pytest.raises(RefusedRequestError) as refused:
        parse_press(body)
    assert refused.value.status == 400


def test_a_presser_with_a_hostile_name_is_named_on_one_line_and_cut():
    press = parse_press(_form(_press(user={"id": "U0123456789", "username": "<!channel>\n" + "x" * 500})))
    assert "\n" not in press.presser.name
    assert len(press.presser.name) <= 80


# -- the answer -------------------------------------------------------------------------------------------------
def test_the_answer_is_private_and_lock_data_cannot_mention_or_link():
    press = parse_press(_form(_press()))
    result = ActionResult(
        press,
        ActionOutcome.NOT_DELETABLE,
        "tf-state/<!channel>/https://evil.example/*bold*",
        "<@U0123456789>",
        detail="the lock there cannot be read (<!here> at https://evil.example): only a person may delete it",
    )
    message = answer(result, "UTC")
    assert (message["response_type"], message["replace_original"]) == ("ephemeral", False)
    text = message["text"]
    assert "<!channel>" not in text
    assert "<!here>" not in text
    assert "<@U0123456789>" not in text
    assert "`tf-state/&lt;!channel&gt;/https://evil.example/*bold*`" in text  # in a code span: no link, no bold
    assert "at https://evil.example" not in text  # outside one: no automatic link either
