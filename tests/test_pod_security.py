"""Pod Security Admission as planned: each namespace's level (and why it is not higher), and
every workload we render meeting its namespace's level, with as much of restricted as the
image allows."""

from __future__ import annotations

import pytest

from components.model_cache import CACHE_HOST_PATH
from components.pod_security import BOUND_LABEL, ENFORCE, namespace_labels
from policies.kubernetes import pod_spec
from policies.pod_security_standards import problems_at
from tests.conftest import STACKS

#: The level each namespace's pods must meet: PSA's enforce label, or for llm-serving the
#: baseline its admission policy enforces (PSA privileged: the model cache's hostPath).
EXPECTED_LEVELS = {"llm-gateway": "restricted", "keda": "restricted", "llm-serving": "baseline",
                   "monitoring": "baseline", "node-agents": "privileged"}


def _levels(plan) -> dict[str, str]:
    return {ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"].get(
                BOUND_LABEL, ns.inputs["metadata"]["labels"][ENFORCE])
            for ns in plan.of_type("kubernetes:core/v1:Namespace")}


def _allowed_host_paths(plan, namespace: str) -> frozenset[str]:
    [ns] = [n for n in plan.of_type("kubernetes:core/v1:Namespace")
            if n.inputs["metadata"]["name"] == namespace]
    return frozenset({CACHE_HOST_PATH}) if BOUND_LABEL in ns.inputs["metadata"]["labels"] else frozenset()


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_enforces_its_level_and_warns_and_audits_at_restricted(plans, stack):
    plan = plans[stack]
    assert _levels(plan) == EXPECTED_LEVELS
    enforced = {ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"][ENFORCE]
                for ns in plan.of_type("kubernetes:core/v1:Namespace")}
    assert enforced == {**EXPECTED_LEVELS, "llm-serving": "privileged"}
    for ns in plan.of_type("kubernetes:core/v1:Namespace"):
        labels = ns.inputs["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/warn"] == "restricted"
        assert labels["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.parametrize("stack", STACKS)
def test_every_rendered_workload_meets_its_namespace_level(plans, stack):
    plan, levels = plans[stack], _levels(plans[stack])
    workloads = plan.of_type("kubernetes:apps/v1:Deployment")
    assert workloads
    for workload in workloads:
        namespace = workload.inputs["metadata"]["namespace"]
        assert problems_at(levels[namespace], pod_spec(workload.type, workload.inputs),
                           _allowed_host_paths(plan, namespace)) == [], workload.name


def _tgi_pod(plan):
    [tgi] = [d for d in plan.of_type("kubernetes:apps/v1:Deployment")
             if d.inputs["metadata"]["name"] == "tgi-llama-3-8b"]
    return tgi.inputs["spec"]["template"]["spec"]


def test_tgi_runs_as_root_with_everything_else_dropped(plans):
    """TGI 3.3.7's Dockerfile sets no USER and installs its interpreter under /root, so the
    container keeps uid 0; it gets no capabilities, no escalation and RuntimeDefault seccomp."""
    pod = _tgi_pod(plans["prod"])
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    tgi = pod["containers"][0]["securityContext"]
    assert tgi == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                   "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": False}
    assert "runAsNonRoot" not in tgi and "runAsUser" not in tgi


def test_the_weights_fetcher_and_its_hold_meet_restricted_but_for_the_cache_host_path(plans):
    pod = _tgi_pod(plans["prod"])
    non_root = [c for c in pod["initContainers"] if c["name"] in ("hold-weights", "fetch-weights")]
    assert len(non_root) == 2
    assert problems_at("restricted", {**pod, "containers": [], "initContainers": non_root}) == [
        "mounts hostPath volume 'model-cache'"]
    for container in non_root:
        assert container["securityContext"]["runAsUser"] == 10001
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_serving_pods_are_baseline_but_for_root_tgi_the_cache_and_its_chown(plans):
    """What restricted would still need: a non-root TGI, no hostPath, no root chown."""
    pod = _tgi_pod(plans["prod"])
    assert problems_at("restricted", pod) == [
        "mounts hostPath volume 'model-cache'",
        "init container 'prepare-cache' does not set runAsNonRoot: true",
        "init container 'prepare-cache' runs as uid 0",
        "init container 'prepare-cache' adds CHOWN (restricted allows only NET_BIND_SERVICE)",
        "container 'tgi' does not set runAsNonRoot: true"]
    assert problems_at("baseline", pod) == ["mounts hostPath volume 'model-cache'"]
    assert problems_at("baseline", pod, frozenset({CACHE_HOST_PATH})) == []


def test_namespace_labels_name_the_level():
    assert namespace_labels("baseline") == {"pod-security.kubernetes.io/enforce": "baseline",
                                            "pod-security.kubernetes.io/warn": "restricted",
                                            "pod-security.kubernetes.io/audit": "restricted"}
