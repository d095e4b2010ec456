"""template.yaml as data, for tests that check what it grants and routes."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
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


#: The pseudo parameters a resolved template sees (one made-up account and region).
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "111111111111",
    "AWS::StackName": "tflock-reaper",
}
_SUB_NAME = re.compile(r"\$\{([^}!][^}]*)\}")


class _NoValue:
    """``AWS::NoValue``: removed from the list or mapping that holds it."""


NO_VALUE = _NoValue()


class Deployment:
    """A template as CloudFormation would deploy it with these parameter values: conditions decided, the resources
    whose condition holds, intrinsic functions resolved, ``Rules`` checked. Another resource's ``Ref`` resolves to
    ``ref:<LogicalId>`` and its ``Fn::GetAtt`` to ``<LogicalId>.<Attribute>``, so a test can tell which resource a
    value names. What the templates here use is covered: Ref, Sub, Join, Split, Select, If, GetAtt, the condition
    functions, and the rule functions Contains and EachMemberEquals."""

    def __init__(self, template: dict[str, Any], parameters: Mapping[str, str]) -> None:
        unknown = set(parameters) - set(template["Parameters"])
        if unknown:
            raise KeyError(f"not parameters of the template: {sorted(unknown)}")
        self.template = template
        self.parameters: dict[str, Any] = {}
        for name, spec in template["Parameters"].items():
            value = str(parameters.get(name, spec.get("Default", "")))
            self.parameters[name] = value.split(",") if spec["Type"] == "CommaDelimitedList" else value
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources deployed, each resolved (its ``Condition`` holds, or it has none)."""
        return {
            name: self.resolve(resource)
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }

    def failed_rules(self) -> list[str]:
        """The AssertDescription of each rule assertion that does not hold (CloudFormation refuses the deployment)."""
        return [
            assertion["AssertDescription"]
            for rule in self.template.get("Rules", {}).values()
            for assertion in rule["Assertions"]
            if not self.resolve(assertion["Assert"])
        ]

    def resolve(self, value: Any) -> Any:  # noqa: C901, PLR0911, PLR0912 - one branch per intrinsic function
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        ((key, args),) = value.items() if len(value) == 1 else ((None, None),)
        if key is not None and (key.startswith(("!", "Fn::")) or key == "Ref"):
            function = key.removeprefix("Fn::").removeprefix("!")
            if function == "Ref":
                return self._ref(args)
            if function == "Condition":
                return self.condition(args)
            if function == "If":
                condition, if_true, if_false = args
                return self.resolve(if_true if self.condition(condition) else if_false)
            if function == "GetAtt":
                return args if isinstance(args, str) else ".".join(args)
            if function == "Sub":
                return self._sub(args)
            if function == "Join":
                delimiter, items = args
                return delimiter.join(str(item) for item in self.resolve(items))
            if function == "Split":
                delimiter, text = args
                return str(self.resolve(text)).split(delimiter)
            if function == "Select":
                index, items = args
                return self.resolve(items)[int(self.resolve(index))]
            if function == "Equals":
                left, right = (self.resolve(arg) for arg in args)
                return left == right
            if function == "Not":
                return not self.resolve(args[0])
            if function == "And":
                return all(self.resolve(arg) for arg in args)
            if function == "Or":
                return any(self.resolve(arg) for arg in args)
            if function == "Contains":
                items, item = (self.resolve(arg) for arg in args)
                return item in items
            if function == "EachMemberEquals":
                items, item = (self.resolve(arg) for arg in args)
                return all(member == item for member in items)
        return {k: v for k, v in ((k, self.resolve(v)) for k, v in value.items()) if v is not NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.template["Resources"]:
            return f"ref:{name}"
        raise KeyError(name)

    def _sub(self, args: Any) -> str:
        text, variables = (args, {}) if isinstance(args, str) else args
        values = {key: self.resolve(v) for key, v in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in values:
                return str(values[name])
            if "." in name and name.split(".", 1)[0] in self.template["Resources"]:
                return name  # ${Resource.Attribute}, as GetAtt resolves
            return str(self._ref(name))

        return _SUB_NAME.sub(substitute, text).replace("${!", "${")


def deploy(parameters: Mapping[str, str] | None = None, path: Path = TEMPLATE) -> Deployment:
    """The template at ``path`` as deployed with ``parameters`` (every other parameter at its default)."""
    return Deployment(load_template(path), parameters or {})


def deployed_statements(deployment: Deployment, role: str) -> dict[str, dict[str, Any]]:
    """A deployed role's inline policy statements by Sid (the conditional ones whose condition holds)."""
    policies = deployment.resources[role]["Properties"]["Policies"]
    return {statement["Sid"]: statement for policy in policies for statement in policy["PolicyDocument"]["Statement"]}
