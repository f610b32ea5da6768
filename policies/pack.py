"""The rules as CrossGuard policies: thin adapters from pulumi_policy's arguments to the
pure checks in the rule modules. policies/__main__.py hands `ALL_POLICIES` to PolicyPack.

Props arrive wrapped in pulumi_policy's unknown-checking proxy, which raises on the first
unknown value and aborts the whole policy during preview. `plain()` unwraps them instead and
turns unknowns into the same `COMPUTED` marker the offline recorder writes, and integral
floats into ints (as the recorder does), so a rule sees identical data in both worlds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy import proxy as _proxy

from policies.catalog import ALL_RULES
from policies.rules import COMPUTED, Resource, Rule
from policies.settings import PackConfig, PolicyConfigError, available_configs, load_config

PACK_NAME = "llmops-platform"
#: What a policy does when neither its rule nor the config says otherwise.
PACK_LEVEL = EnforcementLevel.MANDATORY

UNKNOWN_SENTINELS = frozenset(value for key, value in vars(_proxy).items()
                              if key.startswith("UNKNOWN_") and key.endswith("_VALUE"))
_PROXIES = tuple(getattr(_proxy, n) for n in ("_DictProxy", "_ListProxy") if hasattr(_proxy, n))


def plain(value: Any) -> Any:
    """Deep-copy props out of the unknown-checking proxy; unknowns become `COMPUTED`."""
    if _PROXIES and isinstance(value, _PROXIES):
        value = value["__target"]
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str) and value in UNKNOWN_SENTINELS:
        return COMPUTED
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _parent_urn(resource: PolicyResource) -> str | None:
    if resource.parent is not None:
        return resource.parent.urn
    return getattr(resource.opts, "parent", None) or None


def _dependency_urns(resource: PolicyResource) -> tuple[str, ...]:
    urns = [d.urn for d in resource.dependencies or []]
    for deps in (resource.property_dependencies or {}).values():
        urns += [d.urn for d in deps]
    return tuple(dict.fromkeys(urns))


def stack_resource(resource: PolicyResource) -> Resource:
    return Resource(type=resource.resource_type, name=resource.name, urn=resource.urn,
                    props=plain(resource.props), parent=_parent_urn(resource),
                    dependencies=_dependency_urns(resource))


def to_policy(rule: Rule) -> Policy:
    """One CrossGuard policy running `rule`'s check; its settings come from get_config()."""
    common = {
        "name": rule.name,
        "description": rule.description,
        "enforcement_level": EnforcementLevel(rule.enforcement),
        "config_schema": PolicyConfigSchema(properties={k: dict(v) for k, v in rule.config_schema.items()})
        if rule.config_schema else None,
        "remediation_steps": rule.remediation,
    }
    if rule.is_stack_rule:
        def validate_stack(args: StackValidationArgs, report_violation: ReportViolation) -> None:
            resources = [stack_resource(r) for r in args.resources
                         if not r.resource_type.startswith("pulumi:providers:")]
            for finding in rule.evaluate_stack(resources, rule.context(args.get_config())):
                report_violation(finding.message, finding.urn)

        return StackValidationPolicy(validate=validate_stack, **common)

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        resource = Resource(type=args.resource_type, name=args.name, urn=args.urn, props=plain(args.props))
        for message in rule.evaluate(resource, rule.context(args.get_config())):
            report_violation(message, None)

    return ResourceValidationPolicy(validate=validate, **common)


ALL_POLICIES: list[Policy] = [to_policy(rule) for rule in ALL_RULES]


def initial_config(config: PackConfig) -> dict[str, EnforcementLevel | dict[str, Any]]:
    """A stack's YAML config in the form PolicyPack(initial_config=...) takes."""
    out: dict[str, EnforcementLevel | dict[str, Any]] = {}
    for name, entry in config.entries.items():
        if isinstance(entry, str):
            out[name] = EnforcementLevel(entry)
        else:
            level = entry.get("enforcementLevel")
            out[name] = {**entry, **({"enforcementLevel": EnforcementLevel(level)} if level else {})}
    return out


def stack_initial_config(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """Defaults for the stack being previewed, when the CLI tells us which (PULUMI_STACK).

    `--policy-pack-config policies/config/<stack>.json` stays the authoritative way to
    configure the pack; this only makes a run without it behave the same.
    """
    stack = environ.get("PULUMI_STACK", "").rsplit("/", 1)[-1]
    if not stack or stack not in available_configs():
        return None
    try:
        return initial_config(load_config(stack))
    except PolicyConfigError:
        return None
