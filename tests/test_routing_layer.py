"""The prefix-aware routing layer in the plans: a vllm-router per model track, discovering only
that track's ready pods, reachable only from the gateway, and the gateway's routing document
pointing each track's OpenAI routes at it (components/router.py)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from components.gateway_routes import routing_document
from components.network_policies import PROMETHEUS_POD
from components.router import ROUTER_PORT, is_routed, router_args
from llmops.offline.plan import run_plan
from policies.network_reachability import External, Pod, allowed, policies_from
from serving.gateway.config import GatewayConfig
from serving.gateway.routing import Router
from tests.conftest import STACKS

ROOT = Path(__file__).resolve().parents[1]

DEPLOYMENT, ROLE = "kubernetes:apps/v1:Deployment", "kubernetes:rbac.authorization.k8s.io/v1:Role"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
POD_MONITOR = "kubernetes:monitoring.coreos.com/v1:PodMonitor"


def _routers(plan) -> dict[str, dict]:
    return {d.inputs["metadata"]["name"]: d.inputs for d in plan.of_type(DEPLOYMENT)
            if d.inputs["metadata"]["labels"].get("app.kubernetes.io/name") == "vllm-router"}


def _flag(args: list[str], flag: str) -> list[str]:
    """The values after `flag`, up to the next flag."""
    start = args.index(flag) + 1
    end = next((i for i in range(start, len(args)) if args[i].startswith("--")), len(args))
    return args[start:end]


def _routing(plan) -> dict:
    return yaml.safe_load(routing_document(plan.outputs["modelRoutes"], plan.config.models))["models"]


@pytest.mark.parametrize("stack", STACKS)
def test_every_model_that_may_run_more_than_one_replica_gets_a_router_per_track(plans, stack):
    plan = plans[stack]
    routers = _routers(plan)
    expected = set()
    for model in plan.config.models:
        if model.replicas.max > 1:
            tracks = ["blue", "green"] if model.blue_green else ["stable"]
            tracks += ["canary"] if model.canary else []
            expected |= {f"router-{model.name}" if t == "stable" else f"router-{model.name}-{t}"
                         for t in tracks}
    assert expected and set(routers) == expected


def test_prod_routers_run_two_replicas_from_the_platform_image_at_the_pinned_release(plans):
    routers = _routers(plans["prod"])
    for name, deployment in routers.items():
        assert deployment["spec"]["replicas"] == 2, name  # both prod models have a floor of 2
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["vllm-router"]
        assert container["image"].endswith("/llm-gateway:" + plans["prod"].config.serving.weights_image_tag)
        model = deployment["metadata"]["labels"]["llmops.io/model"]
        assert _flag(container["args"], "--policy") == [
            "cache_aware" if model == "qwen-2-5-32b" else "consistent_hash"], name  # qwen: vLLM
    assert "vllm-router==0.1.17" in (ROOT / "serving" / "Dockerfile").read_text()


def test_each_track_router_discovers_only_its_own_tracks_pods_in_the_serving_namespace(plans):
    routers = _routers(plans["prod"])
    for name, track in (("router-llama-3-8b", "stable"), ("router-llama-3-8b-canary", "canary")):
        args = routers[name]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--service-discovery" in args
        assert _flag(args, "--service-discovery-namespace") == ["llm-serving"]
        assert sorted(_flag(args, "--selector")) == sorted([
            "app.kubernetes.io/name=tgi", "llmops.io/model=llama-3-8b", f"llmops.io/track={track}"])
        assert _flag(args, "--service-discovery-port") == ["8080"]  # TGI's HTTP port
    qwen = routers["router-qwen-2-5-32b"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert _flag(qwen, "--service-discovery-port") == ["8000"]  # vLLM's


def test_router_discovery_may_only_read_pods_in_the_serving_namespace(plans):
    roles = [r.inputs for r in plans["prod"].of_type(ROLE)
             if r.inputs["metadata"]["name"].startswith("router-")]
    assert roles
    for role in roles:
        assert role["metadata"]["namespace"] == "llm-serving"
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"],
                                  "verbs": ["get", "list", "watch"]}]
    assert not [r for r in plans["prod"].of_type("kubernetes:rbac.authorization.k8s.io/v1:ClusterRole")
                if r.inputs["metadata"]["name"].startswith("router-")]


def test_routers_have_a_disruption_budget_and_are_scraped(plans):
    budgets = {b.inputs["metadata"]["name"] for b in plans["prod"].of_type(PDB)}
    assert set(_routers(plans["prod"])) <= budgets
    monitors = {m.inputs["metadata"]["name"]: m.inputs["spec"] for m in plans["prod"].of_type(POD_MONITOR)}
    endpoint = monitors["llm-router"]["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics"
    assert {"targetLabel": "job", "replacement": "vllm-router"} in endpoint["relabelings"]


def test_canary_traffic_stays_within_its_track(plans):
    """The gateway picks the track (its canary split); each track's backend names that track's
    router, whose discovery selects only that track's pods."""
    routing = _routing(plans["prod"])["llama-3-8b"]["backends"]
    assert routing["canary"]["router"] == f"http://router-llama-3-8b-canary.llm-serving.svc:{ROUTER_PORT}"
    assert routing["stable"]["router"] == f"http://router-llama-3-8b.llm-serving.svc:{ROUTER_PORT}"
    config = GatewayConfig.model_validate({"models": _routing(plans["prod"])})
    router = Router(config.models, config.breaker, 8)
    canary_keys = [f"key-{i}" for i in range(400) if router.pick_track("llama-3-8b", f"key-{i}") == "canary"]
    assert canary_keys  # 5% of keys
    for key in canary_keys[:5]:
        backend = router.candidates("llama-3-8b", key)[0]
        assert str(backend.url_for("/v1/chat/completions")).startswith("http://router-llama-3-8b-canary.")


