"""The reaping policy: a YAML file validated by pydantic, refused whole when any part of it is wrong.

Errors name the file, line, column and field (``policy.yaml:7:18: rules[0].reap_after: ...``) so that a
bad policy never half-applies, and every problem is reported at once: the checks across fields
(:func:`policy_conflicts`) run on the file's data even when a field is wrong, which pydantic's model validators
would not. Rules are tried in order and the first match wins; a field a rule does not set falls back to
``defaults``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeGuard

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from tflock_reaper.domain.durations import format_duration, parse_duration
from tflock_reaper.domain.lock import LockRecord

if TYPE_CHECKING:
    import yaml

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _re2() -> Any:
    """google-re2, imported when a pattern is compiled: only a policy with a ``who`` needs it (cold start). It
    ships no type information: Regex wraps what is used."""
    import re2  # type: ignore[import-untyped]  # noqa: PLC0415 - cold start

    return re2


def _re2_options() -> Any:
    options = _re2().Options()
    options.log_errors = False  # a refused pattern is reported as a policy error, not logged to stderr by RE2
    return options


@dataclass(frozen=True)
class Regex:
    """A policy regular expression (``rules[].who``), compiled with RE2 when the policy loads.

    ``Who`` is written by whoever takes a lock, so the text is the attacker's: with Python's backtracking ``re``,
    ``^([a-z0-9]+-?)+@ci$`` took 19.7 s on a 29-character ``Who``. RE2 matches in time linear in the text, for any
    pattern. It has no backreferences or lookarounds (they cannot be matched in linear time): such a pattern is
    refused at load, with its file, line and field. Syntax: https://github.com/google/re2/wiki/Syntax.

    The whole ``Who`` is matched, not a prefix: cutting the text would change what anchored patterns match (a
    ``Who`` padded past the cut could match ``^runner@ci-[0-9]+$`` and so a more permissive rule), and RE2's time
    is linear in a text the reaper has already read and parsed in full.
    """

    pattern: str
    _compiled: Any = field(compare=False, repr=False)

    @classmethod
    def compile(cls, value: object) -> Regex:
        if not isinstance(value, str):
            raise ValueError("must be a regular expression string")  # noqa: TRY004
        re2 = _re2()
        try:
            return cls(value, re2.compile(value.encode("utf-8"), _re2_options()))
        except UnicodeEncodeError as err:
            raise ValueError(f"invalid regular expression {value!r}: not valid UTF-8 ({err.reason})") from err
        except re2.error as err:
            reason = err.args[0].decode("utf-8", "replace") if err.args and isinstance(err.args[0], bytes) else err
            raise ValueError(
                f"invalid regular expression {value!r}: {reason} (the syntax is RE2's: no backreferences or "
                "lookarounds)"
            ) from err

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in ``text`` (lone surrogates, which JSON allows, included)."""
        return self._compiled.search(text.encode("utf-8", "surrogatepass")) is not None

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.compile, serialization=core_schema.plain_serializer_function_ser_schema(lambda regex: regex.pattern)
        )


class _Strict(BaseModel):
    # A value given where a secret's name belongs may be the secret itself: pydantic must not quote inputs in
    # its ValidationError (the PolicyError's cause, which a logged traceback prints).
    # Each model is built on its first validation, not at import (cold start).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True, defer_build=True)


_REFERENCE_SYNTAX = "write {secret: NAME} (Secrets Manager) or {parameter: NAME} (SSM SecureString)"


class SecretRef(_Strict):
    """Where a secret lives, never its value: a Secrets Manager secret or an SSM SecureString parameter."""

    secret: str | None = Field(default=None, min_length=1, description="Secrets Manager secret id or ARN")
    parameter: str | None = Field(default=None, min_length=1, description="SSM SecureString parameter name")

    @model_validator(mode="before")
    @classmethod
    def _a_reference(cls, data: Any) -> Any:
        # The message never quotes what was given: a plain string here is often the secret, pasted by mistake.
        if isinstance(data, str):
            raise PydanticCustomError(
                "secret_given_as_text",
                f"a plain string is not accepted here: {_REFERENCE_SYNTAX}; a secret's value never goes in the policy",
            )
        if not isinstance(data, Mapping | SecretRef):
            raise PydanticCustomError("secret_ref_type", "must name where the secret lives: " + _REFERENCE_SYNTAX)
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.secret is None) == (self.parameter is None):
            raise ValueError("give exactly one of secret (Secrets Manager) or parameter (SSM SecureString)")
        return self


