"""Given policy files good and bad, the policy loads as written or is refused naming the line and field."""

import traceback
from datetime import timedelta
from pathlib import Path

import pytest
from factories import NOW, lock_item
from pydantic import ValidationError
from tflock_reaper.domain.durations import format_duration, parse_duration
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import Policy, PolicyError, load_policy, parse_policy

ISSUE_EXAMPLE = """\
mode: dry-run              # dry-run (default) | enforce
max_reaps_per_sweep: 3     # more candidates than this in one sweep: reap none, alert, exit normally
defaults:
  warn_after: 30m          # durations: 90s, 30m, 2h, 1d
  reap_after: 2h
  min_observed: 10m        # never reap a lock the reaper first saw less than this ago
rules:                     # first match wins; a field not given falls back to defaults
  - match: "tf-state/prod/*"          # glob on the lock path (LockID)
    operations: [OperationTypePlan]   # optional
    who: "^runner@"                   # optional regex on Who
    reap_after: 1h
    holder: {assume: gone}            # gone | unknown; unknown (the default) never reaps
"""


def _lock(path: str, **kwargs: object) -> LockRecord:
    lock = classify_item(lock_item(path, **kwargs), NOW)
    assert isinstance(lock, LockRecord)
    return lock


def test_the_documented_example_loads_as_written():
    policy = parse_policy(ISSUE_EXAMPLE)
    assert policy.mode == "dry-run"
    assert policy.max_reaps_per_sweep == 3
    assert policy.defaults.warn_after == timedelta(minutes=30)
    rule = policy.rule_for(_lock("tf-state/prod/net.tfstate", operation="OperationTypePlan", who="runner@x"))
    assert rule.name == "rules[0] tf-state/prod/*"
    assert (rule.warn_after, rule.reap_after, rule.min_observed) == (
        timedelta(minutes=30),
        timedelta(hours=1),
        timedelta(minutes=10),
    )
    assert rule.holder.assume == "gone"


def test_the_readme_policy_block_is_the_same_as_the_tested_one():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert ISSUE_EXAMPLE.strip() in readme


@pytest.mark.parametrize(
    ("path", "operation", "who", "expected"),
    [
        ("tf-state/prod/net.tfstate", "OperationTypeApply", "runner@x", "defaults"),  # operation differs
        ("tf-state/prod/net.tfstate", "OperationTypePlan", "alice@laptop", "defaults"),  # who differs
        ("tf-state/dev/net.tfstate", "OperationTypePlan", "runner@x", "defaults"),  # path differs
    ],
)
def test_a_rule_matches_only_when_every_given_field_matches(path, operation, who, expected):
    policy = parse_policy(ISSUE_EXAMPLE)
    rule = policy.rule_for(_lock(path, operation=operation, who=who))
    assert rule.name == expected
    assert rule.holder.assume == "unknown"


def test_first_matching_rule_wins():
    policy = parse_policy(
        "rules:\n  - match: 'tf-state/*'\n    reap_after: 3h\n  - match: 'tf-state/dev/*'\n    reap_after: 4h\n"
    )
    assert policy.rule_for(_lock("tf-state/dev/a.tfstate")).reap_after == timedelta(hours=3)


def test_an_empty_mapping_gives_safe_defaults():
    policy = parse_policy("{}")
    assert policy.mode == "dry-run"
    assert policy.defaults.holder.assume == "unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ISSUE_EXAMPLE.replace("reap_after: 1h", "reap_after: 1 hour"),
            "policy.yaml:11:17: rules[0].reap_after: '1 hour'",
        ),
        (
            ISSUE_EXAMPLE.replace("reap_after: 1h", "reap_after: 10m"),
            "policy.yaml:11:17: rules[0].reap_after: reap_after",
        ),
        (ISSUE_EXAMPLE.replace("    who:", "    whom:"), "policy.yaml:10:11: rules[0].whom: unknown field"),
        (ISSUE_EXAMPLE.replace('"^runner@"', '"^(runner"'), "policy.yaml:10:10: rules[0].who: invalid regular"),
        (ISSUE_EXAMPLE.replace("mode: dry-run ", "mode: enforced"), "policy.yaml:1:7: mode: Input should be"),
        (ISSUE_EXAMPLE.replace("{assume: gone}", "{assume: maybe}"), "policy.yaml:12:22: rules[0].holder.assume"),
        (ISSUE_EXAMPLE.replace("max_reaps_per_sweep: 3", "max_reaps_per_sweep: -1"), "policy.yaml:2:22"),
        ("max_reaps_per_sweep: '3'\n", "policy.yaml:1:22: max_reaps_per_sweep: Input should be a valid integer"),
        ("defaults:\n  warn_after: 30\n", "policy.yaml:2:15: defaults.warn_after: must be a duration string"),
        ("rules:\n  - operations: [x]\n", "policy.yaml:2:5: rules[0].match: Field required"),
        ("mode: enforce\nmode: dry-run\n", "policy.yaml:2: mode: duplicate key"),
        ("rules: [\n", "policy.yaml:2:1: not valid YAML"),
        ("- a\n- b\n", "policy.yaml:1: the policy must be a mapping of settings, not a list"),
        ("", "policy.yaml: the policy file is empty"),
    ],
)
def test_bad_policy_is_refused_naming_file_line_and_field(text, expected):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.yaml")
    assert any(p.startswith(expected) for p in raised.value.problems), raised.value.problems


