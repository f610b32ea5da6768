"""GPU capacity and cost: only the instance types an environment has budgeted for, spot where
interruptions are acceptable, and a worst-case monthly bill under the environment's budget.

Prices come from components/gpu_instances.py (the same table that sizes the pools), so the
policy and the platform never disagree about what an instance costs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from components.gpu_instances import HOURS_PER_MONTH, gpu_instances
from policies.rules import Finding, Resource, Rule, RuleContext, as_list, get, known, of_type, related

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
#: EC2 GPU/accelerated families: g4dn, g5, g5g, g6, g6e, gr6, p3, p4d, p5, p5e...
GPU_FAMILY = re.compile(r"^(g|gr|p)\d+[a-z]*\.")
DEFAULT_CAPACITY = "ON_DEMAND"  # what EKS uses when capacityType is unset


def is_gpu(instance_type: Any) -> bool:
    return isinstance(instance_type, str) and bool(GPU_FAMILY.match(instance_type))


def check_allowed_types(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
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
                "components/data/gpu_instances.yaml so the budget can be checked", group.urn))
            continue
        priciest = max(types, key=lambda t: prices[t].hourly(capacity))
        hourly = prices[priciest].hourly(capacity)
        monthly = int(max_size) * hourly * HOURS_PER_MONTH
        total += monthly
        lines.append(f"{group.name}: {int(max_size)} x {priciest} {capacity} at ${hourly:,.2f}/h = "
                     f"${monthly:,.0f}")
    if total > budget:
        findings.append(Finding(
            f"the largest GPU fleet the node groups allow costs ${total:,.0f}/month, over the "
            f"${budget:,.0f} budget ({'; '.join(lines)})"))
    return findings


ALLOWED_SCHEMA = {"type": "array", "items": {"type": "string"}, "default": sorted(gpu_instances())}

RULES = [
    Rule(
        name="gpu-instance-type-allowed",
        description="Node groups and launch templates use only the GPU instance types allowed in this "
        "environment.",
        remediation="Pick a type from allowedInstanceTypes in policies/config/<stack>.yaml, or add the "
        "type there (and its price to components/data/gpu_instances.yaml) after a budget review.",
        resource_types=(NODE_GROUP, LAUNCH_TEMPLATE),
        check=check_allowed_types,
        config_schema={"allowedInstanceTypes": ALLOWED_SCHEMA},
    ),
    Rule(
        name="gpu-pool-spot-capacity",
        description="GPU node groups run on spot capacity in environments that can absorb interruptions "
        "(dev, staging).",
        remediation="Set capacity_type='SPOT' on the GPU aws.eks.NodeGroup and list several instance "
        "types to diversify spot pools.",
        stack_check=check_spot,
        config_schema={"capacityType": {"type": "string", "default": "SPOT"}},
    ),
    Rule(
        name="gpu-fleet-monthly-budget",
        description="The worst-case GPU bill (every GPU node group at scalingConfig.maxSize of its most "
        "expensive type, 730 h/month) stays within the environment's monthly budget.",
        remediation="Lower scalingConfig.maxSize, use cheaper or spot instance types, or raise "
        "monthlyBudgetUsd in policies/config/<stack>.yaml with the budget owner's approval.",
        stack_check=check_budget,
        config_schema={"monthlyBudgetUsd": {"type": "number", "default": 10000}},
    ),
]
