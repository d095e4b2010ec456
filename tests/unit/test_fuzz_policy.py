"""Fuzzing the policy loader: any text, and policy-shaped YAML broken at any place, either loads or raises
PolicyError (and nothing else) whose every problem names the file, and the line when there is one."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from factories import lock_item
from fuzz import any_text, json_value
from hypothesis import example, given
from hypothesis import strategies as st
from tflock_reaper.domain.lock import LockRecord, classify_item
from tflock_reaper.domain.policy import Policy, PolicyError, parse_policy

SOURCE = "policy.yaml"
#: ``policy.yaml:LINE[:COL]: ...``; only whole-file problems (empty, not YAML at all, too deep) have no line.
_LOCATED = re.compile(rf"^{re.escape(SOURCE)}:\d+(:\d+)?: \S")
_WHOLE_FILE = re.compile(rf"^{re.escape(SOURCE)}: (the policy file is empty|nested too deeply|not valid YAML)")

VALID: dict[str, Any] = {
    "mode": "enforce",
    "max_reaps_per_sweep": 3,
    "channels": {"team": {"type": "slack", "webhook": {"secret": "tflock-reaper/slack"}}, "topic": {"type": "sns"}},
    "defaults": {
        "warn_after": "30m",
        "reap_after": "2h",
        "min_observed": "10m",
        "holder": {"assume": "unknown"},
        "notify": {"channels": ["team"], "renotify_every": "1h"},
    },
    "rules": [
        {
            "match": "tf-state/prod/*",
            "operations": ["OperationTypePlan"],
            "who": "^runner@",
            "reap_after": "1h",
            "holder": {"assume": "gone"},
        },
        {
            "match": "tf-state/ci/*",
            "holder": {
                "github": {"repo": "acme/infra", "token": {"parameter": "/tflock-reaper/gh"}},
                "state_progress": {"within": "10m"},
            },
            "notify": {"channels": ["topic"]},
        },
    ],
}

odd_values = st.one_of(
    json_value,
    st.sampled_from(
        [
            "99999999999999999999d",
            "999999999d24h",
            "1 hour",
            "0s",
            "-1h",
            "(",
            "[a-",
            "enforce",
            "slack",
            "gone",
            "unknown-channel",
            {"secret": "x", "parameter": "y"},
            {"assume": "gone", "codebuild": {"project": "p"}},
            {"state_progress": {"within": "5m"}},
            10**30,
            float("inf"),
            None,
        ]
    ),
)


def _places(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        return [prefix]
    return [prefix] + [p for key, child in children for p in _places(child, (*prefix, key))]


@st.composite
def mutated_data(draw: st.DrawFn) -> dict[str, Any]:
    """The valid policy with a few places replaced, deleted or given an unknown sibling."""
    policy = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        places = _places(policy)[1:]
        if not places:
            break
        place = draw(st.sampled_from(places))
        parent: Any = policy
        for key in place[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "replace":
            parent[place[-1]] = draw(odd_values)
        elif action == "delete":
            del parent[place[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.one_of(any_text, st.integers()))] = draw(odd_values)
    return policy


#: How YAML is dumped: block, flow or mixed style; non-ASCII as is or escaped.
yaml_styles = st.tuples(st.sampled_from([None, True, False]), st.booleans())


def _dump(data: dict[Any, Any], style: tuple[bool | None, bool]) -> str:
    return yaml.safe_dump(data, default_flow_style=style[0], allow_unicode=style[1])


@st.composite
def mutated_policies(draw: st.DrawFn) -> str:
    """The valid policy with a few places replaced, deleted or given an unknown sibling, dumped as YAML."""
    return _dump(draw(mutated_data()), draw(yaml_styles))


yaml_fragments = st.sampled_from(
    [
        "{[1]: 2}",
        "? [a]\n: b",
        "mode: !!python/name:os.system",
        "mode: !!binary aGVsbG8=",
        "a: &x 1\nb: *y",
        "[" * 3000,
        "- " * 3000 + "x",
        "mode: enforce\nmode: dry-run",
        "defaults: {warn_after: 1h, reap_after: 1s}",
        "\t",
        "---\n---\n",
        "%YAML 9.9\n---\nmode: enforce",
        "\x00",
        "\ufeffmode: enforce",
    ]
)


def _load(text: str) -> Policy | PolicyError:
    """The policy, or the PolicyError it raised (any other exception fails the test)."""
    try:
        return parse_policy(text, source=SOURCE)
    except PolicyError as err:
        return err


def _check(text: str) -> Policy | None:
    result = _load(text)
    if isinstance(result, Policy):
        return result
    assert result.source == SOURCE
    assert result.problems
    for problem in result.problems:
        assert _LOCATED.match(problem) or _WHOLE_FILE.match(problem), problem
    return None


@given(st.one_of(mutated_policies(), any_text, yaml_fragments, st.builds("\n".join, st.lists(yaml_fragments))))
@example("defaults: {warn_after: 99999999999999999999d}")
@example("{[1]: 2}")
@example("[" * 3000)
def test_any_text_loads_or_raises_a_located_policy_error(text: str) -> None:
    _check(text)


@given(mutated_policies())
def test_a_policy_with_a_bad_field_names_its_line(text: str) -> None:
    """A YAML mapping that validation refuses: every problem has a line (and column) in the file."""
    result = _load(text)
    if isinstance(result, PolicyError):
        assert all(_LOCATED.match(p) for p in result.problems), result.problems


_WHERE = re.compile(rf"^{re.escape(SOURCE)}:\d+(:\d+)?: ")


def _unlocated_problems(text: str) -> list[str]:
    """The problems ``field: message``, without their line and column; none when the policy loads."""
    result = _load(text)
    return sorted(_WHERE.sub("", p) for p in result.problems) if isinstance(result, PolicyError) else []


@given(mutated_data(), yaml_styles)
@example(
    {**VALID, "defaults": {**VALID["defaults"], "reap_after": "0s"}}, (False, True)
)  # a problem between fields, alone, which a bad field hid (issue 15.7)
def test_a_bad_field_hides_no_other_problem(data: dict[str, Any], style: tuple[bool | None, bool]) -> None:
    """Every problem is reported in one pass: adding an unknown setting to any policy adds its one problem and
    keeps every other (pydantic's model validators, which checked channels and durations, do not run once a
    field failed)."""
    unknown = "zz_not_a_setting: unknown field (check its spelling and indentation)"
    alone = _unlocated_problems(_dump(data, style))
    assert _unlocated_problems(_dump({**data, "zz_not_a_setting": 1}, style)) == sorted([*alone, unknown])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{[1]: 2}\n", "policy.yaml:1:2: not valid YAML: found unhashable key"),
        ("mode: !!python/name:os.system\n", "policy.yaml:1:7: not valid YAML: could not determine a constructor"),
        ("defaults: {warn_after: 99999999999999999999d}\n", "policy.yaml:1:24: defaults.warn_after: '9999"),
        ("[" * 3000, "policy.yaml: nested too deeply to be a policy"),
    ],
)
def test_what_the_fuzzer_found_is_a_policy_error(text: str, problem: str) -> None:
    """These raised ConstructorError, OverflowError and RecursionError out of the loader."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source=SOURCE)
    assert caught.value.problems[0].startswith(problem)