# -- rules[].who: RE2, linear in the attacker-written Who ---------------------------------------------------------
CATASTROPHIC = "rules:\n  - match: '*'\n    who: '^([a-z0-9]+-?)+@ci$'\n    holder: {assume: gone}\n"


@pytest.mark.timeout(10)
def test_a_catastrophic_who_pattern_answers_a_long_who_promptly():
    # Python's re backtracks exponentially here: 19.7 s on a 29-character Who, never on 10,000 characters
    policy = parse_policy(CATASTROPHIC)
    near_miss = "a" * 10_000 + "!"  # every split of the a's into ([a-z0-9]+-?)+ is tried before giving up
    assert policy.rule_for(_lock("tf-state/a.tfstate", who=near_miss)).name == "defaults"
    assert policy.rule_for(_lock("tf-state/a.tfstate", who="a-" * 4_998 + "b@ci")).name == "rules[0] *"


@pytest.mark.parametrize(
    ("pattern", "shown"),
    [
        (r"^(runner)\1@", r"'^(runner)\\1@': invalid escape sequence: \1"),  # a backreference
        ("^(?=runner)", "'^(?=runner)': invalid perl operator: (?="),  # a lookahead
        ("(?<!x)runner@", "'(?<!x)runner@': invalid perl operator: (?<!"),  # a lookbehind
    ],
)
def test_a_who_pattern_re2_cannot_run_is_refused_naming_line_and_field(pattern, shown):
    text = ISSUE_EXAMPLE.replace('"^runner@"', f"'{pattern}'")
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.yaml")
    expected = (
        f"policy.yaml:10:10: rules[0].who: invalid regular expression {shown} (the syntax is RE2's: no "
        "backreferences or lookarounds)"
    )
    assert raised.value.problems == [expected]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("runner@ci-7", "rules[0] tf-state/prod/*"),
        ("xrunner@ci-7", "defaults"),  # anchored
        ("runner\ud800@ci", "defaults"),  # a lone surrogate (JSON allows it) is matched, not an error
        ("\ud800runner@ci", "defaults"),
        ("runner@\ud800", "rules[0] tf-state/prod/*"),
    ],
)
def test_who_is_searched_with_re2_semantics(who, expected):
    rule = parse_policy(ISSUE_EXAMPLE).rule_for(
        _lock("tf-state/prod/a.tfstate", operation="OperationTypePlan", who=who)
    )
    assert rule.name == expected


def test_the_same_who_pattern_makes_equal_policies():
    assert parse_policy(ISSUE_EXAMPLE) == parse_policy(ISSUE_EXAMPLE)
    assert parse_policy(ISSUE_EXAMPLE) != parse_policy(ISSUE_EXAMPLE.replace('"^runner@"', '"^runner@ci"'))


def test_every_problem_is_reported_at_once():
    with pytest.raises(PolicyError) as raised:
        parse_policy("mode: x\ndefaults:\n  reap_after: soon\n", source="p.yaml")
    assert len(raised.value.problems) == 2


