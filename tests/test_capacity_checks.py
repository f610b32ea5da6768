"""Pods sized from the node's allocatable, and the deploy checks that hold the plan to it:
every pod fits every instance type its NodePool may launch (after kube-reserved, eviction and
the DaemonSets), and Karpenter's controller runs only on the managed node group."""

from __future__ import annotations

import dataclasses

import pytest

from components.allocatable import engine_resources, kube_reserved, node_allocatable
from llmops.offline.deploy_checks import check
from llmops.offline.deploy_checks.capacity import memory_mi, pod_requests
from tests.conftest import STACKS
from vocabulary.gpu_instances import gpu_instances

RELEASE = "kubernetes:helm.sh/v3:Release"


def _rules(plan):
    found = {}
    for finding in check(plan):
        found.setdefault(finding.rule, []).append(finding)
    return found


def _with_inputs(plan, name, inputs):
    return dataclasses.replace(plan, resources=[dataclasses.replace(r, inputs=inputs) if r.name == name
                                                else r for r in plan.resources])


def test_kube_reserved_is_nodeadms_formula():
    # g5.xlarge: 4 ENIs x (15 - 1) + 2 = 58 pods; 11 x 58 + 255 = 893 MiB (issue 21's numbers)
    g5 = gpu_instances()["g5.xlarge"]
    assert g5.max_pods == 58
    # CPU: 6% of the first core, 1% of the second, 0.5% of cores 3 and 4 = 60 + 10 + 10
    assert (kube_reserved(g5).cpu_m, kube_reserved(g5).memory_mi) == (80, 893)
    # 48 vCPU: + 0.25% of the other 44 cores = 190m
    assert kube_reserved(gpu_instances()["g5.12xlarge"]).cpu_m == 190


def test_allocatable_takes_vm_overhead_reserve_and_eviction_off_the_nominal_memory():
    # 16384 MiB - ceil(7.5%) 1229 - kube-reserved 893 - eviction 100
    assert node_allocatable(gpu_instances()["g5.xlarge"]).memory_mi == 14162


def test_the_dev_pod_no_longer_asks_for_more_than_a_16_gib_node_has():
    """Issue 21 item 6: 14 GiB (88% of 16) plus sidecars never scheduled on g5/g6.xlarge."""
    for name in ("g5.xlarge", "g6.xlarge"):
        limits = engine_resources(1, gpu_instances()[name])["limits"]
        assert memory_mi(limits["memory"]) < 14 * 1024
        assert memory_mi(limits["memory"]) + 1024 + 128 <= node_allocatable(gpu_instances()[name]).memory_mi


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_pod_fits_every_type_its_nodepool_may_launch(plans, stack):
    assert "pod-fits-node" not in _rules(plans[stack])
    assert "controller-placement" not in _rules(plans[stack])


def test_a_pod_sized_by_the_old_flat_share_is_found(plans):
    """The pre-fix dev pod: 3 CPU / 14Gi for TGI, requests = limits."""
    plan = plans["dev"]
    deployment = plan.one("kubernetes:apps/v1:Deployment", "llama-3-8b-stable")
    spec = deployment.inputs["spec"]
    pod = spec["template"]["spec"]
    old = {"cpu": "3", "memory": "14Gi", "nvidia.com/gpu": "1"}
    tgi = {**pod["containers"][0], "resources": {"requests": old, "limits": old}}
    inputs = {**deployment.inputs, "spec": {**spec, "template": {
        **spec["template"], "spec": {**pod, "containers": [tgi, *pod["containers"][1:]]}}}}
    findings = _rules(_with_inputs(plan, deployment.name, inputs))["pod-fits-node"]
    assert {f.message.split(" from ")[0].rsplit(" ", 1)[-1] for f in findings} == {"g5.xlarge", "g6.xlarge"}
    assert findings[0].message.startswith("requests 3050m CPU / 14400Mi but a ")
    assert "after kube-reserved, eviction and its DaemonSets (EKS add-ons, prepull" in findings[0].message


def test_pod_requests_count_native_sidecars_beside_the_app_and_init_containers_alone():
    pod = {"initContainers": [
        {"name": "side", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m", "memory": "1Gi"}}},
        {"name": "big-init", "resources": {"requests": {"cpu": "2", "memory": "64Mi"}}}],
        "containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}
    needed = pod_requests(pod)
    assert (needed.cpu_m, needed.memory_mi) == (2100, 3072)


def test_a_karpenter_controller_that_could_run_on_its_own_nodes_is_found(plans):
    plan = plans["prod"]
    release = plan.one(RELEASE, "gpu-karpenter")
    values = release.inputs["values"]
    on_gpu = {**values, "nodeSelector": {"llmops.io/gpu-shape": "24gib-x4"}}
    messages = [f.message for f in _rules(_with_inputs(plan, release.name, {
        **release.inputs, "values": on_gpu}))["controller-placement"]]
    assert any("matches NodePool(s) gpu24-x4, gpu24-x4-floor: the controller would run on nodes "
               "it manages" in m for m in messages)
    assert any("matches no managed node group" in m for m in messages)
    anywhere = {**values, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In",
                                                     "values": ["linux"]}]}]}}}}
    [finding] = _rules(_with_inputs(plan, release.name, {**release.inputs, "values": anywhere}))[
        "controller-placement"]
    assert "replaces the chart's karpenter.sh/nodepool DoesNotExist rule" in finding.message
