"""The model servers are created after what gives them a GPU node: the NodePools (after
Karpenter's controller) and the NVIDIA device plugin. Before them, a model's await would run
with nothing able to launch or advertise a GPU node."""

from __future__ import annotations

import pytest

from tests.conftest import STACKS

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
RELEASE = "kubernetes:helm.sh/v3:Release"


@pytest.mark.parametrize("stack", STACKS)
def test_every_model_deployment_waits_for_the_nodepools_and_the_device_plugin(plans, stack):
    plan = plans[stack]
    pools = {p.urn for p in plan.of_type(NODE_POOL)
             if "llmops.io/gpu-pool" in p.inputs["spec"]["template"]["metadata"]["labels"]}
    [plugin] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == "nvidia-device-plugin"]
    servers = [d for d in plan.of_type("kubernetes:apps/v1:Deployment")
               if any(t.get("key") == "nvidia.com/gpu"
                      for t in d.inputs["spec"]["template"]["spec"].get("tolerations", []))]
    assert servers and pools
    for deployment in servers:
        assert pools <= set(deployment.dependencies), deployment.name
        assert plugin.urn in deployment.dependencies, deployment.name
