"""GPU capacity and cost: only the instance types an environment has budgeted for, spot where
interruptions are acceptable, and a worst-case monthly bill under the environment's budget.
GPU capacity comes from EKS node groups or Karpenter NodePools; a NodePool is priced at its
limits (nodes = its GPU limit / GPUs per node) at the priciest capacity type it may buy, so a
GPU NodePool without limits is a violation of its own, as is spot GPU capacity with no
interruption queue for Karpenter to drain nodes by.

Prices come from vocabulary/gpu_instances.py (the same table that sizes the pools), so the
policy and the platform never disagree about what an instance costs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rules import (
    COMPUTED,
    Finding,
    Resource,
    Rule,
    RuleContext,
    as_list,
    get,
    known,
    of_type,
    related,
)
from vocabulary.gpu_instances import HOURS_PER_MONTH, gpu_instances, price_node_limit

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
#: EC2 GPU/accelerated families: g4dn, g5, g5g, g6, g6e, gr6, p3, p4d, p5, p5e...
GPU_FAMILY = re.compile(r"^(g|gr|p)\d+[a-z]*\.")
DEFAULT_CAPACITY = "ON_DEMAND"  # what EKS uses when capacityType is unset
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
GPU_RESOURCE = "nvidia.com/gpu"
#: kubernetes-sigs/karpenter v1.14.1 pkg/apis/v1/labels.go; Karpenter buys on-demand when a
#: NodePool does not say (its default requirement)
CAPACITY_KEY, INSTANCE_TYPE_KEY = "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type"
NODEPOOL_DEFAULT_CAPACITY = ["on-demand"]


def _requirement(pool: Mapping[str, Any], key: str) -> list[Any] | None:
    for req in as_list(get(pool, "template.spec.requirements")):
        if isinstance(req, Mapping) and req.get("key") == key and req.get("operator") == "In":
            return [v for v in as_list(req.get("values")) if known(v)]
    return None


def node_pool_types(spec: Mapping[str, Any]) -> list[str]:
    return _requirement(spec, INSTANCE_TYPE_KEY) or []


def node_pool_capacity(spec: Mapping[str, Any]) -> list[str]:
    return _requirement(spec, CAPACITY_KEY) or NODEPOOL_DEFAULT_CAPACITY


def is_gpu_node_pool(spec: Mapping[str, Any]) -> bool:
    """GPU types in its requirements, or the GPU taint on its nodes."""
    taints = as_list(get(spec, "template.spec.taints"))
    return any(is_gpu(t) for t in node_pool_types(spec)) or any(
        isinstance(t, Mapping) and t.get("key") == GPU_RESOURCE for t in taints)


def gpu_node_pools(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in of_type(resources, NODE_POOL)
            if isinstance(r.props.get("spec"), Mapping) and is_gpu_node_pool(r.props["spec"])]


def is_gpu(instance_type: Any) -> bool:
    return isinstance(instance_type, str) and bool(GPU_FAMILY.match(instance_type))


def check_allowed_types(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if type_token == NODE_POOL:
        types = node_pool_types(props.get("spec") or {})
    else:
        field = "instanceTypes" if type_token == NODE_GROUP else "instanceType"
        types = [t for t in as_list(props.get(field)) if known(t)]
    allowed = set(ctx["allowedInstanceTypes"])
    denied = [t for t in types if is_gpu(t) and t not in allowed]
    if denied:
        return [f"GPU instance type(s) {', '.join(denied)} not allowed here (allowed: "
                f"{', '.join(sorted(allowed)) or 'none'})"]
    return []


def node_group_types(group: Resource, resources: Sequence[Resource]) -> list[str]:
    """The instance types a node group launches: its own list, else its launch template's."""
    types = [t for t in as_list(group.props.get("instanceTypes")) if known(t)]
    if types:
        return types
    templates = of_type(resources, LAUNCH_TEMPLATE)
    name = get(group.props, "launchTemplate.name")
    for template in templates:
        if related(group, template, templates, name, [template.props.get("name")]):
            return [t for t in as_list(template.props.get("instanceType")) if known(t)]
    return []


