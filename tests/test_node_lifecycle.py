"""How GPU nodes end: no forceful expiry by default, and a drain that outlasts the start of a
model's replacement pod, held to by the `node-grace-covers-await` deploy check."""

from __future__ import annotations

import dataclasses

import pytest

from components.engines.pod import NODE_PROVISION_S
from components.nodepools import node_termination_grace
from llmops.offline.deploy_checks import await_seconds, check, parse_duration
from tests.conftest import STACKS

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _grace_findings(plan):
    return [f for f in check(plan) if f.rule == "node-grace-covers-await"]


def _with_grace(plan, grace):
    def changed(resource):
        spec = resource.inputs["spec"]
        node = {**spec["template"]["spec"], "terminationGracePeriod": grace}
        inputs = {**resource.inputs, "spec": {**spec, "template": {**spec["template"], "spec": node}}}
        return dataclasses.replace(resource, inputs=inputs)
    return dataclasses.replace(plan, resources=[changed(r) if r.type == NODE_POOL else r
                                                for r in plan.resources])


def _gpu_pools(plan):
    """The GPU NodePools (the CPU traffic pool's pods start in seconds: tests/test_system_pods.py)."""
    return [p for p in plan.of_type(NODE_POOL)
            if "llmops.io/gpu-pool" in p.inputs["spec"]["template"]["metadata"]["labels"]]


def _longest_gpu_await(plan) -> int:
    """The longest await of a Deployment whose pods tolerate the GPU taint (the model servers)."""
    return max(await_seconds(d) or 0 for d in plan.of_type("kubernetes:apps/v1:Deployment")
               if any(t.get("key") == "nvidia.com/gpu"
                      for t in d.inputs["spec"]["template"]["spec"].get("tolerations", [])))


def test_grace_is_node_provisioning_plus_twice_the_longest_await_rounded_up_to_ten_minutes():
    assert node_termination_grace(1860) == "90m"  # 1200 + 3720 s = 82 min
    assert parse_duration(node_termination_grace(1800)) >= NODE_PROVISION_S + 2 * 1800
    assert node_termination_grace(0) == "30m"  # never under a model server's grace with room


@pytest.mark.parametrize("stack", STACKS)
def test_every_gpu_nodepool_drains_longer_than_its_models_take_to_start(plans, stack):
    plan = plans[stack]
    assert _grace_findings(plan) == []
    longest = _longest_gpu_await(plan)
    assert longest >= NODE_PROVISION_S
    for pool in _gpu_pools(plan):
        node = pool.inputs["spec"]["template"]["spec"]
        assert parse_duration(node["terminationGracePeriod"]) > longest
        assert node["expireAfter"] == "Never"


def test_the_old_30_minute_grace_is_found_on_every_pool_a_model_runs_on(plans):
    plan = _with_grace(plans["prod"], "30m")
    findings = _grace_findings(plan)
    assert {f.resource for f in findings} == {p.inputs["metadata"]["name"] for p in _gpu_pools(plan)}
    longest = _longest_gpu_await(plans["prod"])
    assert any(f"terminationGracePeriod 30m (1800 s) does not exceed the {longest} s" in str(f)
               for f in findings)
    assert "a drain deletes its pods before the replacement is Ready" in str(findings[0])