def test_blue_green_sends_the_stable_track_to_the_live_colours_router(plans):
    backends = _routing(plans["staging"])["qwen-2-5-32b"]["backends"]
    live = next(m for m in plans["staging"].config.models if m.name == "qwen-2-5-32b").blue_green.active
    assert backends["stable"]["router"] == f"http://router-qwen-2-5-32b-{live}.llm-serving.svc:{ROUTER_PORT}"


def test_openai_routes_go_to_the_router_and_tgi_routes_to_the_model_service(plans):
    """vllm-router 0.1.17 rewrites a /generate body into SGLang's shape and drops TGI's `inputs`,
    and places /generate_stream by load alone (no token ids for that route), so TGI's own routes
    keep going to the Service; its OpenAI routes go to the router (docs/routing.md: placed by
    load there too, as TGI serves no render API)."""
    config = GatewayConfig.model_validate({"models": _routing(plans["prod"])})
    backend = Router(config.models, config.breaker, 8).backends[("llama-3-8b", "stable")]
    assert str(backend.url_for("/v1/completions")) == "http://router-llama-3-8b.llm-serving.svc:8100/v1/completions"
    assert str(backend.url_for("/generate")) == "http://tgi-llama-3-8b.llm-serving.svc:8080/generate"
    assert str(backend.url_for("/generate_stream")).startswith("http://tgi-llama-3-8b.llm-serving.svc:8080/")


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_tgi_routers_hash_the_gateways_prompt_prefix_key_and_vllm_routers_keep_cache_aware(plans, stack):
    """TGI 3.3.7 serves no render API, so cache_aware would place its requests by load alone: its
    routers run consistent_hash, and the gateway sets the x-session-id they hash from the
    prompt's leading text (serving/gateway/affinity.py); vLLM's keep their token-id prefix tree."""
    plan = plans[stack]
    engines = {m.name: m.engine for m in plan.config.models}
    routing = _routing(plan)
    config = GatewayConfig.model_validate({"models": routing})
    gateway = Router(config.models, config.breaker, 8)
    chat = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    seen = set()
    for name, deployment in _routers(plan).items():
        model = deployment["metadata"]["labels"]["llmops.io/model"]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        policy = _flag(args, "--policy")
        seen.add(engines[model])
        backends = routing[model]["backends"]
        if engines[model] == "tgi":
            assert policy == ["consistent_hash"], name
            assert all(b["routerAffinity"] == "prompt-prefix" for b in backends.values() if "router" in b)
            headers = gateway.backends[(model, "stable")].headers_for("/v1/chat/completions", chat)
            assert len(headers["x-session-id"]) == 32
            assert "x-session-id" not in gateway.backends[(model, "stable")].headers_for(
                "/generate", {"inputs": "hi"})  # TGI's own routes go to the Service
        else:
            assert policy == ["cache_aware"], name
            assert not any("routerAffinity" in b for b in backends.values())
            assert "x-session-id" not in gateway.backends[(model, "stable")].headers_for(
                "/v1/chat/completions", chat)
    assert seen == {"tgi", "vllm"}