def gpu_node_groups(resources: Sequence[Resource]) -> list[tuple[Resource, list[str]]]:
    out = []
    for group in of_type(resources, NODE_GROUP):
        types = node_group_types(group, resources)
        if any(is_gpu(t) for t in types):
            out.append((group, types))
    return out


def check_spot(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    required = ctx["capacityType"]
    findings = []
    for group, _types in gpu_node_groups(resources):
        capacity = group.props.get("capacityType") or DEFAULT_CAPACITY
        if known(capacity) and capacity != required:
            findings.append(Finding(f"GPU node group {group.name!r} uses {capacity} capacity; this "
                                    f"environment runs GPU pools on {required}", group.urn))
    wanted = required.lower().replace("_", "-")
    for pool in gpu_node_pools(resources):
        other = [c for c in node_pool_capacity(pool.props["spec"]) if c != wanted]
        if other:
            findings.append(Finding(f"GPU NodePool {pool.name!r} may buy {', '.join(other)} capacity; "
                                    f"this environment runs GPU pools on {wanted} only", pool.urn))
    return findings


def check_budget(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    budget = float(ctx["monthlyBudgetUsd"])
    prices = gpu_instances()
    findings, lines, total = [], [], 0.0
    for group, types in sorted(gpu_node_groups(resources), key=lambda gt: gt[0].name):
        max_size = get(group.props, "scalingConfig.maxSize")
        if not known(max_size):
            continue
        capacity = group.props.get("capacityType") or DEFAULT_CAPACITY
        unpriced = [t for t in types if t not in prices]
        if unpriced:
            findings.append(Finding(
                f"node group {group.name!r}: no price for {', '.join(unpriced)}; add it to "
                "vocabulary/data/gpu_instances.yaml so the budget can be checked", group.urn))
            continue
        priciest = max(types, key=lambda t: prices[t].hourly(capacity))
        hourly = prices[priciest].hourly(capacity)
        monthly = int(max_size) * hourly * HOURS_PER_MONTH
        total += monthly
        lines.append(f"{group.name}: {int(max_size)} x {priciest} {capacity} at ${hourly:,.2f}/h = "
                     f"${monthly:,.0f}")
    for pool in sorted(gpu_node_pools(resources), key=lambda r: r.name):
        spec = pool.props["spec"]
        limits = spec.get("limits")
        limit = limits.get(GPU_RESOURCE) if isinstance(limits, Mapping) else None
        types = node_pool_types(spec)
        if not known(limit) or not types:
            continue  # no limit: gpu-nodepool-has-limits says so; computed: cannot judge
        unpriced = [t for t in types if t not in prices]
        if unpriced:
            findings.append(Finding(
                f"NodePool {pool.name!r}: no price for {', '.join(unpriced)}; add it to "
                "vocabulary/data/gpu_instances.yaml so the budget can be checked", pool.urn))
            continue
        price = price_node_limit(types, node_pool_capacity(spec), int(limit))
        monthly = price.monthly()
        total += monthly
        lines.append(f"{pool.name}: {price.nodes} x {price.instance_type} {price.capacity_type} at "
                     f"${price.worst_hourly:,.2f}/h = ${monthly:,.0f}")
    if total > budget:
        findings.append(Finding(
            f"the largest GPU fleet the node groups and NodePools allow costs ${total:,.0f}/month, over the "
            f"${budget:,.0f} budget ({'; '.join(lines)})"))
    return findings


def check_node_pool_limits(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    """A GPU NodePool without limits can buy GPUs until the account's quota stops it."""
    spec = props.get("spec")
    if not isinstance(spec, Mapping) or not is_gpu_node_pool(spec):
        return []
    limits = spec.get("limits")
    if not known(limits):
        return []
    missing = [k for k in (GPU_RESOURCE, "cpu") if not isinstance(limits, Mapping) or k not in limits]
    if missing:
        return [f"GPU NodePool sets no limit on {', '.join(missing)}: Karpenter would launch GPU "
                "nodes until the account's quota stops it, and no budget can be checked"]
    return []


def _karpenter_releases(resources: Sequence[Resource]) -> list[Resource]:
    return [r for r in of_type(resources, HELM_RELEASE)
            if str(r.props.get("chart", "")).rstrip("/").rsplit("/", 1)[-1] == "karpenter"]


def check_interruption_handling(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    """Spot GPU NodePools need Karpenter reading an interruption queue: without it a spot
    reclaim kills the model servers with no drain and no replacement started early."""
    spot = [p for p in gpu_node_pools(resources) if "spot" in node_pool_capacity(p.props["spec"])]
    if not spot:
        return []
    names = ", ".join(sorted(p.name for p in spot))
    releases = _karpenter_releases(resources)
    if not releases:
        return [Finding(f"GPU NodePool(s) {names} buy spot but no Karpenter release in this stack "
                        "reads an interruption queue", spot[0].urn)]
    findings = []
    for release in releases:
        settings = get(release.props, "values.settings", {})
        queue = settings.get("interruptionQueue") if isinstance(settings, Mapping) else None
        if queue == COMPUTED or (isinstance(queue, str) and queue):
            continue
        legacy = " (settings.interruptionQueueName is not read by this chart; the key is " \
                 "settings.interruptionQueue)" if isinstance(settings, Mapping) and \
            "interruptionQueueName" in settings else ""
        findings.append(Finding(f"GPU NodePool(s) {names} buy spot but Karpenter release "
                                f"{release.name!r} names no interruption queue{legacy}", release.urn))
    return findings


ALLOWED_SCHEMA = {"type": "array", "items": {"type": "string"}, "default": sorted(gpu_instances())}

RULES = [
    Rule(
        name="gpu-instance-type-allowed",
        description="Node groups and launch templates use only the GPU instance types allowed in this "
        "environment.",
        remediation="Pick a type from allowedInstanceTypes in policies/config/<stack>.yaml, or add the "
        "type there (and its price to vocabulary/data/gpu_instances.yaml) after a budget review.",
        resource_types=(NODE_GROUP, LAUNCH_TEMPLATE, NODE_POOL),
        check=check_allowed_types,
        config_schema={"allowedInstanceTypes": ALLOWED_SCHEMA},
    ),
    Rule(
        name="gpu-pool-spot-capacity",
        description="GPU node groups and NodePools run on spot capacity in environments that can "
        "absorb interruptions (dev, staging).",
        remediation="Set capacityTypes: [spot] on the pool in Pulumi.<env>.yaml (the NodePool's "
        "karpenter.sh/capacity-type requirement) and list several instance types.",
        stack_check=check_spot,
        config_schema={"capacityType": {"type": "string", "default": "SPOT"}},
    ),
    Rule(
        name="gpu-fleet-monthly-budget",
        description="The worst-case GPU bill (every GPU node group at scalingConfig.maxSize, every GPU "
        "NodePool at its nvidia.com/gpu limit, of its most expensive type at the priciest capacity "
        "it may buy, 730 h/month) stays within the environment's monthly budget.",
        remediation="Lower maxNodes (NodePool limits) or scalingConfig.maxSize, use cheaper or "
        "spot instance types, or raise "
        "monthlyBudgetUsd in policies/config/<stack>.yaml with the budget owner's approval.",
        stack_check=check_budget,
        config_schema={"monthlyBudgetUsd": {"type": "number", "default": 10000}},
    ),
    Rule(
        name="gpu-nodepool-has-limits",
        description="Every GPU NodePool limits the GPUs and vCPUs it may provision.",
        remediation="Set maxNodes on the pool in Pulumi.<env>.yaml (components/gpu_nodes.py turns it "
        "into the NodePool's nvidia.com/gpu and cpu limits).",
        resource_types=(NODE_POOL,),
        check=check_node_pool_limits,
    ),
    Rule(
        name="gpu-spot-has-interruption-handling",
        description="Spot GPU NodePools come with a Karpenter controller that reads an interruption "
        "queue (settings.interruptionQueue), so a 2-minute spot notice drains the node.",
        remediation="Pass the platform stack's karpenter.interruptionQueue to the chart's "
        "settings.interruptionQueue (components/gpu_nodes.py), or buy no spot.",
        stack_check=check_interruption_handling,
    ),
]
