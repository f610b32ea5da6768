"""The GPU policies on Karpenter NodePools: limits are mandatory, spot needs an interruption
queue, the budget prices each NodePool's limits at the priciest capacity it may buy, and the
spot-only environments refuse a NodePool that may buy on-demand. Both sides of each."""

from __future__ import annotations

from typing import Any

from policies.rules import COMPUTED
from tests.policies.test_policy_boundaries import res, says

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
RELEASE = "kubernetes:helm.sh/v3:Release"


def node_pool(name: str = "gpu", types: tuple[str, ...] = ("g5.xlarge", "g6.xlarge"),
              capacity: tuple[str, ...] | None = ("spot",), limits: Any = None):
    requirements = [{"key": "node.kubernetes.io/instance-type", "operator": "In", "values": list(types)}]
    if capacity is not None:
        requirements.append({"key": "karpenter.sh/capacity-type", "operator": "In",
                             "values": list(capacity)})
    taint = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    spec = {"template": {"spec": {"requirements": requirements, "taints": [taint]}},
            "limits": {"nvidia.com/gpu": "2", "cpu": "8"} if limits is None else limits}
    return res(NODE_POOL, name, spec=spec)


def karpenter(settings: dict[str, Any] | None):
    return res(RELEASE, "karpenter", chart="oci://public.ecr.aws/karpenter/karpenter",
               values={"settings": settings} if settings is not None else {})


def test_a_gpu_nodepool_without_limits_is_a_violation_and_one_with_both_is_not():
    assert says("gpu-nodepool-has-limits", node_pool()) == []
    assert says("gpu-nodepool-has-limits", node_pool(limits={})) == [
        "GPU NodePool sets no limit on nvidia.com/gpu, cpu: Karpenter would launch GPU nodes until the "
        "account's quota stops it, and no budget can be checked"]
    assert says("gpu-nodepool-has-limits", node_pool(limits={"cpu": "8"}))[0].startswith(
        "GPU NodePool sets no limit on nvidia.com/gpu:")
    cpu_only = res(NODE_POOL, "cpu", spec={"template": {"spec": {"requirements": [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["m6i.large"]}]}}})
    assert says("gpu-nodepool-has-limits", cpu_only) == []


def test_spot_gpu_capacity_without_an_interruption_queue_is_a_violation():
    pool = node_pool(capacity=("spot", "on-demand"))
    assert says("gpu-spot-has-interruption-handling", pool, karpenter({"interruptionQueue": "q"})) == []
    assert says("gpu-spot-has-interruption-handling", pool, karpenter({"interruptionQueue": COMPUTED})) == []
    assert says("gpu-spot-has-interruption-handling", pool, karpenter({"clusterName": "c"})) == [
        "GPU NodePool(s) gpu buy spot but Karpenter release 'karpenter' names no interruption queue"]
    assert says("gpu-spot-has-interruption-handling", pool) == [
        "GPU NodePool(s) gpu buy spot but no Karpenter release in this stack reads an interruption queue"]


def test_the_pre_v032_queue_key_is_named_as_the_reason():
    [message] = says("gpu-spot-has-interruption-handling", node_pool(),
                     karpenter({"interruptionQueueName": "q"}))
    assert message.endswith("(settings.interruptionQueueName is not read by this chart; the key is "
                            "settings.interruptionQueue)")


def test_on_demand_only_gpu_capacity_needs_no_queue():
    assert says("gpu-spot-has-interruption-handling", node_pool(capacity=("on-demand",))) == []
    # Karpenter buys on-demand when a NodePool names no capacity type
    assert says("gpu-spot-has-interruption-handling", node_pool(capacity=None)) == []


def test_the_budget_prices_nodepool_limits_at_the_priciest_capacity_it_may_buy():
    # 2 GPUs = 2 x g5.xlarge (1 GPU each) at on-demand 1.006 $/h (it may fall back) x 730 h
    pool = node_pool(capacity=("spot", "on-demand"))
    assert says("gpu-fleet-monthly-budget", pool, config={"monthlyBudgetUsd": 1469}) == []
    assert says("gpu-fleet-monthly-budget", pool, config={"monthlyBudgetUsd": 1468}) == [
        "the largest GPU fleet the node groups and NodePools allow costs $1,469/month, over the "
        "$1,468 budget (gpu: 2 x g5.xlarge on-demand at $1.01/h = $1,469)"]
    spot_only = node_pool(capacity=("spot",))  # 2 x 0.40 x 730 = 584
    assert says("gpu-fleet-monthly-budget", spot_only, config={"monthlyBudgetUsd": 584}) == []


def test_spot_only_environments_refuse_a_nodepool_that_may_buy_on_demand():
    assert says("gpu-pool-spot-capacity", node_pool()) == []
    assert says("gpu-pool-spot-capacity", node_pool(capacity=("spot", "on-demand"))) == [
        "GPU NodePool 'gpu' may buy on-demand capacity; this environment runs GPU pools on spot only"]
    assert says("gpu-pool-spot-capacity", node_pool(capacity=None))[0].startswith(
        "GPU NodePool 'gpu' may buy on-demand capacity")


def test_nodepool_instance_types_must_be_allowed():
    assert says("gpu-instance-type-allowed", node_pool(types=("g5.xlarge", "p5.48xlarge")),
                config={"allowedInstanceTypes": ["g5.xlarge"]}) == [
        "GPU instance type(s) p5.48xlarge not allowed here (allowed: g5.xlarge)"]
