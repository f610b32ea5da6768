"""Who may talk to whom inside the cluster, asserted on the NetworkPolicies each stack plans,
and the evaluator that answers it, checked against the NetworkPolicy semantics."""

from __future__ import annotations

import ipaddress
import json

import kubernetes_validate
import pytest

from components.network_policies import PROMETHEUS_POD
from llmops.offline.manifests import manifests
from policies.network_reachability import (
    External,
    Pod,
    Policy,
    allowed,
    default_denies_ingress,
    policies_from,
)
from tests.conftest import STACKS

TGI = {"app.kubernetes.io/name": "tgi", "app.kubernetes.io/component": "model-server",
       "llmops.io/model": "llama-3-8b", "llmops.io/track": "stable"}
VLLM = {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/component": "model-server",
        "llmops.io/model": "qwen-2-5-32b", "llmops.io/track": "stable"}
GATEWAY = {"app.kubernetes.io/name": "llm-gateway", "app.kubernetes.io/part-of": "llmops"}
OUR_NAMESPACES = ("llm-serving", "llm-gateway", "monitoring", "keda", "node-agents")


def _endpoints(plan):
    """The platform's pods as the evaluator sees them, with addresses from this stack's VPC."""
    layout = plan.config.network.layout()
    public, private = layout[0].public, layout[0].private
    host = lambda cidr, n: str(ipaddress.ip_network(cidr)[n])  # noqa: E731
    return {
        "tgi": Pod("llm-serving", TGI, ip=host(private, 11)),
        "vllm": Pod("llm-serving", VLLM, ip=host(private, 22)),
        "gateway": Pod("llm-gateway", GATEWAY, ip=host(private, 12)),
        "prometheus": Pod("monitoring", PROMETHEUS_POD, ip=host(private, 13)),
        "grafana": Pod("monitoring", {"app.kubernetes.io/name": "grafana"}, ip=host(private, 14)),
        "keda": Pod("keda", {"app": "keda-operator"}, ip=host(private, 15)),
        "dcgm": Pod("node-agents", {"app.kubernetes.io/name": "dcgm-exporter"}, ip=host(private, 16)),
        "fluent-bit": Pod("node-agents", {"app.kubernetes.io/name": "aws-for-fluent-bit",
                                          "app.kubernetes.io/instance": "aws-for-fluent-bit"},
                          ip=host(private, 19)),
        "dns": Pod("kube-system", {"k8s-app": "kube-dns"}, ip=host(private, 17)),
        "stranger": Pod("default", {"app": "anything"}, ip=host(private, 18)),
        "public-eni": External(host(public, 20)),
        "private-eni": External(host(private, 21)),
        "s3": External("52.218.128.10"),
        "internet": External("203.0.113.7"),
    }


@pytest.mark.parametrize("stack", STACKS)
def test_only_the_gateway_reaches_tgi_and_only_prometheus_scrapes_it(plans, stack):
    policies, ep = policies_from(plans[stack].resources), _endpoints(plans[stack])
    assert allowed(policies, ep["gateway"], ep["tgi"], 8080)
    assert allowed(policies, ep["prometheus"], ep["tgi"], 9000)
    for other in ("stranger", "grafana", "keda", "dcgm", "private-eni", "public-eni"):
        assert not allowed(policies, ep[other], ep["tgi"], 8080), other
        assert not allowed(policies, ep[other], ep["tgi"], 9000), other
    assert not allowed(policies, ep["gateway"], ep["tgi"], 9000)     # the gateway does not scrape
    assert not allowed(policies, ep["prometheus"], ep["tgi"], 8080)  # nor Prometheus generate
    # TGI pods do not talk to each other either (shards talk over localhost/NCCL in-pod)
    assert not allowed(policies, ep["tgi"], Pod("llm-serving", TGI), 8080)


@pytest.mark.parametrize("stack", STACKS)
def test_vllm_pods_take_the_gateway_and_prometheus_on_their_one_port_and_no_one_else(plans, stack):
    """vLLM serves its API and /metrics on port 8000 (FrontendArgs.port in vllm 0.34.0)."""
    policies, ep = policies_from(plans[stack].resources), _endpoints(plans[stack])
    assert allowed(policies, ep["gateway"], ep["vllm"], 8000)
    assert allowed(policies, ep["prometheus"], ep["vllm"], 8000)
    for other in ("stranger", "grafana", "keda", "dcgm", "private-eni", "public-eni", "tgi"):
        assert not allowed(policies, ep[other], ep["vllm"], 8000), other
    assert allowed(policies, ep["vllm"], ep["s3"], 443)
    assert not allowed(policies, ep["vllm"], ep["internet"], 22)


