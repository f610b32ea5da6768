"""NetworkPolicies for every namespace the workloads stack creates, enforced by the VPC CNI's
network policy agent (`enableNetworkPolicy` on the vpc-cni add-on, components/cluster.py).

Each namespace denies all ingress by default; then, and only then:
- model-server pods (TGI, vLLM) accept the gateway and their prefix-aware routers on their
  engines' HTTP ports and Prometheus on their metrics ports; their egress is DNS plus HTTPS for
  the weights download (S3, STS), never other pods.
- the routers (components/router.py) accept the gateway only (so auth, budgets and audit stay
  in front of the models) and Prometheus on their metrics port; their egress is DNS, the model
  servers' HTTP ports, and HTTPS to the API server's ENIs (the pod watch of their discovery).
- the gateway accepts the load balancer and Prometheus. The ALB sends to pod IPs (target-type
  ip) from its own ENIs, which are not pods and live in the subnets of its scheme (public for
  internet-facing, private for internal): only an ipBlock of those subnets can name them.
- monitoring, KEDA and the node agents accept their own namespace, Prometheus, and the EKS
  control plane (its ENIs are in the cluster's private subnets) on webhook/metrics-API ports.
- Fluent Bit (node-agents) may send only DNS and HTTPS: to the private subnets (the API
  server's ENIs for pod metadata, the logs and STS interface endpoints) and out of the VPC
  (those services' public endpoints where no interface endpoint exists); no other pod.

Pure builders return manifests as plain camelCase dicts (tested directly and through the
evaluator in policies/network_reachability.py); the component only creates them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.engines import COMPONENT_LABEL, ENGINES
from components.router import ROUTER_COMPONENT, ROUTER_METRICS_PORT, ROUTER_NAME, ROUTER_PORT
from vocabulary.config.network import NetworkConfig

ANYWHERE = "0.0.0.0/0"
DNS_PORT = 53
HTTPS_PORT = 443
PROMETHEUS_PORT = 9090
PROMETHEUS_POD = {"app.kubernetes.io/name": "prometheus",
                  "operator.prometheus.io/name": "kube-prometheus-stack-prometheus"}
MODEL_SERVER_POD = dict(COMPONENT_LABEL)
#: every engine's API port, and where each serves /metrics (vLLM: on its API port)
SERVER_PORTS = sorted({e.http_port for e in ENGINES.values()})
SERVER_METRICS_PORTS = sorted({e.metrics_port or e.http_port for e in ENGINES.values()})
GATEWAY_POD = {"app.kubernetes.io/name": "llm-gateway"}
ROUTER_POD = {"app.kubernetes.io/name": ROUTER_NAME, **ROUTER_COMPONENT}
KUBE_DNS_POD = {"k8s-app": "kube-dns"}
#: Fluent Bit's pods (aws-for-fluent-bit chart's selector labels; components/log_shipping.py).
LOG_SHIPPER_POD = {"app.kubernetes.io/name": "aws-for-fluent-bit"}
#: kube-prometheus-stack's operator admission webhook (prometheusOperator.tls.internalPort).
OPERATOR_WEBHOOK_PORT = 10250
#: KEDA 2.17: metrics API server container port and admission webhooks port.
KEDA_METRICS_API_PORT, KEDA_WEBHOOK_PORT = 6443, 9443
#: dcgm-exporter and node-exporter metrics ports.
DCGM_PORT, NODE_EXPORTER_PORT = 9400, 9100


@dataclass(frozen=True)
class Namespaces:
    serving: str
    gateway: str
    monitoring: str
    keda: str
    node_agents: str


@dataclass(frozen=True)
class NetworkIsolationArgs:
    """Names and address ranges the policies need (from typed config, never raw config)."""

    namespaces: Namespaces
    gateway_port: int
    vpc_cidr: str
    load_balancer_cidrs: Sequence[str]   # subnets the ALB's ENIs are placed in
    control_plane_cidrs: Sequence[str]   # the cluster's subnets (EKS control-plane ENIs)
    aws_endpoint_cidrs: Sequence[str]    # subnets of in-VPC interface endpoints TGI pods use (STS)
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the namespaces


def address_ranges(network: NetworkConfig, scheme: str) -> dict[str, list[str]]:
    """The CIDRs the policies name, from the environment's subnet layout.

    The load balancer controller places an internet-facing ALB in the public subnets
    (kubernetes.io/role/elb) and an internal one in the private subnets; EKS puts its
    control-plane ENIs and the interface endpoints in the private subnets.
    """
    layout = network.layout()
    private, public = [p.private for p in layout], [p.public for p in layout]
    return {"load_balancer_cidrs": public if scheme == "internet-facing" else private,
            "control_plane_cidrs": private,
            "aws_endpoint_cidrs": private if "sts" in network.interface_endpoints else []}


def _tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": p} for p in ports]


def _in_namespace(namespace: str, pod: Mapping[str, str] | None = None) -> dict[str, Any]:
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": namespace}}}
    if pod is not None:
        peer["podSelector"] = {"matchLabels": dict(pod)}
    return peer


def _dns_rule() -> dict[str, Any]:
    return {"to": [_in_namespace("kube-system", KUBE_DNS_POD)],
            "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}


def _blocks(cidrs: Sequence[str]) -> list[dict[str, Any]]:
    return [{"ipBlock": {"cidr": c}} for c in cidrs]


def manifest(namespace: str, name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "llmops"}},
            "spec": dict(spec)}


def default_deny_ingress(namespace: str) -> dict[str, Any]:
    """Every pod of the namespace is isolated for ingress; the other policies open holes."""
    return manifest(namespace, "default-deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})


def serving_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    ns = args.namespaces
    prometheus = _in_namespace(ns.monitoring, PROMETHEUS_POD)
    # HTTPS for the init container's weights download: S3 answers on public addresses (the
    # gateway endpoint routes them; its prefix list cannot be a NetworkPolicy peer), STS on
    # public addresses or on interface endpoint ENIs in the VPC. Nothing else in the VPC.
    https = [{"to": [{"ipBlock": {"cidr": ANYWHERE, "except": [args.vpc_cidr]}}],
              "ports": _tcp(HTTPS_PORT)}]
    if args.aws_endpoint_cidrs:
        https.append({"to": _blocks(args.aws_endpoint_cidrs), "ports": _tcp(HTTPS_PORT)})
    return [
        default_deny_ingress(ns.serving),
        manifest(ns.serving, "model-servers-from-gateway", {
            "podSelector": {"matchLabels": MODEL_SERVER_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.gateway, GATEWAY_POD)], "ports": _tcp(*SERVER_PORTS)}]}),
        manifest(ns.serving, "model-servers-metrics-from-prometheus", {
            "podSelector": {"matchLabels": MODEL_SERVER_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [prometheus], "ports": _tcp(*SERVER_METRICS_PORTS)}]}),
        manifest(ns.serving, "model-servers-egress", {
            "podSelector": {"matchLabels": MODEL_SERVER_POD}, "policyTypes": ["Egress"],
            "egress": [_dns_rule(), *https]}),
        *router_policies(args),
    ]


def router_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    """gateway -> router -> model servers, and nothing else reaches a router."""
    ns = args.namespaces
    routers = _in_namespace(ns.serving, ROUTER_POD)
    return [
        manifest(ns.serving, "routers-from-gateway", {
            "podSelector": {"matchLabels": ROUTER_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.gateway, GATEWAY_POD)], "ports": _tcp(ROUTER_PORT)}]}),
        manifest(ns.serving, "routers-metrics-from-prometheus", {
            "podSelector": {"matchLabels": ROUTER_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.monitoring, PROMETHEUS_POD)],
                         "ports": _tcp(ROUTER_METRICS_PORT)}]}),
        manifest(ns.serving, "model-servers-from-routers", {
            "podSelector": {"matchLabels": MODEL_SERVER_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [routers], "ports": _tcp(*SERVER_PORTS)}]}),
        manifest(ns.serving, "routers-egress", {
            "podSelector": {"matchLabels": ROUTER_POD}, "policyTypes": ["Egress"],
            "egress": [_dns_rule(),
                       {"to": [_in_namespace(ns.serving, MODEL_SERVER_POD)], "ports": _tcp(*SERVER_PORTS)},
                       {"to": _blocks(args.control_plane_cidrs), "ports": _tcp(HTTPS_PORT)}]}),
    ]


def gateway_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    ns = args.namespaces
    return [
        default_deny_ingress(ns.gateway),
        manifest(ns.gateway, "gateway-from-load-balancer", {
            "podSelector": {"matchLabels": GATEWAY_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": _blocks(args.load_balancer_cidrs), "ports": _tcp(args.gateway_port)}]}),
        manifest(ns.gateway, "gateway-metrics-from-prometheus", {
            "podSelector": {"matchLabels": GATEWAY_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.monitoring, PROMETHEUS_POD)],
                         "ports": _tcp(args.gateway_port)}]}),
        # the gateway's only upstreams are the model Services the stack generates its routes from
        # (components/gateway_routes.py): an internet-facing process gets no other way out
        manifest(ns.gateway, "gateway-egress", {
            "podSelector": {"matchLabels": GATEWAY_POD}, "policyTypes": ["Egress"],
            "egress": [_dns_rule(), {"to": [_in_namespace(ns.serving, MODEL_SERVER_POD)],
                                     "ports": _tcp(*SERVER_PORTS)},
                       {"to": [_in_namespace(ns.serving, ROUTER_POD)], "ports": _tcp(ROUTER_PORT)}]}),
    ]


def monitoring_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    ns = args.namespaces
    return [
        default_deny_ingress(ns.monitoring),
        # Prometheus, Alertmanager, Grafana, kube-state-metrics and the operator talk among
        # themselves; `kubectl port-forward` to Grafana goes through the kubelet
        manifest(ns.monitoring, "same-namespace", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}]}),
        manifest(ns.monitoring, "prometheus-from-keda", {
            "podSelector": {"matchLabels": PROMETHEUS_POD}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.keda)], "ports": _tcp(PROMETHEUS_PORT)}]}),
        manifest(ns.monitoring, "operator-webhook-from-control-plane", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": _blocks(args.control_plane_cidrs),
                         "ports": _tcp(OPERATOR_WEBHOOK_PORT)}]}),
    ]


def keda_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    ns = args.namespaces
    return [
        default_deny_ingress(ns.keda),
        # the metrics API server calls the operator over gRPC (9666)
        manifest(ns.keda, "same-namespace", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}]}),
        # the API server serves external.metrics.k8s.io from KEDA and calls its webhooks:
        # without this, HPAs see no metrics and ScaledObjects cannot be admitted
        manifest(ns.keda, "from-control-plane", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": _blocks(args.control_plane_cidrs),
                         "ports": _tcp(KEDA_METRICS_API_PORT, KEDA_WEBHOOK_PORT)}]}),
    ]


def node_agent_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    ns = args.namespaces
    return [
        default_deny_ingress(ns.node_agents),
        # node-exporter runs on the host network, where policies do not apply; dcgm does not
        manifest(ns.node_agents, "metrics-from-prometheus", {
            "podSelector": {}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(ns.monitoring, PROMETHEUS_POD)],
                         "ports": _tcp(DCGM_PORT, NODE_EXPORTER_PORT)}]}),
        # it reads every container's logs: it must not be able to send them anywhere else
        manifest(ns.node_agents, "log-shipper-egress", {
            "podSelector": {"matchLabels": LOG_SHIPPER_POD}, "policyTypes": ["Egress"],
            "egress": [_dns_rule(),
                       {"to": _blocks(args.control_plane_cidrs), "ports": _tcp(HTTPS_PORT)},
                       {"to": [{"ipBlock": {"cidr": ANYWHERE, "except": [args.vpc_cidr]}}],
                        "ports": _tcp(HTTPS_PORT)}]}),
    ]


def all_policies(args: NetworkIsolationArgs) -> list[dict[str, Any]]:
    return [*serving_policies(args), *gateway_policies(args), *monitoring_policies(args),
            *keda_policies(args), *node_agent_policies(args)]


class NetworkIsolation(pulumi.ComponentResource):
    """Default-deny ingress per namespace plus the few flows the platform needs."""

    def __init__(self, name: str, args: NetworkIsolationArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:security:NetworkIsolation", name, None, opts)
        after = pulumi.ResourceOptions(parent=self, depends_on=list(args.after))
        for policy in all_policies(args):
            meta = policy["metadata"]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{meta['namespace']}-{meta['name']}", metadata=meta, spec=policy["spec"],
                opts=after)
        self.register_outputs({})