class SlackChannel(_Strict):
    type: Literal["slack"]
    webhook: SecretRef


class SnsChannel(_Strict):
    type: Literal["sns"]
    topic_arn: str | None = Field(
        default=None, pattern=r"^arn:[a-z-]+:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$", description="default: the stack's"
    )


class PagerDutyChannel(_Strict):
    type: Literal["pagerduty"]
    routing_key: SecretRef
    url: str = Field(default="https://events.pagerduty.com/v2/enqueue", pattern=r"^https?://")


_SLACK_CHANNEL_ID = r"^[CG][A-Z0-9]{8,}$"


def _slack_channel_id(value: str) -> str:
    # Python's re, not RE2: the pattern is ours and fixed (nothing to backtrack on), and runs on the policy's text.
    if re.fullmatch(_SLACK_CHANNEL_ID, value) is None:
        raise ValueError(
            "must be a Slack channel ID such as C0123456789 (the channel's details show it at the bottom), "
            "not its name: chat.postMessage and chat.update need the ID"
        )
    return value


class SlackAppChannel(_Strict):
    """Slack through the tflock-reaper Slack app (its bot token): one message per lock acquisition, updated in
    place as the lock's state changes, with buttons while the lock is held (docs/slack-app.md)."""

    type: Literal["slack_app"]
    bot_token: SecretRef
    channel_id: Annotated[str, AfterValidator(_slack_channel_id)] = Field(
        description="the Slack channel's ID (C... or G...), not its name"
    )
    api_url: str = Field(
        default="https://slack.com/api/", pattern=r"^https?://", description="GovSlack: https://slack-gov.com/api/"
    )


Channel = Annotated[SlackChannel | SlackAppChannel | SnsChannel | PagerDutyChannel, Field(discriminator="type")]
_CHANNEL_TYPES = ("slack", "slack_app", "sns", "pagerduty")


class NotifySpec(_Strict):
    """Where a rule's alerts go, and how often a lock that stays stale is re-announced (0s: never)."""

    channels: list[str] | None = None
    renotify_every: Duration | None = None


class CodeBuildCheck(_Strict):
    """Running if a build of ``project`` is in progress and started no later than the lock's acquisition."""

    project: str = Field(min_length=1, max_length=255)


class CodePipelineCheck(_Strict):
    """Running if an execution of ``pipeline`` is in progress."""

    pipeline: str = Field(min_length=1, max_length=100)


class GitHubCheck(_Strict):
    """Running if a run of ``repo`` (``owner/name``; optionally of one ``workflow`` file) is not finished."""

    repo: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    workflow: str | None = Field(default=None, min_length=1, description="workflow file name, e.g. terraform.yml")
    api_url: str = Field(
        default="https://api.github.com", pattern=r"^https?://", description="GitHub Enterprise: .../api/v3"
    )
    token: SecretRef


class GitLabCheck(_Strict):
    """Running if a pipeline of ``project`` (numeric id or ``group/name`` path) is not finished."""

    project: str = Field(min_length=1)
    url: str = Field(default="https://gitlab.com", pattern=r"^https?://", description="self-managed base URL")
    token: SecretRef


class HttpHeader(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9-]+$")
    value: SecretRef


class HttpCheck(_Strict):
    """An in-house endpoint answering ``{"running": true|false}`` (Jenkins, Buildkite, ...). ``url`` may use
    ``{lock_path}``, ``{lock_id}`` and ``{who}``, URL-encoded when filled in."""

    url: str = Field(pattern=r"^https?://")
    header: HttpHeader | None = None


class StateProgressCheck(_Strict):
    """Running if the lock's state was written (its ``-md5`` digest, seen on the stream) after the lock was
    taken and within ``within`` of now. Its absence proves nothing: alone it never says ``not_running``."""

    within: Duration = timedelta(minutes=10)