def test_a_model_with_one_replica_at_most_keeps_its_service_and_gets_no_router():
    plan = run_plan("dev", overrides={"llmops:models.0.replicas.max": 1})
    assert not _routers(plan)
    backend = _routing(plan)["llama-3-8b"]["backends"]["stable"]
    assert backend == {"url": "http://tgi-llama-3-8b.llm-serving.svc:8080"}
    assert not is_routed(plan.config.models[0])


def test_static_router_flags_need_workers_or_a_model_to_discover():
    with pytest.raises(ValueError, match="static workers, or a model and its namespace"):
        router_args()


ROUTER_POD = {"app.kubernetes.io/name": "vllm-router", "app.kubernetes.io/component": "router",
              "app.kubernetes.io/part-of": "llmops", "llmops.io/model": "llama-3-8b",
              "llmops.io/track": "stable"}
TGI_POD = {"app.kubernetes.io/name": "tgi", "app.kubernetes.io/component": "model-server",
           "llmops.io/model": "llama-3-8b", "llmops.io/track": "stable"}


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_gateway_reaches_a_router_and_the_router_reaches_only_model_servers(plans, stack):
    plan = plans[stack]
    policies = policies_from(plan.resources)
    private = plan.config.network.layout()[0].private
    ip = lambda n: str(ipaddress.ip_network(private)[n])  # noqa: E731
    router = Pod("llm-serving", ROUTER_POD, ip=ip(30))
    gateway = Pod("llm-gateway", {"app.kubernetes.io/name": "llm-gateway"}, ip=ip(31))
    tgi = Pod("llm-serving", TGI_POD, ip=ip(32))
    prometheus = Pod("monitoring", PROMETHEUS_POD, ip=ip(33))
    stranger = Pod("default", {"app": "anything"}, ip=ip(34))
    assert allowed(policies, gateway, router, ROUTER_PORT)
    assert allowed(policies, router, tgi, 8080)
    assert allowed(policies, prometheus, router, 29000)
    for caller in (stranger, tgi, prometheus):
        assert not allowed(policies, caller, router, ROUTER_PORT), caller
    assert not allowed(policies, gateway, router, 29000)
    assert not allowed(policies, router, External("203.0.113.7"), 443)   # no way out of the VPC
    assert not allowed(policies, router, gateway, 8000)
    assert allowed(policies, router, External(ip(40)), 443)  # the API server's ENIs: discovery


@pytest.mark.parametrize("stack", ["staging", "prod"])  # dev serves no model on vLLM
def test_routed_vllm_replicas_serve_the_render_api_the_router_keys_its_prefix_tree_on(plans, stack):
    """vllm-router's cache_aware asks each replica's render API for the prompt's token ids;
    vLLM 0.34.0 answers it 403 without --enable-scale-out, and the router then places every
    request by load alone (tests/routing/test_router_inputs.py shows both)."""
    plan = plans[stack]
    models = {m.name: m for m in plan.config.models}
    servers = [d.inputs for d in plan.of_type(DEPLOYMENT)
               if d.inputs["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") == "vllm"]
    assert servers
    for server in servers:
        model = models[server["spec"]["selector"]["matchLabels"]["llmops.io/model"]]
        args = server["spec"]["template"]["spec"]["containers"][0]["args"]
        assert ("--enable-scale-out" in args) == is_routed(model), model.name