def test_load_policy_reports_a_missing_file(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "5", "2 h", "h", "1w", "-5m", "1.5h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


ROUTED = """\
channels:
  team-slack: {type: slack, webhook: {secret: tflock-reaper/slack-webhook}}
  oncall: {type: sns, topic_arn: "arn:aws:sns:us-east-1:123456789012:tflock-reaper-paging"}
  pd: {type: pagerduty, routing_key: {parameter: /tflock-reaper/pagerduty}}
defaults:
  notify: {channels: [team-slack], renotify_every: 2h}
rules:
  - match: "tf-state/prod/*"
    notify: {channels: [oncall, team-slack, pd]}
  - match: "tf-state/quiet/*"
    notify: {renotify_every: 0s}
"""


def test_channels_route_per_rule_with_defaults():
    policy = parse_policy(ROUTED)
    prod = policy.rule_for(_lock("tf-state/prod/a.tfstate"))
    dev = policy.rule_for(_lock("tf-state/dev/a.tfstate"))
    quiet = policy.rule_for(_lock("tf-state/quiet/a.tfstate"))
    assert (prod.channels, prod.renotify_every) == (("oncall", "team-slack", "pd"), timedelta(hours=2))
    assert (dev.channels, dev.renotify_every) == (("team-slack",), timedelta(hours=2))
    assert (quiet.channels, quiet.renotify_every) == (("team-slack",), timedelta(0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ROUTED.replace("[oncall, team-slack, pd]", "[oncall, teams]"),
            "policy.yaml:9:33: rules[0].notify.channels[1]: channel 'teams' is not defined",
        ),
        (
            ROUTED.replace("{secret: tflock-reaper/slack-webhook}", "{}"),
            "policy.yaml:2:38: channels.team-slack.webhook: give exactly one",
        ),
        (ROUTED.replace("type: sns, ", "type: email, "), "policy.yaml:3:11: channels.oncall"),
        (ROUTED.replace('"arn:aws:sns:us-east-1:123456789012:tflock-reaper-paging"', "paging"), "policy.yaml:3:"),
    ],
)
def test_bad_channels_are_refused_with_their_line(text, expected):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.yaml")
    assert any(p.startswith(expected) for p in raised.value.problems), raised.value.problems


def test_the_packaged_policy_is_valid_and_safe():
    policy = load_policy(Path(__file__).parents[2] / "functions" / "sweeper" / "policy.yaml")
    assert policy.mode == "dry-run"
    assert policy.defaults.holder.assume == "unknown"
    assert policy.defaults.notify.channels == ["alerts"]


# -- messages that say what to do (issue 15.7) -------------------------------------------------------------------
PASTED = {
    "webhook": "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/pAsTeDsEcReTvAlUe123",
    "token": "ghp_pAsTeDsEcReTvAlUe1234567890abcdefgh",
}
SECRETS_PASTED = f"""\
channels:
  team: {{type: slack, webhook: "{PASTED["webhook"]}"}}
defaults:
  holder:
    github: {{repo: acme/infra, token: {PASTED["token"]}}}
"""
HOW_TO_NAME_A_SECRET = (
    "a plain string is not accepted here: write {secret: NAME} (Secrets Manager) or {parameter: NAME} "
    "(SSM SecureString); a secret's value never goes in the policy"
)


def test_a_plain_string_where_a_secret_belongs_says_how_to_name_it_and_never_echoes_it():
    with pytest.raises(PolicyError) as raised:
        parse_policy(SECRETS_PASTED, source="policy.yaml")
    assert raised.value.problems == [
        f"policy.yaml:2:32: channels.team.webhook: {HOW_TO_NAME_A_SECRET}",
        f"policy.yaml:5:39: defaults.holder.github.token: {HOW_TO_NAME_A_SECRET}",
    ]
    # Nor in the pydantic error it was raised from, which a logged traceback prints.
    shown = "".join(traceback.format_exception(raised.value))
    assert "ValidationError" in shown
    assert not [value for value in PASTED.values() if value in shown]
    assert "pAsTeDsEcReT" not in shown


def test_a_secret_reference_of_another_shape_says_how_to_name_it():
    with pytest.raises(PolicyError) as raised:
        parse_policy("channels:\n  pd: {type: pagerduty, routing_key: [a, b]}\n", source="policy.yaml")
    assert raised.value.problems == [
        (
            "policy.yaml:2:38: channels.pd.routing_key: must name where the secret lives: write {secret: NAME} "
            "(Secrets Manager) or {parameter: NAME} (SSM SecureString)"
        )
    ]


SLACK_APP = """\
channels:
  chatops:
    type: slack_app
    bot_token: {secret: tflock-reaper/slack-bot-token}
    channel_id: C0123456789
defaults:
  notify: {channels: [chatops]}
"""