#: Pieces of regular expressions, RE2's and Python's only (backreferences, lookarounds, atomic groups).
regex_parts = st.sampled_from(
    ["^", "$", "(", ")", "[", "a", ".", "*", "+", "{1001}", "\\", r"\1", "(?=", "(?<!", "(?>"]
)
who_patterns = st.one_of(any_text, st.builds("".join, st.lists(st.one_of(regex_parts, any_text), max_size=12)))


@given(who_patterns, any_text)
@example("^([a-z0-9]+-?)+@ci$", "a" * 40 + "!")
@example("(a)\\1", "aa")
@example("\ud800", "\ud800")
def test_any_who_pattern_loads_or_is_refused_with_its_line_and_any_who_is_matched(pattern: str, who: str) -> None:
    """A ``who`` either loads (and then matches any ``Who``, surrogates included, without raising) or is refused
    naming its line and field: RE2 refuses what it cannot run in linear time instead of failing at match time."""
    policy = _check(yaml.safe_dump({"rules": [{"match": "*", "who": pattern, "holder": {"assume": "gone"}}]}))
    if policy is None:
        return
    lock = classify_item(lock_item("tf-state/a.tfstate", who=who), None)
    assert isinstance(lock, LockRecord)
    assert policy.rule_for(lock).name in {"rules[0] *", "defaults"}


def test_the_unmutated_policy_loads() -> None:
    """The mutations start from a policy that is valid: each failure above is the mutation's doing."""
    assert _check(yaml.safe_dump(VALID)) == Policy.model_validate(VALID)