class HolderSpec(_Strict):
    """How the holder's liveness is judged: ``assume`` (a declaration) or checks that ask the CI system.

    With checks, any ``running`` answer wins and ``not_running`` needs every check to say so; an error, a
    timeout, a missing credential or an ambiguous answer is ``unknown``. Nothing configured: ``unknown``,
    which never reaps.
    """

    assume: Literal["gone", "unknown"] = "unknown"
    codebuild: CodeBuildCheck | None = None
    codepipeline: CodePipelineCheck | None = None
    github: GitHubCheck | None = None
    gitlab: GitLabCheck | None = None
    http: HttpCheck | None = None
    state_progress: StateProgressCheck | None = None

    @property
    def checks(self) -> tuple[tuple[str, BaseModel], ...]:
        """The configured checks, by kind, in a stable order."""
        names = ("codebuild", "codepipeline", "github", "gitlab", "http", "state_progress")
        return tuple((name, value) for name in names if (value := getattr(self, name)) is not None)

    @model_validator(mode="after")
    def _assume_or_checks(self) -> HolderSpec:
        if "assume" in self.model_fields_set and self.checks:
            raise ValueError(
                "give either assume or checks (codebuild, codepipeline, github, gitlab, http, state_progress), "
                "not both: a declared answer would hide what the checks say"
            )
        if [kind for kind, _ in self.checks] == ["state_progress"]:
            raise ValueError(
                "state_progress alone cannot show that a holder is gone (a quiet apply writes no state): "
                "combine it with a CI check (codebuild, codepipeline, github, gitlab or http)"
            )
        return self


_SLACK_USER_ID = r"^[UW][A-Z0-9]{8,}$"
_SLACK_USERGROUP_ID = r"^S[A-Z0-9]{8,}$"


def _slack_approver(value: str) -> str:
    """A Slack user ID. A user group's ID is refused by name: whether someone is in a group can only be asked with
    ``usergroups.users.list``, which needs the ``usergroups:read`` scope, and the app does not ask for it."""
    if re.fullmatch(_SLACK_USER_ID, value) is not None:
        return value
    if re.fullmatch(_SLACK_USERGROUP_ID, value) is not None:
        raise ValueError(
            f"{value} is a Slack user group: approvers are matched by user ID only (a group's members can only be "
            "read with the usergroups:read scope, which the tflock-reaper app does not ask for): list its members' "
            "user IDs"
        )
    raise ValueError(
        "must be a Slack user ID such as U0123456789 (in Slack: a member's profile, More, Copy member ID), not a "
        "name or an email address"
    )


SlackApprover = Annotated[str, AfterValidator(_slack_approver)]


def _time_zone(value: str) -> str:
    """An IANA time zone name (``Europe/Paris``), as :mod:`zoneinfo` knows it."""
    if value == "UTC":
        return value
    import zoneinfo  # noqa: PLC0415 - only a policy with a time zone needs it (cold start)

    try:
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError(f"unknown time zone {value!r}: give an IANA name such as Europe/Paris or UTC") from None
    return value


class Defaults(_Strict):
    warn_after: Duration = timedelta(minutes=30)
    reap_after: Duration = timedelta(hours=2)
    min_observed: Duration = timedelta(minutes=10)
    trust_holder_clock: bool = Field(default=False, strict=True)
    """Let the holder's ``Created`` count toward ``reap_after`` when the server's acquisition time is unknown.
    Off: without the stream (or a lockfile's LastModified), the reap waits until the reaper itself has seen the
    lock for ``reap_after``. A holder whose clock runs slow would otherwise make a fresh lock look old."""
    # Factories, not instances: an instance here would build its model at import (defer_build, cold start).
    holder: HolderSpec = Field(default_factory=HolderSpec)
    notify: NotifySpec = Field(default_factory=lambda: NotifySpec(channels=[], renotify_every=timedelta(hours=1)))
    approvers: list[SlackApprover] | None = None
    """The Slack users (user IDs) who may press *Reap now* on a lock's message; none: nobody may."""
    holds_by_approvers_only: bool = Field(default=False, strict=True)
    """Only the approvers may *Snooze* or claim (*It's mine*); off: anyone in the channel may."""
    time_zone: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    """Where *Snooze until tomorrow 09:00* is 09:00 (an IANA name such as Europe/Paris)."""


