"""Policies against the real program: a shipped stack with one bad setting, planned through
the real components, must produce exactly the violation a reviewer would expect."""

from __future__ import annotations

import pytest

from llmops.offline.plan import run_plan
from policies.runner import evaluate

CASES = [
    ("dev", {"llmops:gpuPools.0.capacityTypes": ["spot", "on-demand"]}, "gpu-pool-spot-capacity",
     "gpu-gpu24-x1"),
    ("dev", {"llmops:gpuPools.0.instanceTypes": ["g5.4xlarge", "g6.4xlarge"]},
     "gpu-instance-type-allowed", "gpu-gpu24-x1"),
    ("staging", {"llmops:gpuPools.1.maxNodes": 40}, "gpu-fleet-monthly-budget", None),
    ("prod", {"llmops:models.1.registry": {"stage": "staging"}}, "model-deployment-registry-pinned",
     "qwen-2-5-32b-stable"),
]


@pytest.mark.parametrize(("stack", "overrides", "policy", "resource"), CASES,
                         ids=[c[2] + "-" + c[0] for c in CASES])
def test_a_bad_setting_through_the_real_components_is_a_mandatory_violation(plans, stack, overrides, policy,
                                                                             resource):
    clean = {v.policy for v in evaluate(plans[stack].resources, stack)}
    assert policy not in clean
    violations = [v for v in evaluate(run_plan(stack, overrides=overrides).resources, stack)
                  if v.policy == policy]
    assert violations, f"{policy} did not fire"
    assert all(v.level == "mandatory" for v in violations)
    if resource is not None:
        assert resource in {v.resource_name for v in violations}