@pytest.mark.parametrize("stack", STACKS)
def test_tgi_egress_is_dns_and_https_out_of_the_vpc(plans, stack):
    plan = plans[stack]
    policies, ep = policies_from(plan.resources), _endpoints(plan)
    assert allowed(policies, ep["tgi"], ep["dns"], 53, "UDP")
    assert allowed(policies, ep["tgi"], ep["dns"], 53, "TCP")
    assert allowed(policies, ep["tgi"], ep["s3"], 443)               # weights through the S3 endpoint
    assert not allowed(policies, ep["tgi"], ep["s3"], 80)
    assert not allowed(policies, ep["tgi"], ep["internet"], 22)
    assert not allowed(policies, ep["tgi"], ep["gateway"], 8000)     # no lateral moves
    assert not allowed(policies, ep["tgi"], ep["prometheus"], 9090)
    assert not allowed(policies, ep["tgi"], ep["public-eni"], 443)   # nothing in the VPC but endpoints
    assert not allowed(policies, ep["tgi"], External("169.254.169.254"), 80)  # no IMDS
    # STS through its interface endpoint when the environment has one (prod lists it)
    has_sts = "sts" in plan.config.network.interface_endpoints
    assert allowed(policies, ep["tgi"], ep["private-eni"], 443) == has_sts


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_accepts_only_its_load_balancer_subnets_and_prometheus(plans, stack):
    plan = plans[stack]
    policies, ep = policies_from(plan.resources), _endpoints(plan)
    lb, other = (("public-eni", "private-eni") if plan.config.gateway.scheme == "internet-facing"
                 else ("private-eni", "public-eni"))
    assert allowed(policies, ep[lb], ep["gateway"], 8000)
    assert not allowed(policies, ep[other], ep["gateway"], 8000)
    assert not allowed(policies, ep[lb], ep["gateway"], 8001)
    assert not allowed(policies, ep["internet"], ep["gateway"], 8000)
    assert allowed(policies, ep["prometheus"], ep["gateway"], 8000)
    # The limit of an ipBlock, stated: an internal ALB's ENIs share the private subnets with the
    # pods, so any pod there can reach the gateway port (and still needs an API key); an
    # internet-facing ALB's public subnets hold no pods, so none can.
    internal = plan.config.gateway.scheme == "internal"
    assert allowed(policies, ep["stranger"], ep["gateway"], 8000) == internal
    assert allowed(policies, ep["dcgm"], ep["gateway"], 8000) == internal
    assert not allowed(policies, ep["tgi"], ep["gateway"], 8000)     # TGI's egress stops it anyway


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateway_may_call_only_tgi_and_dns(plans, stack):
    policies, ep = policies_from(plans[stack].resources), _endpoints(plans[stack])
    assert allowed(policies, ep["gateway"], ep["tgi"], 8080)
    assert allowed(policies, ep["gateway"], ep["dns"], 53, "UDP")
    for target, port in (("internet", 443), ("s3", 443), ("prometheus", 9090), ("keda", 6443),
                         ("stranger", 80)):
        assert not allowed(policies, ep["gateway"], ep[target], port), target
    assert not allowed(policies, ep["gateway"], External("169.254.169.254"), 80)  # no IMDS


@pytest.mark.parametrize("stack", STACKS)
def test_the_log_shipper_sends_only_https_to_aws_and_the_api_server(plans, stack):
    """It reads every container's log lines (API keys in a careless log line, prompts): it may
    reach the private subnets' ENIs and AWS outside the VPC on 443, and nothing else."""
    policies, ep = policies_from(plans[stack].resources), _endpoints(plans[stack])
    shipper = ep["fluent-bit"]
    assert allowed(policies, shipper, ep["private-eni"], 443)        # API server, logs/STS endpoints
    assert allowed(policies, shipper, ep["internet"], 443)           # public AWS endpoints
    assert allowed(policies, shipper, ep["dns"], 53, "UDP")
    for target, port in (("tgi", 8080), ("gateway", 8000), ("prometheus", 9090), ("stranger", 80),
                         ("internet", 80), ("public-eni", 443)):
        assert not allowed(policies, shipper, ep[target], port), target
    assert not allowed(policies, shipper, External("169.254.169.254"), 80)  # no IMDS