class Rule(_Strict):
    match: str = Field(min_length=1, description="glob on the lock path (LockID); * also matches /")
    operations: list[str] | None = Field(default=None, min_length=1)
    who: Regex | None = None
    warn_after: Duration | None = None
    reap_after: Duration | None = None
    min_observed: Duration | None = None
    trust_holder_clock: bool | None = Field(default=None, strict=True)
    holder: HolderSpec | None = None
    notify: NotifySpec | None = None
    approvers: list[SlackApprover] | None = None
    """Instead of the defaults' (an empty list: nobody may *Reap now* this rule's locks from Slack)."""
    holds_by_approvers_only: bool | None = Field(default=None, strict=True)

    def matches(self, lock: LockRecord) -> bool:
        return self.matches_fields(lock.lock_path, lock.info.operation, lock.info.who)

    def matches_fields(self, lock_path: str, operation: str, who: str) -> bool:
        """:meth:`matches` for a lock known by its path, operation and holder (a recorded acquisition)."""
        if not fnmatchcase(lock_path, self.match):
            return False
        if self.operations is not None and operation not in self.operations:
            return False
        return self.who is None or self.who.search(who)


@dataclass(frozen=True)
class EffectiveRule:
    """A rule with its defaults filled in: what a lock is actually judged by."""

    name: str
    warn_after: timedelta
    reap_after: timedelta
    min_observed: timedelta
    holder: HolderSpec
    channels: tuple[str, ...] = ()
    renotify_every: timedelta = timedelta(hours=1)
    trust_holder_clock: bool = False
    approvers: tuple[str, ...] = ()
    """The Slack user IDs who may press *Reap now* (the rule's, else the defaults'): none, nobody may."""
    holds_by_approvers_only: bool = False


class Policy(_Strict):
    mode: Literal["dry-run", "enforce"] = "dry-run"
    max_reaps_per_sweep: int = Field(default=3, ge=0, strict=True)
    channels: dict[str, Channel] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        # parse_policy reports these from the file's data, each at its line, even when a field is wrong (pydantic
        # runs no model validator then); this is for a Policy validated directly.
        conflicts = policy_conflicts(self.model_dump())
        if conflicts:
            raise PydanticCustomError(
                CONFLICT_ERROR,
                "{problems}",
                {"problems": "; ".join(f"{_dotted(c.loc)}: {c.message}" for c in conflicts)},
            )
        return self

    def _effective(self, rule: Rule | None, name: str) -> EffectiveRule:
        d = self.defaults

        def pick(value: timedelta | None, default: timedelta) -> timedelta:
            return default if value is None else value

        default_channels = tuple(d.notify.channels or ())
        default_renotify = pick(d.notify.renotify_every, timedelta(hours=1))
        default_approvers = tuple(d.approvers or ())
        if rule is None:
            return EffectiveRule(
                name,
                d.warn_after,
                d.reap_after,
                d.min_observed,
                d.holder,
                default_channels,
                default_renotify,
                d.trust_holder_clock,
                default_approvers,
                d.holds_by_approvers_only,
            )
        notify = rule.notify or NotifySpec()
        return EffectiveRule(
            name=name,
            warn_after=pick(rule.warn_after, d.warn_after),
            reap_after=pick(rule.reap_after, d.reap_after),
            min_observed=pick(rule.min_observed, d.min_observed),
            holder=rule.holder or d.holder,
            channels=default_channels if notify.channels is None else tuple(notify.channels),
            renotify_every=pick(notify.renotify_every, default_renotify),
            trust_holder_clock=d.trust_holder_clock if rule.trust_holder_clock is None else rule.trust_holder_clock,
            approvers=default_approvers if rule.approvers is None else tuple(rule.approvers),
            holds_by_approvers_only=d.holds_by_approvers_only
            if rule.holds_by_approvers_only is None
            else rule.holds_by_approvers_only,
        )

    def rule_for(self, lock: LockRecord) -> EffectiveRule:
        """The first rule that matches the lock, completed from defaults; the defaults if none does."""
        return self.rule_for_fields(lock.lock_path, lock.info.operation, lock.info.who)

    def rule_for_fields(self, lock_path: str, operation: str, who: str) -> EffectiveRule:
        """:meth:`rule_for` a lock known by its path, operation and holder (the backtest's recorded acquisitions)."""
        for index, rule in enumerate(self.rules):
            if rule.matches_fields(lock_path, operation, who):
                return self._effective(rule, f"rules[{index}] {rule.match}")
        return self._effective(None, "defaults")

    def rule_for_path(self, lock_path: str) -> EffectiveRule:
        """For an unreadable lock (its operation and holder cannot be read): the first rule whose glob matches the
        path, whatever it says of operations and ``who``, so that its alert goes where that state's alerts go."""
        for index, rule in enumerate(self.rules):
            if fnmatchcase(lock_path, rule.match):
                return self._effective(rule, f"rules[{index}] {rule.match}")
        return self._effective(None, "defaults")


