"""Offline policy evaluation over recorded resources: what `pulumi preview --policy-pack`
would report, without the CLI (pulumi/pulumi-policy has no offline runner, issue 445).

Like the engine, only custom resources are analysed (components and providers are not),
disabled policies are skipped, and each violation carries its policy's level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.catalog import ALL_RULES
from policies.rules import Level, Resource, Rule
from policies.settings import PackConfig, load_config


@dataclass(frozen=True)
class Violation:
    """One reported problem: which policy, how serious, which resource, what to do."""

    policy: str
    level: Level
    message: str
    remediation: str
    urn: str | None = None
    resource_name: str | None = None
    resource_type: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "level": self.level, "urn": self.urn,
                "name": self.resource_name, "type": self.resource_type,
                "message": self.message, "remediation": self.remediation}


def to_resource(item: Any) -> Resource | None:
    """A `Resource` from a RecordedResource or a plan-JSON entry; None for non-custom ones."""
    if isinstance(item, Resource):
        return item
    if isinstance(item, Mapping):
        get = item.get
    else:
        def get(key: str, default: Any = None) -> Any:
            return getattr(item, key, default)
    if not get("custom", True) or str(get("type", "")).startswith("pulumi:providers:"):
        return None
    return Resource(type=get("type"), name=get("name"), urn=get("urn"),
                    props=get("inputs") or {}, parent=get("parent"),
                    dependencies=tuple(get("dependencies") or ()))


def evaluate(resources: Iterable[Any], stack: str | None = None, config: PackConfig | None = None,
             rules: Sequence[Rule] = ALL_RULES) -> list[Violation]:
    """Run every enabled rule; `config` defaults to policies/config/<stack>.yaml."""
    if config is None:
        if stack is None:
            raise ValueError("evaluate needs a stack or a config")
        config = load_config(stack)
    custom = [r for r in (to_resource(i) for i in resources) if r is not None]
    by_urn = {r.urn: r for r in custom}
    violations: list[Violation] = []
    for rule in rules:
        level = config.level(rule)
        if level == "disabled":
            continue
        ctx = rule.context(config.properties(rule))
        if rule.is_stack_rule:
            for finding in rule.evaluate_stack(custom, ctx):
                target = by_urn.get(finding.urn or "")
                violations.append(Violation(
                    rule.name, level, finding.message, rule.remediation, finding.urn,
                    target.name if target else None, target.type if target else None))
            continue
        for resource in custom:
            for message in rule.evaluate(resource, ctx):
                violations.append(Violation(rule.name, level, message, rule.remediation,
                                            resource.urn, resource.name, resource.type))
    return violations


def mandatory(violations: Iterable[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == "mandatory"]


def render(violations: Sequence[Violation], rules: Sequence[Rule] = ALL_RULES,
           stack: str | None = None) -> str:
    """A report grouped by policy, mandatory first, each group with its remediation."""
    where = f" in stack {stack!r}" if stack else ""
    if not violations:
        return f"Policies: no violations{where} ({len(rules)} policies)."
    blocking = len(mandatory(violations))
    lines = [f"Policy violations{where}: {blocking} mandatory, {len(violations) - blocking} advisory"]
    order = {r.name: i for i, r in enumerate(rules)}
    descriptions = {r.name: r.description for r in rules}
    groups: dict[str, list[Violation]] = {}
    for v in violations:
        groups.setdefault(v.policy, []).append(v)
    ranked = sorted(groups.items(), key=lambda kv: (kv[1][0].level != "mandatory",
                                                    order.get(kv[0], len(order))))
    for name, group in ranked:
        lines += ["", f"[{group[0].level}] {name}: {descriptions.get(name, '')}"]
        for v in group:
            subject = f"{v.resource_type} {v.resource_name}" if v.resource_name else "stack"
            lines.append(f"  - {subject}: {v.message}")
        lines.append(f"  fix: {group[0].remediation}")
    return "\n".join(lines)
