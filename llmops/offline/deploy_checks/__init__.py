"""Deploy-time checks over a recorded plan: what the schema and policies cannot see.

Each rule is a failure class that made a real first `pulumi up` fail on a fresh account
although every offline check passed: ordering, awaits, what a controller refuses at start,
what exists when a resource is created. A rule reads the recorded graph (resources with
their stack, inputs, outputs, options and dependencies, and the invokes the programs made)
and returns findings; `llmops plan` prints them and fails on any.

New checks live in their own module of this package (one module per area) and export a
`RULES` tuple; this module joins them.
"""

from __future__ import annotations

from llmops.offline.deploy_checks import (
    capacity,
    ci,
    cluster_services,
    core,
    disruption,
    gpu_packing,
    identity,
    keda_and_order,
    node_lifecycle,
    system_pods,
)
from llmops.offline.deploy_checks.base import Finding, Rule, await_seconds, parse_duration
from llmops.offline.deploy_checks.core import verified_charts
from llmops.offline.plan import Plan

RULES: tuple[Rule, ...] = (*core.RULES, *ci.RULES, *keda_and_order.RULES, *identity.RULES,
                           *cluster_services.RULES, *capacity.RULES, *node_lifecycle.RULES,
                           *disruption.RULES, *gpu_packing.RULES,
                           *system_pods.RULES)

__all__ = ["RULES", "Finding", "await_seconds", "check", "parse_duration", "render", "verified_charts"]


def check(plan: Plan) -> list[Finding]:
    """Every finding of every rule, in a stable order."""
    return sorted((f for rule in RULES for f in rule(plan)),
                  key=lambda f: (f.rule, f.stack, f.resource))


def render(findings: list[Finding], rules: int = len(RULES)) -> str:
    if not findings:
        return f"Deploy checks: nothing blocks the first `up` ({rules} checks)."
    lines = [f"Deploy checks: {len(findings)} problem(s) would stop or break the first `up`:"]
    lines += [f"  - {f}" for f in findings]
    return "\n".join(lines)
