"""The system node group has a fixed size (nothing scales it), so the autoscaled request path
(gateway, routers) runs on a Karpenter NodePool of its own, and the `system-pods-fit` check
holds what stays on the group, at its most replicas, to the group's allocatable."""

from __future__ import annotations

import dataclasses

import pytest

from components.allocatable import Resources, node_allocatable
from components.router import ROUTER_NAME
from llmops.offline.crd_schema import problems
from llmops.offline.deploy_checks import check
from llmops.offline.plan import run_plan
from llmops.offline.platform_cost import platform_cost
from tests.conftest import STACKS
from vocabulary.config.base import ConfigError
from vocabulary.cpu_instances import cpu_instances

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
TRAFFIC_TAINT = {"key": "llmops.io/node-role", "value": "traffic", "effect": "NoSchedule"}


def _named(plan, type_token, name):
    return next(r for r in plan.of_type(type_token) if r.inputs["metadata"]["name"] == name)


def _findings(plan):
    return [f for f in check(plan) if f.rule == "system-pods-fit"]


def _request_path(resource) -> bool:
    return resource.type == DEPLOYMENT and (
        resource.inputs["metadata"]["name"] == "llm-gateway" or "router" in resource.name)


def _on_system_nodes(plan):
    """The plan as it was before the traffic pool: gateway and routers pinned to the group."""
    def moved(resource):
        if not _request_path(resource):
            return resource
        spec = resource.inputs["spec"]
        pod = {**spec["template"]["spec"], "nodeSelector": {"llmops.io/node-role": "system"},
               "tolerations": []}
        template = {**spec["template"], "spec": pod}
        inputs = {**resource.inputs, "spec": {**spec, "template": template}}
        return dataclasses.replace(resource, inputs=inputs)
    return dataclasses.replace(plan, resources=[moved(r) for r in plan.resources])


def test_the_allocatable_formula_gives_karpenters_own_figures_for_an_m6i_xlarge():
    # aws/karpenter-provider-aws v1.14.1 website/content/en/docs/reference/instance-types.md
    assert node_allocatable(cpu_instances()["m6i.xlarge"]) == Resources(3920, 14162)
    assert cpu_instances()["m6i.xlarge"].max_pods == 58


@pytest.mark.parametrize("stack", STACKS)
def test_gateway_and_routers_run_on_the_tainted_on_demand_traffic_pool_and_nothing_else_does(plans, stack):
    plan = plans[stack]
    pool = _named(plan, NODE_POOL, "traffic")
    spec = pool.inputs["spec"]
    assert problems({"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "metadata": pool.inputs["metadata"],
                     "spec": spec}) == []
    node = spec["template"]["spec"]
    assert node["taints"] == [TRAFFIC_TAINT]
    on_demand = {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]}
    assert on_demand in node["requirements"]
    assert spec["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
    assert set(spec["limits"]) == {"cpu", "memory"}
    node_class = _named(plan, NODE_CLASS, "traffic")
    assert "instanceStorePolicy" not in node_class.inputs["spec"]
    assert node_class.inputs["spec"]["metadataOptions"]["httpTokens"] == "required"
    tolerating = {r.name for r in plan.of_type(DEPLOYMENT) if any(
        t.get("key") == "llmops.io/node-role"
        for t in r.inputs["spec"]["template"]["spec"].get("tolerations", []))}
    assert tolerating == {r.name for r in plan.resources if _request_path(r)} and tolerating
    for name in tolerating:
        pod = next(r for r in plan.resources if r.name == name).inputs["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"llmops.io/node-role": "traffic"}
    fluent_bit = next(r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                      if r.inputs["chart"] == "aws-for-fluent-bit")
    assert {"key": "llmops.io/node-role", "operator": "Exists",
            "effect": "NoSchedule"} in fluent_bit.inputs["values"]["tolerations"]  # their logs ship too
    assert _findings(plan) == []
    assert not [f for f in check(plan) if f.rule in ("controller-placement", "pod-fits-node")]


def test_the_gateway_waits_for_its_node_pool(plans):
    plan = plans["prod"]
    gateway = _named(plan, DEPLOYMENT, "llm-gateway")
    assert _named(plan, NODE_POOL, "traffic").urn in gateway.dependencies


def test_every_router_waits_for_the_traffic_node_pool(plans):
    """The routers run only on the traffic pool: their rollout wait starts once it exists."""
    plan = plans["prod"]
    pool = _named(plan, NODE_POOL, "traffic").urn
    routers = [d for d in plan.of_type(DEPLOYMENT)
               if d.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == ROUTER_NAME]
    assert routers
    assert [d.name for d in routers if pool not in d.dependencies] == []


def test_prods_gateway_at_its_hpa_max_with_the_routers_would_not_fit_the_fixed_system_group(plans):
    (finding,) = _findings(_on_system_nodes(plans["prod"]))
    assert finding.resource == "cluster-system"
    message = finding.message
    assert "request 11500m CPU / 19636Mi at their most replicas" in message
    assert "gateway-deployment 12 x 500m CPU / 512Mi" in message  # the HPA's maxReplicas
    assert "its 3 x m6i.xlarge (desiredSize; nothing scales the group) have 10860m CPU / 41226Mi" in message
    assert "short of CPU by 640m; raise llmops:cluster.systemNodes.desiredSize to 4" in message


def test_a_controller_bigger_than_any_system_node_is_named():
    plan = run_plan("dev", overrides={"llmops:monitoring.resources": {"prometheus": {
        "requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}}})
    assert any("monitoring-kube-prometheus-stack/prometheus requests 2000m CPU / 2048Mi but a m6i.large has "
               "1630m CPU / 6483Mi left after kube-reserved, eviction and its DaemonSets: it fits no system "
               "node" in f.message for f in _findings(plan))


def test_the_traffic_pool_limits_must_hold_the_gateway_at_its_hpa_max():
    plan = run_plan("prod", overrides={"llmops:cluster.trafficNodes.maxNodes": 1})
    (finding,) = _findings(plan)
    assert finding.resource == "traffic"
    assert "gateway-deployment 12 x 500m CPU / 512Mi" in finding.message
    assert "its limits (4 CPU: 1 x m6a.xlarge) leave 3620m CPU / 13742Mi" in finding.message
    assert "short of CPU by 3880m" in finding.message
    assert "raise llmops:cluster.trafficNodes.maxNodes" in finding.message


def test_the_traffic_pool_is_priced_from_its_pods_minimum_up_to_its_limit(plans):
    plan = plans["prod"]
    (line,) = [x for x in platform_cost("us-east-1", plan.resources).lines
               if x.component == "CPU NodePool (Karpenter)"]
    # 3 gateway pods x 500m + 3 routers x 2 x 250m = 3 CPUs: 2 m6a.large (1930m allocatable)
    assert line.resource == "traffic (2 x m6a.large; limit 24 vCPU)"
    low, _, high = line.monthly
    assert (round(low, 2), round(high, 2)) == (round(2 * 0.0864 * 730, 2), round(24 * 0.048 * 730, 2))


def test_an_unknown_traffic_instance_type_is_refused_naming_the_facts_file():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:cluster.trafficNodes.instanceTypes": ["m6i.large", "c7g.large"]})
    assert any(p.startswith("llmops:cluster.trafficNodes.instanceTypes: unknown CPU instance "
                            "types ['c7g.large']") and "vocabulary/data/cpu_instances.yaml" in p
               for p in caught.value.problems), caught.value.problems
