"""Kubernetes workload policies, on resources built with the real pulumi_kubernetes SDK.

HAND-BUILT (see tests/policies/workloads.py): switch to the TGI serving component's plan
once it lands.
"""

from __future__ import annotations

import pulumi_kubernetes as k8s
import pytest

from policies.settings import parse_config
from tests.policies.helpers import messages, recorded, violations_of
from tests.policies.workloads import (
    LABELS,
    device_plugin,
    tgi_container,
    tgi_deployment,
    tgi_pdb,
    weights_init,
)

K8S_POLICIES = ("k8s-container-resources", "k8s-image-pinned", "k8s-no-privileged-or-host-namespaces",
                "k8s-gpu-workload-tolerates-gpu-taint", "tgi-serving-requests-gpu", "tgi-serving-probes",
                "tgi-serving-has-pdb", "helm-release-chart-version-pinned")


def test_a_well_formed_tgi_deployment_with_its_pdb_passes_every_policy():
    resources = recorded(lambda: (tgi_deployment(), tgi_pdb(), device_plugin(),
                                  k8s.helm.v3.Release("dcgm-exporter", chart="dcgm-exporter", version="4.1.1",
                                                      namespace="gpu-operator")))
    for policy in K8S_POLICIES:
        assert messages(policy, resources) == [], policy


def test_containers_and_init_containers_need_requests_and_limits():
    resources = recorded(lambda: tgi_deployment(
        container=tgi_container(resources={"limits": {"nvidia.com/gpu": "1", "memory": "28Gi"}}),
        init=weights_init(resources=None)))
    assert messages("k8s-container-resources", resources) == [
        "container 'tgi' sets no requests.cpu, requests.memory, limits.cpu",
        "init container 'fetch-weights' sets no requests.cpu, requests.memory, limits.cpu, limits.memory"]


@pytest.mark.parametrize(("image", "problem"), [
    ("ghcr.io/huggingface/text-generation-inference", "has no tag (pulls :latest)"),
    ("ghcr.io/huggingface/text-generation-inference:latest", "uses the mutable tag :latest"),
    ("localhost:5000/tgi", "has no tag (pulls :latest)"),
])
def test_images_must_be_pinned(image, problem):
    resources = recorded(lambda: tgi_deployment(container=tgi_container(image=image)))
    assert messages("k8s-image-pinned", resources) == [f"container 'tgi' image {image!r} {problem}"]


def test_a_digest_or_a_registry_port_with_a_tag_is_pinned():
    resources = recorded(lambda: (
        tgi_deployment("a", container=tgi_container(image="ghcr.io/hf/tgi@sha256:" + "a" * 64)),
        tgi_deployment("b", container=tgi_container(image="localhost:5000/tgi:3.0.1"))))
    assert messages("k8s-image-pinned", resources) == []


def test_privileged_containers_and_host_namespaces_are_violations_unless_allow_listed():
    resources = recorded(lambda: (
        tgi_deployment(container=tgi_container(security_context={"privileged": True}), host_network=True),
        device_plugin(),  # allow-listed by name
        device_plugin("gpu-feature-discovery", namespace="gpu-operator"),  # allow-listed namespace
        device_plugin("node-debugger")))
    found = {(v.resource_name, v.message) for v in violations_of("k8s-no-privileged-or-host-namespaces",
                                                                 resources)}
    assert found == {("llama-8b", "pod uses the host namespace (hostNetwork: true)"),
                     ("llama-8b", "container 'tgi' runs privileged"),
                     ("node-debugger", "container 'plugin' runs privileged")}


def test_the_allow_list_is_configurable_per_environment():
    config = parse_config({"k8s-no-privileged-or-host-namespaces": {
        "allowedNames": [], "allowedNamespaces": []}}, "test")
    resources = recorded(lambda: device_plugin())
    assert messages("k8s-no-privileged-or-host-namespaces", resources, config) == [
        "container 'plugin' runs privileged"]


def test_gpu_pods_must_tolerate_the_gpu_taint():
    resources = recorded(lambda: (
        tgi_deployment("untolerated", tolerations=[]),
        tgi_deployment("wrong-effect", tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists",
                                                     "effect": "NoExecute"}]),
        tgi_deployment("everything", tolerations=[{"operator": "Exists"}]),
        k8s.core.v1.Pod("cpu-only", spec={"containers": [{"name": "x", "image": "busybox:1.36"}]})))
    found = {v.resource_name for v in violations_of("k8s-gpu-workload-tolerates-gpu-taint", resources)}
    assert found == {"untolerated", "wrong-effect"}
    assert messages("k8s-gpu-workload-tolerates-gpu-taint", resources)[0] == (
        "requests nvidia.com/gpu but does not tolerate the nvidia.com/gpu=true:NoSchedule taint of the GPU "
        "nodes, so it can never schedule")


def test_a_serving_deployment_without_a_gpu_is_a_violation():
    resources = recorded(lambda: tgi_deployment(container=tgi_container(
        resources={"requests": {"cpu": "8", "memory": "32Gi"}, "limits": {"cpu": "8", "memory": "32Gi"}})))
    assert messages("tgi-serving-requests-gpu", resources) == [
        "serving Deployment requests no nvidia.com/gpu: the engine would fall back to CPU or fail to start"]


def test_deployments_without_the_serving_label_are_not_serving():
    resources = recorded(lambda: tgi_deployment("gateway", labels={"app.kubernetes.io/name": "gateway"},
                                                container=tgi_container(startup_probe=None, resources={
                                                    "requests": {"cpu": "1", "memory": "1Gi"},
                                                    "limits": {"cpu": "1", "memory": "1Gi"}})))
    for policy in ("tgi-serving-requests-gpu", "tgi-serving-probes", "tgi-serving-has-pdb"):
        assert messages(policy, resources) == [], policy


def test_serving_containers_need_startup_and_readiness_probes():
    resources = recorded(lambda: tgi_deployment(container=tgi_container(startup_probe=None,
                                                                        readiness_probe=None)))
    assert messages("tgi-serving-probes", resources) == [
        "container 'tgi' has no startupProbe and no readinessProbe"]


def test_a_serving_deployment_needs_a_pdb_selecting_its_pods_in_its_namespace():
    resources = recorded(lambda: (
        tgi_deployment("no-pdb"),
        tgi_pdb("other-app", match={"app.kubernetes.io/name": "gateway"}),
        tgi_pdb("other-namespace", namespace="default")))
    assert messages("tgi-serving-has-pdb", resources) == [
        "serving Deployment 'no-pdb' has no PodDisruptionBudget selecting its pods"]
    ok = recorded(lambda: (tgi_deployment(), tgi_pdb(match={"app.kubernetes.io/name": LABELS[
        "app.kubernetes.io/name"]})))
    assert messages("tgi-serving-has-pdb", ok) == []


@pytest.mark.parametrize(("version", "message"), [
    (None, "chart 'kube-prometheus-stack' has no version: each install may get a different chart"),
    ("^61.0.0",
     "chart 'kube-prometheus-stack' has version '^61.0.0': each install may get a different chart"),
    ("61.x", "chart 'kube-prometheus-stack' has version '61.x': each install may get a different chart"),
])
def test_helm_releases_must_pin_the_chart_version(version, message):
    resources = recorded(lambda: k8s.helm.v3.Release(
        "monitoring", chart="kube-prometheus-stack", version=version,
        repository_opts={"repo": "https://prometheus-community.github.io/helm-charts"}))
    assert messages("helm-release-chart-version-pinned", resources) == [message]
