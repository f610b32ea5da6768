"""How long the engine may wait in a stack's first `up`: the longest chain of awaits through
the recorded dependency graph (independent resources are created in parallel, so waits add
up only along dependencies). An upper bound from the plan's own budgets, not a measurement;
docs/deploy.md quotes it."""

from __future__ import annotations

from dataclasses import dataclass

from llmops.offline.deploy_checks.base import HELM_RELEASE, WORKLOADS, await_seconds
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource

#: Helm's own default when a release names no `timeout` (helm install --timeout 5m0s)
HELM_DEFAULT_TIMEOUT_S = 300


@dataclass(frozen=True)
class AwaitChain:
    seconds: int
    #: (resource name, its wait in seconds), in creation order, waits > 0 only
    steps: tuple[tuple[str, int], ...]


def wait_seconds(resource: RecordedResource) -> int:
    """The engine's wait for one resource: a workload's rollout await, a release's timeout."""
    if resource.type in WORKLOADS:
        return await_seconds(resource) or 0
    if resource.type == HELM_RELEASE:
        return int(resource.inputs.get("timeout", HELM_DEFAULT_TIMEOUT_S))
    return 0


def longest_await_chain(plan: Plan, stack: str) -> AwaitChain:
    """The chain of dependent waits in `stack` ("platform", "workloads") with the largest sum."""
    by_urn = {r.urn: r for r in plan.resources}
    children: dict[str, list[str]] = {}
    for r in plan.resources:
        if r.parent:
            children.setdefault(r.parent, []).append(r.urn)
    memo: dict[str, AwaitChain] = {}

    def chain(urn: str, seen: frozenset[str] = frozenset()) -> AwaitChain:
        if urn in memo:
            return memo[urn]
        resource = by_urn.get(urn)
        if resource is None or urn in seen:
            return AwaitChain(0, ())
        # waiting on a component waits on its children
        upstream = [chain(u, seen | {urn}) for u in (*resource.dependencies, *children.get(urn, ()))]
        best = max(upstream, key=lambda c: c.seconds, default=AwaitChain(0, ()))
        own = wait_seconds(resource)
        memo[urn] = AwaitChain(best.seconds + own, best.steps + (((resource.name, own),) if own else ()))
        return memo[urn]

    return max((chain(r.urn) for r in plan.in_stack(stack)), key=lambda c: c.seconds,
               default=AwaitChain(0, ()))