def test_a_slack_app_channel_names_its_token_and_channel_id():
    from tflock_reaper.domain.policy import SlackAppChannel  # noqa: PLC0415

    channel = parse_policy(SLACK_APP).channels["chatops"]
    assert isinstance(channel, SlackAppChannel)
    assert (channel.bot_token.secret, channel.channel_id) == ("tflock-reaper/slack-bot-token", "C0123456789")
    assert channel.api_url == "https://slack.com/api/"
    private = parse_policy(SLACK_APP.replace("C0123456789", "G01234567"))
    assert private.channels["chatops"].channel_id == "G01234567"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            SLACK_APP.replace("C0123456789", "'#terraform'"),
            "policy.yaml:5:17: channels.chatops.channel_id: must be a Slack channel ID such as C0123456789",
        ),
        (
            SLACK_APP.replace("C0123456789", "C0123"),
            "policy.yaml:5:17: channels.chatops.channel_id: must be a Slack channel ID",
        ),
        (SLACK_APP.replace("C0123456789", "c0123456789"), "policy.yaml:5:17: channels.chatops.channel_id:"),
        (SLACK_APP.replace("C0123456789", "D0123456789"), "policy.yaml:5:17: channels.chatops.channel_id:"),
        (SLACK_APP.replace("    channel_id: C0123456789\n", ""), "policy.yaml:3:5: channels.chatops.channel_id: Field"),
        (
            SLACK_APP.replace("{secret: tflock-reaper/slack-bot-token}", "xoxb-1234-pasted"),
            f"policy.yaml:4:16: channels.chatops.bot_token: {HOW_TO_NAME_A_SECRET}",
        ),
        (SLACK_APP.replace("{secret: tflock-reaper/slack-bot-token}", "{}"), "policy.yaml:4:16: channels.chatops."),
        (
            SLACK_APP.replace("    channel_id", "    webhook: {secret: x}\n    channel_id"),
            "policy.yaml:5:14: channels.chatops.webhook: unknown field",
        ),
        (
            SLACK_APP.replace("channel_id: C0123456789", "channel_id: C0123456789\n    api_url: slack.com"),
            "policy.yaml:6:14: channels.chatops.api_url: String should match",
        ),
    ],
)
def test_bad_slack_app_channels_are_refused_with_their_line_and_field(text, expected):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.yaml")
    assert any(p.startswith(expected) for p in raised.value.problems), raised.value.problems
    assert "xoxb-1234-pasted" not in "".join(traceback.format_exception(raised.value))


EVERY_PROBLEM = """\
mode: yolo
channels:
  oncall: {type: sns}
defaults:
  warn_after: 2h
  reap_after: 1h
  notify: {channels: [oncall, pager]}
rules:
  - match: "tf-state/prod/*"
    warn_after: 3h
    notify: {channels: [slack]}
  - match: "tf-state/dev/*"
    operations: []
"""


def test_every_problem_is_reported_in_one_pass_each_with_its_line_and_field():
    """A bad field does not hide the problems between fields (pydantic runs no model validator after a field
    failed), and those are all reported, not the first one."""
    with pytest.raises(PolicyError) as raised:
        parse_policy(EVERY_PROBLEM, source="policy.yaml")
    unwarned = "is shorter than warn_after ({}): a lock would be reaped unwarned"
    assert raised.value.problems == [
        "policy.yaml:1:7: mode: Input should be 'dry-run' or 'enforce'",
        f"policy.yaml:6:15: defaults.reap_after: reap_after (1h) {unwarned.format('2h')}",
        "policy.yaml:7:31: defaults.notify.channels[1]: channel 'pager' is not defined under channels (oncall)",
        f"policy.yaml:10:17: rules[0].warn_after: reap_after (1h) {unwarned.format('3h')}",
        "policy.yaml:11:25: rules[0].notify.channels[0]: channel 'slack' is not defined under channels (oncall)",
        "policy.yaml:13:17: rules[1].operations: List should have at least 1 item after validation, not 0",
    ]


UNWARNED_TO_PAGER = "defaults: {warn_after: 2h, reap_after: 1h, notify: {channels: [pager]}}\n"


@pytest.mark.parametrize(
    ("text", "hidden_today"),
    [
        ("mode: yolo\n" + UNWARNED_TO_PAGER, "defaults.reap_after: reap_after (1h) is shorter"),
        ("mode: yolo\n" + UNWARNED_TO_PAGER, "defaults.notify.channels[0]: channel 'pager' is not defined"),
        ("channels: {sns: {type: sns, topic_arn: nope}}\n" + UNWARNED_TO_PAGER, "channel 'pager' is not defined"),
        ("rules: [{match: a, reap_after: soon}]\n" + UNWARNED_TO_PAGER, "defaults.reap_after: reap_after (1h) is"),
    ],
)
def test_a_problem_between_fields_is_not_hidden_by_a_bad_field(text, hidden_today):
    with pytest.raises(PolicyError) as raised:
        parse_policy(text, source="policy.yaml")
    assert len(raised.value.problems) == 3, raised.value.problems
    assert any(hidden_today in p for p in raised.value.problems), raised.value.problems


def test_a_policy_validated_directly_reports_every_conflict_too():
    with pytest.raises(ValidationError) as raised:
        Policy.model_validate({"defaults": {"warn_after": "2h", "reap_after": "1h", "notify": {"channels": ["x"]}}})
    (error,) = raised.value.errors()
    assert "defaults.notify.channels[0]: channel 'x' is not defined" in error["msg"]
    assert "defaults.reap_after: reap_after (1h) is shorter than warn_after (2h)" in error["msg"]
