"""The one implementation of every policy: pure checks over plain resource inputs.

A `Rule` knows nothing about pulumi_policy or the offline recorder. The CrossGuard pack
(policies/pack.py) and the offline runner (policies/runner.py) both adapt their resources
into `Resource` objects and call the same check, so a rule cannot behave differently in
`pulumi preview` and in `llmops plan`.

Values that are not known yet (outputs of resources still to be created) appear as the
marker `COMPUTED` in both worlds; rules treat them as "cannot judge" and stay silent.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

#: Marker for a value unknown at preview time (same literal the offline recorder writes).
COMPUTED = "<computed>"

Level = Literal["mandatory", "advisory", "disabled"]
LEVELS: tuple[Level, ...] = ("mandatory", "advisory", "disabled")


@dataclass(frozen=True)
class Resource:
    """A custom resource as a policy sees it: type token, logical name, URN, inputs, links.

    `dependencies` are URNs the resource depends on (known in preview and recorded offline);
    stack rules use them, and the parent component, to relate resources whose references
    (ids, ARNs) are still unknown.
    """

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    parent: str | None = None
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One violation of a stack rule; `urn` names the offending resource (None: the stack)."""

    message: str
    urn: str | None = None


@dataclass(frozen=True)
class RuleContext:
    """The rule's configuration (its schema defaults overlaid with the environment's values)
    and, for resource rules, the logical name of the resource being checked."""

    config: Mapping[str, Any] = field(default_factory=dict)
    name: str = ""

    def __getitem__(self, key: str) -> Any:
        return self.config[key]


ResourceCheck = Callable[[str, Mapping[str, Any], RuleContext], list[str]]
StackCheck = Callable[[Sequence[Resource], RuleContext], list[Finding]]


@dataclass(frozen=True)
class Rule:
    """A policy: what it checks, why, how to fix it, and the pure function that checks it.

    Exactly one of `check` (per resource of `resource_types`) or `stack_check` (over every
    custom resource of the stack) is set. `config_schema` maps property names to JSON
    schemas with a `default`; the Pulumi CLI validates `--policy-pack-config` against it.
    """

    name: str
    description: str
    remediation: str
    enforcement: Level = "mandatory"
    resource_types: tuple[str, ...] = ()
    check: ResourceCheck | None = None
    stack_check: StackCheck | None = None
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.check is None) == (self.stack_check is None):
            raise TypeError(f"rule {self.name}: set exactly one of check or stack_check")
        if self.check is not None and not self.resource_types:
            raise TypeError(f"rule {self.name}: a resource rule needs resource_types")

    @property
    def is_stack_rule(self) -> bool:
        return self.stack_check is not None

    def applies_to(self, type_token: str) -> bool:
        """Type patterns are exact tokens or fnmatch globs ("aws:*")."""
        return any(fnmatch.fnmatchcase(type_token, p) for p in self.resource_types)

    def defaults(self) -> dict[str, Any]:
        return {k: v["default"] for k, v in self.config_schema.items() if "default" in v}

    def context(self, configured: Mapping[str, Any] | None = None) -> RuleContext:
        """Settings through protobuf (the CLI path) turn ints into floats: normalise them."""
        return RuleContext({**self.defaults(), **integral(dict(configured or {}))})

    def evaluate(self, resource: Resource, ctx: RuleContext) -> list[str]:
        if self.check is None or not self.applies_to(resource.type):
            return []
        return self.check(resource.type, resource.props, replace(ctx, name=resource.name))

    def evaluate_stack(self, resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
        return [] if self.stack_check is None else self.stack_check(resources, ctx)


# -- helpers shared by the rule modules ------------------------------------------------------

def integral(value: Any) -> Any:
    """Integral floats (protobuf numbers) as ints, deeply: 22.0 -> 22."""
    if isinstance(value, Mapping):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [integral(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def known(value: Any) -> bool:
    """Set and known now (not None, not COMPUTED)."""
    return value is not None and value != COMPUTED


def computed(value: Any) -> bool:
    """Unknown until the resources it depends on exist: the rule cannot judge it yet."""
    return value == COMPUTED


def get(props: Any, path: str, default: Any = None) -> Any:
    """`get(props, "vpcConfig.endpointPublicAccess")`; `default` when any step is missing."""
    node = props
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            return default
        node = node[part]
    return node


def as_list(value: Any) -> list[Any]:
    """Provider inputs that take one-or-many (IAM Action, Resource) as a list."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def truthy(value: Any) -> bool:
    """Booleans arrive as bools or, for some inputs (launch template `encrypted`), strings."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


#: The most of the internet an allow-list may open: a /8's share of its address family.
#: Larger lists (0.0.0.0/0, or the world split as 0.0.0.0/1 + 128.0.0.0/1) count as "the world".
WIDEST_SHARE = 1 / 256


def internet_wide(cidrs: Iterable[Any]) -> list[str]:
    """The public CIDRs of a list that, together, open more than a /8's share of the internet.

    Private ranges (10/8, 192.168/16, fc00::/7...) do not count; unknown or malformed values
    are ignored. Returns [] when the list stays within the limit.
    """
    public: dict[int, list[tuple[str, Any]]] = {4: [], 6: []}
    for value in cidrs:
        if not isinstance(value, str) or value == COMPUTED:
            continue
        try:
            net = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            continue
        if not net.is_private:
            public[net.version].append((value, net))
    wide: list[str] = []
    for version, found in public.items():
        bits = 32 if version == 4 else 128
        nets = ipaddress.collapse_addresses(n for _, n in found)
        if sum(n.num_addresses for n in nets) > WIDEST_SHARE * 2**bits:
            wide += [value for value, _ in found]
    return wide


def policy_document(value: Any) -> dict[str, Any] | None:
    """An IAM/S3 policy document from a JSON string or a dict; None when unknown or invalid."""
    if isinstance(value, Mapping):
        return dict(value)
    if not isinstance(value, str) or value == COMPUTED:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def statements(document: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if not document:
        return []
    return [s for s in as_list(document.get("Statement")) if isinstance(s, Mapping)]


def of_type(resources: Iterable[Resource], *type_tokens: str) -> list[Resource]:
    return [r for r in resources if r.type in type_tokens]


def related(child: Resource, target: Resource, siblings_of_type: Sequence[Resource],
            reference: Any = None, target_ids: Iterable[Any] = ()) -> bool:
    """Does `child` (a flow log, a bucket's versioning...) belong to `target` (a VPC, a bucket)?

    In preview the reference input (vpcId, bucket) is an unknown id, so matching is by what
    is known, strongest first: a recorded dependency on the target's URN; the reference
    equal to a known identifier of the target; or, without dependency data (an older plan
    JSON), the same parent component when that component holds only one such target.
    """
    if target.urn in child.dependencies:
        return True
    if known(reference) and any(known(i) and i == reference for i in target_ids):
        return True
    if child.dependencies:
        return False
    same_parent = [t for t in siblings_of_type if t.parent == child.parent]
    return child.parent is not None and same_parent == [target]
