"""Pod Security Admission as planned: each namespace's level (and why it is not higher), and
every workload we render meeting its namespace's level, with as much of restricted as the
image allows."""

from __future__ import annotations

import pytest

from components.pod_security import ENFORCE, namespace_labels
from policies.kubernetes import pod_spec
from policies.pod_security_standards import problems_at
from tests.conftest import STACKS

EXPECTED_LEVELS = {"llm-gateway": "restricted", "keda": "restricted", "llm-serving": "baseline",
                   "monitoring": "baseline", "node-agents": "privileged"}


def _levels(plan) -> dict[str, str]:
    return {ns.inputs["metadata"]["name"]: ns.inputs["metadata"]["labels"][ENFORCE]
            for ns in plan.of_type("kubernetes:core/v1:Namespace")}


@pytest.mark.parametrize("stack", STACKS)
def test_each_namespace_enforces_its_level_and_warns_and_audits_at_restricted(plans, stack):
    plan = plans[stack]
    assert _levels(plan) == EXPECTED_LEVELS
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
        assert problems_at(levels[namespace], pod_spec(workload.type, workload.inputs)) == [], workload.name


def _tgi_pod(plan):
    [tgi] = [d for d in plan.of_type("kubernetes:apps/v1:Deployment")
             if d.inputs["metadata"]["name"] == "tgi-llama-3-8b"]
    return tgi.inputs["spec"]["template"]["spec"]


def test_tgi_runs_as_root_with_everything_else_dropped(plans):
    """TGI 3.3.4's Dockerfile sets no USER and installs its interpreter under /root, so the
    container keeps uid 0; it gets no capabilities, no escalation and RuntimeDefault seccomp."""
    pod = _tgi_pod(plans["prod"])
    assert pod["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    tgi = pod["containers"][0]["securityContext"]
    assert tgi == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                   "seccompProfile": {"type": "RuntimeDefault"}, "readOnlyRootFilesystem": False}
    assert "runAsNonRoot" not in tgi and "runAsUser" not in tgi


def test_the_weights_fetcher_meets_restricted_even_in_the_baseline_namespace(plans):
    pod = _tgi_pod(plans["prod"])
    only_fetch = {**pod, "containers": [], "initContainers": pod["initContainers"]}
    assert problems_at("restricted", only_fetch) == []
    fetch = pod["initContainers"][0]["securityContext"]
    assert fetch["runAsUser"] == 10001 and fetch["readOnlyRootFilesystem"] is True


def test_the_serving_namespace_would_need_only_a_non_root_tgi_for_restricted(plans):
    pod = _tgi_pod(plans["prod"])
    assert problems_at("restricted", pod) == ["container 'tgi' does not set runAsNonRoot: true"]


def test_namespace_labels_name_the_level():
    assert namespace_labels("baseline") == {"pod-security.kubernetes.io/enforce": "baseline",
                                            "pod-security.kubernetes.io/warn": "restricted",
                                            "pod-security.kubernetes.io/audit": "restricted"}