@pytest.mark.parametrize("stack", STACKS)
def test_services_the_gateway_calls_keep_service_port_equal_to_container_port(plans, stack):
    """The VPC CNI resolves egress to a ClusterIP only when the Service port equals the
    container port (named ports by the same name): otherwise gateway -> TGI would be dropped."""
    plan = plans[stack]
    serving = [d for d in plan.of_type("kubernetes:apps/v1:Deployment")
               if d.inputs["metadata"]["namespace"] == "llm-serving"]
    # per engine: TGI's http is 8080, vLLM's 8000
    container_ports = {(d.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], p["name"]):
                       p["containerPort"] for d in serving
                       for c in d.inputs["spec"]["template"]["spec"]["containers"]
                       for p in c.get("ports", [])}
    services = [s for s in plan.of_type("kubernetes:core/v1:Service")
                if s.inputs["metadata"]["namespace"] == "llm-serving"]
    assert services
    for service in services:
        engine = service.inputs["spec"]["selector"]["app.kubernetes.io/name"]
        for port in service.inputs["spec"]["ports"]:
            assert port["targetPort"] == port["name"], service.name
            assert port["port"] == container_ports[(engine, port["name"])], service.name


@pytest.mark.parametrize("stack", STACKS)
def test_monitoring_keda_and_node_agents_accept_only_their_callers(plans, stack):
    policies, ep = policies_from(plans[stack].resources), _endpoints(plans[stack])
    assert allowed(policies, ep["keda"], ep["prometheus"], 9090)     # the scaler's queries
    assert allowed(policies, ep["grafana"], ep["prometheus"], 9090)  # same namespace
    assert not allowed(policies, ep["stranger"], ep["prometheus"], 9090)
    assert not allowed(policies, ep["gateway"], ep["grafana"], 3000)
    # the EKS control plane (ENIs in the private subnets) reaches webhooks and the metrics API
    assert allowed(policies, ep["private-eni"], ep["keda"], 6443)
    assert allowed(policies, ep["private-eni"], ep["keda"], 9443)
    assert allowed(policies, ep["private-eni"], ep["prometheus"], 10250)
    # ...and so can any pod in those subnets, on those ports only: an ipBlock cannot tell the
    # control plane's ENIs from pods (both are private-subnet addresses); the metrics API and
    # webhooks authenticate their callers (TLS, delegated authn)
    assert allowed(policies, ep["stranger"], ep["keda"], 6443)
    assert not allowed(policies, ep["stranger"], ep["keda"], 9666)   # the operator's gRPC
    assert not allowed(policies, ep["stranger"], ep["keda"], 8080)   # its metrics
    assert not allowed(policies, ep["public-eni"], ep["keda"], 6443)
    assert allowed(policies, ep["prometheus"], ep["dcgm"], 9400)
    assert not allowed(policies, ep["stranger"], ep["dcgm"], 9400)


