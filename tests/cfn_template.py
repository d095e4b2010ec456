"""template.yaml as data, for tests that check what it grants and routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


class _TaggedLoader(yaml.SafeLoader):
    """Keeps CloudFormation's short-form tags: ``!If [c, a, b]`` loads as ``{"!If": ["c", a, b]}``."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"!{suffix}": value}


_TaggedLoader.add_multi_constructor("!", _tagged)


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """template.yaml, or another CloudFormation template of the repository."""
    loaded: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaggedLoader)  # noqa: S506
    return loaded


def function_policies(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """A function's inline policy documents (each with its ``Statement`` list), read from the explicit role the
    function names (``Role: !GetAtt <Role>.Arn``)."""
    role = template["Resources"][function]["Properties"]["Role"]["!GetAtt"].removesuffix(".Arn")
    return [policy["PolicyDocument"] for policy in template["Resources"][role]["Properties"]["Policies"]]


def function_statements(template: dict[str, Any], function: str) -> Iterator[dict[str, Any]]:
    """Every statement of a function's inline policies, both branches of each ``!If`` (``AWS::NoValue`` left out)."""
    for policy in function_policies(template, function):
        for statement in policy["Statement"]:
            if "!If" in statement:
                yield from (branch for branch in statement["!If"][1:] if branch != {"!Ref": "AWS::NoValue"})
            else:
                yield statement
