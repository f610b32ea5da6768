"""Security-relevant component settings, asserted from the plan the real program records:
each follows its config (or holds in every stack), so a one-line slip in a component fails here."""

from __future__ import annotations

import pytest

from llmops.offline.plan import run_plan
from tests.conftest import STACKS

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
SCHEME = "alb.ingress.kubernetes.io/scheme"


def _tgi_pods(plan):
    return {d.inputs["metadata"]["name"]: d.inputs["spec"]["template"]["spec"]
            for d in plan.of_type(DEPLOYMENT)
            if d.inputs["metadata"]["name"].startswith("tgi-")}


def _flag(args, flag):
    assert args.count(flag) == 1, args
    return args[args.index(flag) + 1]


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_alb_scheme_is_the_configured_one(plans, stack):
    plan = plans[stack]
    ingress = plan.one(INGRESS, "gateway-ingress").inputs
    assert ingress["metadata"]["annotations"][SCHEME] == plan.config.gateway.scheme


def test_an_internet_facing_gateway_is_asked_for_not_defaulted(plans):
    assert plans["dev"].config.gateway.scheme == "internal"
    public = run_plan("dev", overrides={"llmops:gateway.scheme": "internet-facing"})
    assert public.one(INGRESS, "gateway-ingress").inputs["metadata"]["annotations"][SCHEME] == (
        "internet-facing")


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_pod_gets_no_kubernetes_api_token(plans, stack):
    pod = plans[stack].one(DEPLOYMENT, "gateway-deployment").inputs["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_the_weights_fetcher_runs_unprivileged_in_every_model_pod(plans, stack):
    pods = _tgi_pods(plans[stack])
    assert pods
    for name, pod in pods.items():
        (fetch,) = [c for c in pod["initContainers"] if c["name"] == "fetch-weights"]
        security = fetch["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 0, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["capabilities"] == {"drop": ["ALL"]}, name


@pytest.mark.parametrize("stack", STACKS)
def test_tgi_caps_concurrent_requests_at_the_configured_value(plans, stack):
    plan = plans[stack]
    limits = {m.name: m.max_concurrent_requests for m in plan.config.models}
    pods = _tgi_pods(plan)
    assert pods
    for name, pod in pods.items():
        model = next(m for m in sorted(limits, key=len, reverse=True) if name.startswith(f"tgi-{m}"))
        tgi = next(c for c in pod["containers"] if c["name"] == "tgi")
        assert _flag(tgi["args"], "--max-concurrent-requests") == str(limits[model]), name


def test_a_changed_concurrency_limit_reaches_the_tgi_flags():
    plan = run_plan("dev", overrides={"llmops:models.0.maxConcurrentRequests": 17})
    (pod,) = _tgi_pods(plan).values()
    tgi = next(c for c in pod["containers"] if c["name"] == "tgi")
    assert _flag(tgi["args"], "--max-concurrent-requests") == "17"