@pytest.mark.parametrize("stack", STACKS)
def test_every_namespace_the_stack_creates_denies_ingress_by_default(plans, stack):
    plan = plans[stack]
    created = {r.inputs["metadata"]["name"] for r in plan.of_type("kubernetes:core/v1:Namespace")}
    assert created == set(OUR_NAMESPACES)
    policies = policies_from(plan.resources)
    assert [ns for ns in created if not default_denies_ingress(policies, ns)] == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_vpc_cni_enforces_network_policies(plans, stack):
    cni = [a for a in plans[stack].of_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
    assert len(cni) == 1
    assert json.loads(cni[0].inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_network_policies_wait_for_their_namespaces_not_for_model_rollouts(plans):
    plan = plans["prod"]
    namespaces = {r.urn for r in plan.of_type("kubernetes:core/v1:Namespace")}
    deployments = {r.urn for r in plan.of_type("kubernetes:apps/v1:Deployment")}
    for policy in plan.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        assert set(policy.dependencies) & namespaces, policy.name
        assert not set(policy.dependencies) & deployments, policy.name


@pytest.mark.parametrize("stack", STACKS)
def test_policies_and_namespaces_validate_against_the_cluster_schema(plans, stack):
    plan = plans[stack]
    kinds = {"NetworkPolicy": 0, "Namespace": 0}
    for manifest in manifests(plan.resources):
        if manifest["kind"] in kinds:
            kubernetes_validate.validate(manifest, plan.config.cluster.version, strict=True)
            kinds[manifest["kind"]] += 1
    assert kinds["NetworkPolicy"] >= 2 * len(OUR_NAMESPACES) and kinds["Namespace"] == len(OUR_NAMESPACES)


# -- the evaluator against the NetworkPolicy semantics ------------------------------------------

def _policy(ns, spec, name="p"):
    return Policy(ns, name, spec)


def test_a_pod_no_policy_selects_accepts_everything():
    policies = [_policy("a", {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress"]})]
    assert allowed(policies, Pod("b"), Pod("a", {"app": "y"}), 80)
    assert not allowed(policies, Pod("b"), Pod("a", {"app": "x"}), 80)


def test_a_pod_selector_peer_means_the_policy_namespace_only():
    policies = [_policy("a", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {
        "matchLabels": {"role": "client"}}}]}]})]
    assert allowed(policies, Pod("a", {"role": "client"}), Pod("a"), 80)
    assert not allowed(policies, Pod("b", {"role": "client"}), Pod("a"), 80)


def test_namespace_and_pod_selectors_in_one_peer_must_both_match():
    peer = {"namespaceSelector": {"matchLabels": {"team": "ml"}},
            "podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["c"]}]}}
    policies = [_policy("a", {"podSelector": {}, "ingress": [{"from": [peer]}]})]
    namespaces = {"b": {"team": "ml"}, "c": {}}
    assert allowed(policies, Pod("b", {"role": "c"}), Pod("a"), 80, namespaces=namespaces)
    assert not allowed(policies, Pod("b", {"role": "d"}), Pod("a"), 80, namespaces=namespaces)
    assert not allowed(policies, Pod("c", {"role": "c"}), Pod("a"), 80, namespaces=namespaces)


def test_ip_blocks_honour_except_and_ports_honour_protocol_and_names():
    policies = [_policy("a", {"podSelector": {}, "ingress": [{
        "from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.0.5.0/24"]}}],
        "ports": [{"protocol": "TCP", "port": "http"}, {"protocol": "UDP", "port": 53}]}]})]
    target = Pod("a", named_ports={"http": 8080})
    assert allowed(policies, External("10.0.1.1"), target, 8080)
    assert not allowed(policies, External("10.0.5.1"), target, 8080)
    assert not allowed(policies, External("10.1.0.1"), target, 8080)
    assert not allowed(policies, External("10.0.1.1"), target, 8081)
    assert allowed(policies, External("10.0.1.1"), target, 53, "UDP")
    assert not allowed(policies, External("10.0.1.1"), target, 53, "TCP")


def test_egress_isolation_needs_the_egress_policy_type():
    egress = {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {
        "cidr": "0.0.0.0/0"}}], "ports": [{"protocol": "TCP", "port": 443}]}]}
    assert allowed([_policy("a", egress)], Pod("a"), External("1.2.3.4"), 443)
    assert not allowed([_policy("a", egress)], Pod("a"), External("1.2.3.4"), 80)
    assert not allowed([_policy("a", egress)], Pod("a"), Pod("b"), 443)  # pods match no ipBlock without an IP
    ingress_only = {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert allowed([_policy("a", ingress_only)], Pod("a"), External("1.2.3.4"), 80)


def test_default_deny_is_an_all_pods_ingress_policy_without_rules():
    assert default_denies_ingress([_policy("a", {"podSelector": {}, "policyTypes": ["Ingress"]})], "a")
    assert not default_denies_ingress([_policy("a", {"podSelector": {}, "ingress": [{}]})], "a")
    assert not default_denies_ingress([_policy("a", {"podSelector": {"matchLabels": {"x": "y"}}})], "a")
    assert not default_denies_ingress([_policy("b", {"podSelector": {}})], "a")
