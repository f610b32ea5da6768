"""Deploy checks for how GPU nodes end.

- `node-grace-covers-await`: when Karpenter disrupts a node (drift, consolidation, expiry,
  interruption) it drains it, and once the NodePool's terminationGracePeriod has passed it
  deletes the remaining pods and terminates the instance whatever their PodDisruptionBudgets
  (aws/karpenter-provider-aws v1.14.1 website/content/en/v1.14/concepts/disruption.md,
  "TerminationGracePeriod"). A model's PDB keeps the old pod until its replacement is Ready;
  a grace shorter than that replacement's start (the engine's await: a new node plus a fresh
  start) cuts the old pod off first and the model loses a replica, or its only one.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmops.offline.deploy_checks.base import (
    NODE_POOL,
    WORKLOADS,
    Finding,
    Rule,
    _k8s_name,
    _pool_spec,
    _pools_for,
    await_seconds,
    parse_duration,
)
from llmops.offline.plan import Plan


def node_grace_covers_await(plan: Plan) -> Iterator[Finding]:
    """Each NodePool's terminationGracePeriod exceeds the longest await of a pod it may run."""
    pools = plan.of_type(NODE_POOL)
    awaits: dict[str, tuple[int, str]] = {}
    for resource in plan.resources:
        waited = await_seconds(resource) if resource.type in WORKLOADS else None
        if not waited:
            continue
        for pool in _pools_for(resource, pools):
            if waited > awaits.get(pool.urn, (0, ""))[0]:
                awaits[pool.urn] = (waited, resource.name)
    for pool in pools:
        if pool.urn not in awaits:
            continue
        waited, workload = awaits[pool.urn]
        grace = _pool_spec(pool).get("template", {}).get("spec", {}).get("terminationGracePeriod")
        if grace is None:
            yield Finding("node-grace-covers-await", pool.stack, _k8s_name(pool),
                          f"has no terminationGracePeriod: a drain blocked by {workload}'s PDB never "
                          "ends; set one longer than its await")
        elif parse_duration(grace) <= waited:
            yield Finding("node-grace-covers-await", pool.stack, _k8s_name(pool),
                          f"terminationGracePeriod {grace} ({parse_duration(grace)} s) does not exceed "
                          f"the {waited} s {workload} may take to start a replacement; a drain deletes "
                          "its pods before the replacement is Ready (components/nodepools.py "
                          "node_termination_grace)")


RULES: tuple[Rule, ...] = (node_grace_covers_await,)