CONFLICT_ERROR = "policy_conflicts"
_UNKNOWN = object()
"""A value the file gives but that is not valid: its own error is reported, and nothing is compared with it."""


@dataclass(frozen=True)
class Conflict:
    """A problem between fields (an undefined channel, reap_after before warn_after) at ``loc`` in the file."""

    loc: tuple[str | int, ...]
    message: str


def policy_conflicts(data: object) -> list[Conflict]:
    """The problems between fields of a policy's data (as read from YAML, or a Policy's ``model_dump``).

    Tolerant of anything else being wrong: a part that is missing takes its default, a part that is not valid is
    skipped (its own error says why), so that these are reported along with every other problem, not after it.
    """
    if not isinstance(data, Mapping):
        return []
    return _undefined_channels(data) + _reaped_unwarned(data)


def _is_list(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def _rules(data: Mapping[Any, Any]) -> list[tuple[int, Mapping[Any, Any]]]:
    """The rules that are mappings, with their index in the file."""
    rules = data.get("rules")
    return [(i, rule) for i, rule in enumerate(rules) if isinstance(rule, Mapping)] if _is_list(rules) else []


def _get(mapping: Mapping[Any, Any], key: str, default: Any) -> Any:
    """``mapping[key]``; ``default`` when absent or ``None`` (a Policy's dump of an unset field)."""
    value = mapping.get(key)
    return default if value is None else value


def _undefined_channels(data: Mapping[Any, Any]) -> list[Conflict]:
    defined = _get(data, "channels", {})
    if not isinstance(defined, Mapping):
        return []
    routes: list[tuple[tuple[str | int, ...], object]] = [(("defaults",), _get(data, "defaults", {}))]
    routes += [(("rules", index), rule) for index, rule in _rules(data)]
    known = ", ".join(sorted(str(name) for name in defined)) or "none are defined"
    conflicts: list[Conflict] = []
    for where, holder in routes:
        notify = holder.get("notify") if isinstance(holder, Mapping) else None
        names = notify.get("channels") if isinstance(notify, Mapping) else None
        for index, name in enumerate(names if _is_list(names) else []):
            if isinstance(name, str) and name not in defined:
                conflicts.append(
                    Conflict(
                        (*where, "notify", "channels", index),
                        f"channel '{name}' is not defined under channels ({known})",
                    )
                )
    return conflicts


def _duration(mapping: Mapping[Any, Any], key: str, default: object) -> object:
    """The duration ``mapping`` gives for ``key``, ``default`` when it gives none, or :data:`_UNKNOWN`."""
    value = mapping.get(key)
    if value is None:
        return default
    try:
        return parse_duration(value)
    except ValueError:
        return _UNKNOWN


def _reaped_unwarned(data: Mapping[Any, Any]) -> list[Conflict]:
    defaults = _get(data, "defaults", {})
    warn: object = _UNKNOWN
    reap: object = _UNKNOWN
    conflicts: list[Conflict] = []
    if isinstance(defaults, Mapping):
        warn = _duration(defaults, "warn_after", Defaults.model_fields["warn_after"].default)
        reap = _duration(defaults, "reap_after", Defaults.model_fields["reap_after"].default)
        conflicts = _reap_before_warn(("defaults",), defaults, warn, reap)
    for index, rule in _rules(data):
        if rule.get("warn_after") is None and rule.get("reap_after") is None:
            continue  # nothing of its own: the defaults' problem, reported once, above
        conflicts += _reap_before_warn(
            ("rules", index), rule, _duration(rule, "warn_after", warn), _duration(rule, "reap_after", reap)
        )
    return conflicts


def _reap_before_warn(
    where: tuple[str | int, ...], given: Mapping[Any, Any], warn: object, reap: object
) -> list[Conflict]:
    """At the ``reap_after`` that ``given`` sets, else at its ``warn_after``."""
    if not (isinstance(warn, timedelta) and isinstance(reap, timedelta)) or reap >= warn:
        return []
    return [
        Conflict(
            (*where, "reap_after" if given.get("reap_after") is not None else "warn_after"),
            f"reap_after ({format_duration(reap)}) is shorter than warn_after ({format_duration(warn)}): "
            "a lock would be reaped unwarned",
        )
    ]


class PolicyError(Exception):
    """A policy file that cannot be used. ``problems`` lists each one as ``file:line:col: field: message``."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid policy {source}:\n" + "\n".join(f"  {p}" for p in problems))


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file. Raises :class:`PolicyError` naming every bad field and its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PolicyError(str(path), [f"{path}: cannot read: {err.strerror or err}"]) from err
    return parse_policy(text, source=str(path))


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    """Validate a policy's text. Raises :class:`PolicyError` (and nothing else) naming every bad field."""
    try:
        return _parse_policy(text, source)
    except RecursionError as err:  # yaml and pydantic recurse on nesting
        raise PolicyError(source, [f"{source}: nested too deeply to be a policy"]) from err


def _yaml_error(err: yaml.YAMLError, source: str) -> PolicyError:
    import yaml  # noqa: PLC0415 - only loading a policy needs it: the stream function never does (cold start)

    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        return PolicyError(source, [f"{where}: not valid YAML: {err.problem or err}"])
    return PolicyError(source, [f"{source}: not valid YAML: {err}"])


def _parse_policy(text: str, source: str) -> Policy:
    import yaml  # noqa: PLC0415 - only loading a policy needs it: the stream function never does (cold start)

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        raise _yaml_error(err, source) from err
    if node is None:
        raise PolicyError(source, [f"{source}: the policy file is empty"])
    if not isinstance(node, yaml.MappingNode):
        line = node.start_mark.line + 1
        kind = "list" if isinstance(node, yaml.SequenceNode) else "single value"
        raise PolicyError(source, [f"{source}:{line}: the policy must be a mapping of settings, not a {kind}"])

    marks: dict[tuple[str | int, ...], yaml.Mark] = {}
    duplicates: list[str] = []
    _index_marks(node, (), marks, duplicates, source)
    if duplicates:
        raise PolicyError(source, duplicates)
    try:
        # Composing accepts what constructing refuses: unhashable keys ({[1]: 2}), unknown tags (!!python/...).
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _yaml_error(err, source) from err
    # Every problem at once: pydantic's (its model validators do not run once a field failed) and those between
    # fields, found on the file's data whatever else is wrong.
    problems = [_locate(c.loc, c.message, marks, source) for c in policy_conflicts(data)]
    try:
        policy = Policy.model_validate(data)
    except ValidationError as err:
        errors = [e for e in err.errors(include_url=False) if e["type"] != CONFLICT_ERROR]
        problems += [_locate(_pydantic_loc(e), _pydantic_message(e), marks, source) for e in errors]
        raise PolicyError(source, [text for _, text in sorted(problems, key=lambda p: p[0])]) from err
    if problems:  # the same checks as the model's: never reached unless the two disagree, and then refused
        raise PolicyError(source, [text for _, text in sorted(problems, key=lambda p: p[0])])
    return policy


def _index_marks(
    node: yaml.Node,
    loc: tuple[str | int, ...],
    marks: dict[tuple[str | int, ...], yaml.Mark],
    duplicates: list[str],
    source: str,
) -> None:
    import yaml  # noqa: PLC0415 - only loading a policy needs it: the stream function never does (cold start)

    marks[loc] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                duplicates.append(f"{source}:{line}: {_dotted((*loc, key))}: duplicate key")
            seen.add(key)
            _index_marks(value_node, (*loc, key), marks, duplicates, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_marks(item, (*loc, index), marks, duplicates, source)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _pydantic_loc(error: Any) -> tuple[str | int, ...]:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    if loc[:1] == ("channels",) and loc[2:3] and loc[2] in _CHANNEL_TYPES:
        loc = loc[:2] + loc[3:]  # pydantic names the union member it tried: the type is already in the file
    return loc


def _pydantic_message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown field (check its spelling and indentation)"
    return str(error["msg"]).removeprefix("Value error, ")


def _locate(
    loc: tuple[str | int, ...], message: str, marks: dict[tuple[str | int, ...], yaml.Mark], source: str
) -> tuple[tuple[int, int], str]:
    """``file:line:col: field: message``, and its place in the file to sort by."""
    # A missing field has no node of its own: point at the closest enclosing one.
    probe = loc
    while probe not in marks and probe:
        probe = probe[:-1]
    mark = marks.get(probe)
    if mark is None:
        return (0, 0), f"{source}: {_dotted(loc)}: {message}"
    return (mark.line, mark.column), f"{source}:{mark.line + 1}:{mark.column + 1}: {_dotted(loc)}: {message}"
