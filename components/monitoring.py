"""Monitoring: kube-prometheus-stack, dcgm-exporter, scrape targets, alert rules, dashboards.

Everything is a child of one component so the offline plan shows it and policies check it.
Secrets (Grafana admin password, receiver URLs/keys) go into Kubernetes Secrets referenced by
the charts; Helm values carry no secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import alert_rules, alertmanager_config
from components.engines import ENGINES, TGI, Engine
from components.pod_security import MONITORING_LEVEL, NODE_AGENTS_LEVEL, namespace_labels
from components.router import router_pod_monitor_spec
from vocabulary.config.base import ConfigError
from vocabulary.config.monitoring import MonitoringConfig
from vocabulary.gpu_instances import GpuInstance

KPS_CHART, KPS_VERSION = "kube-prometheus-stack", "81.4.3"  # app v0.88.1
KPS_REPO = "https://prometheus-community.github.io/helm-charts"
DCGM_CHART, DCGM_VERSION = "dcgm-exporter", "4.1.1"
DCGM_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
KPS_RELEASE, DCGM_RELEASE = "kube-prometheus-stack", "dcgm-exporter"

SERVING_NAMESPACE, GATEWAY_NAMESPACE = "llm-serving", "llm-gateway"
#: Node agents that read the host (node-exporter: host network/PID and hostPath; dcgm-exporter:
#: SYS_ADMIN and the kubelet's pod-resources hostPath) need the `privileged` level, so they
#: live apart from the rest of monitoring, which enforces baseline.
NODE_AGENTS_NAMESPACE = "node-agents"
GPU_TAINT_KEY, GPU_POOL_LABEL = "nvidia.com/gpu", "llmops.io/gpu-pool"
#: Node labels kube-state-metrics exposes on kube_node_labels (pool, spot/on-demand, price key).
NODE_LABELS = ("llmops.io/gpu-pool", "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type")
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
GRAFANA_SECRET, ALERTMANAGER_SECRET = "grafana-admin", "alertmanager-llmops"
MONITORING_API = "monitoring.coreos.com/v1"
SCRAPE_INTERVAL = "15s"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class MonitoringArgs:
    """What the monitoring stack needs; built by the program from typed config and secrets.

    models: served model names (Deployments `<engine>-<model>` in llm-serving), one PodMonitor each.
    engines: model -> its engine name (tgi or vllm; absent: tgi), which decides what is scraped.
    instance_prices: instance type -> facts (vocabulary.gpu_instances.gpu_instances()), for cost.
    grafana_admin_password: a Pulumi secret. receiver_secrets: secretKey -> secret, one per
    `config.receivers[].secretKey` (see vocabulary.config.monitoring.read_monitoring_secrets).
    gateway_pod_labels: labels selecting the gateway pods (Deployment llm-gateway).
    """

    config: MonitoringConfig
    models: Sequence[str]
    instance_prices: Mapping[str, GpuInstance]
    grafana_admin_password: pulumi.Input[str]
    engines: Mapping[str, str] = field(default_factory=dict)
    receiver_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    gateway_pod_labels: Mapping[str, str] = field(
        default_factory=lambda: {"app.kubernetes.io/name": "llm-gateway"})
    #: what the charts' PVCs need first (the StorageClass); a component's own dependsOn does
    #: not hold its children back, so the releases name it themselves
    storage: Sequence[pulumi.Resource] = ()


def validate(args: MonitoringArgs) -> None:
    """Problems the config schema cannot see alone (it does not know the models); before any child."""
    cfg, problems = args.config, []
    for model in args.models:
        if not DNS_LABEL.match(model):
            problems.append(f"model {model!r} is not a DNS label, so it cannot name its Deployment")
    for model in args.config.slo.objectives:
        if model not in args.models:
            problems.append(f"llmops:monitoring.slo.objectives.{model}: no model named {model!r} is "
                            f"served (models: {', '.join(args.models) or 'none'})")
    for i, receiver in enumerate(cfg.receivers):
        if receiver.secret_key not in args.receiver_secrets:
            problems.append(f"llmops:monitoring.receivers[{i}].secretKey: no secret "
                            f"llmops-secrets:{receiver.secret_key} was provided")
    if problems:
        raise ConfigError("llmops:monitoring", problems)


def kube_prometheus_stack_values(cfg: MonitoringConfig) -> dict[str, Any]:
    """Chart values: retention and storage from config, secrets by reference, limits everywhere."""
    res, prom = cfg.resources, cfg.prometheus
    prometheus_spec: dict[str, Any] = {
        "retention": prom.retention,
        "replicas": prom.replicas,
        "resources": res.prometheus.values(),
        "storageSpec": _volume_claim(prom.storage_size, prom.storage_class),
        # select every ServiceMonitor/PodMonitor/PrometheusRule, not only this release's
        "serviceMonitorSelectorNilUsesHelmValues": False,
        "podMonitorSelectorNilUsesHelmValues": False,
        "ruleSelectorNilUsesHelmValues": False,
    }
    if prom.retention_size:
        prometheus_spec["retentionSize"] = prom.retention_size
    return {
        "prometheus": {"prometheusSpec": prometheus_spec},
        "alertmanager": {"alertmanagerSpec": {
            "useExistingSecret": True,
            "configSecret": ALERTMANAGER_SECRET,
            "replicas": cfg.alertmanager.replicas,
            "resources": res.alertmanager.values(),
            "storage": _volume_claim(cfg.alertmanager.storage_size, prom.storage_class),
        }},
        "grafana": {
            "admin": {"existingSecret": GRAFANA_SECRET, "userKey": "admin-user",
                      "passwordKey": "admin-password"},
            "resources": res.grafana.values(),
            "sidecar": {"dashboards": {"enabled": True, "label": "grafana_dashboard",
                                       "labelValue": "1", "searchNamespace": "ALL"}},
        },
        "prometheusOperator": {"resources": res.prometheus_operator.values()},
        "kube-state-metrics": {
            "resources": res.kube_state_metrics.values(),
            "metricLabelsAllowlist": [f"nodes=[{','.join(NODE_LABELS)}]"],
        },
        "prometheus-node-exporter": {"resources": res.node_exporter.values(),
                                     "namespaceOverride": NODE_AGENTS_NAMESPACE},
    }


def dcgm_exporter_values(cfg: MonitoringConfig) -> dict[str, Any]:
    """On GPU nodes only (they are tainted); scraped by our own ServiceMonitor, not the chart's."""
    return {
        "resources": cfg.resources.dcgm_exporter.values(),
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": GPU_POOL_LABEL, "operator": "Exists"}]}]}}},
        "serviceMonitor": {"enabled": False},
    }


def _volume_claim(size: str, storage_class: str | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return {"volumeClaimTemplate": {"spec": spec}}


def server_pod_monitor_spec(model: str, engine: Engine = TGI) -> dict[str, Any]:
    """Scrape one model's pods (every track) on the engine's metrics port, labelled by model and
    track, with the engine's name as the job (alerts and the canary analysis select by it)."""
    return {
        "namespaceSelector": {"matchNames": [SERVING_NAMESPACE]},
        "selector": {"matchLabels": {"app.kubernetes.io/name": engine.name, "llmops.io/model": model}},
        "podMetricsEndpoints": [{
            "port": engine.metrics_port_name, "path": "/metrics", "interval": SCRAPE_INTERVAL,
            "relabelings": [
                {"targetLabel": "job", "replacement": engine.name},
                {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_model"], "targetLabel": "model"},
                {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_track"], "targetLabel": "track"},
            ]}],
    }


def gateway_pod_monitor_spec(pod_labels: Mapping[str, str]) -> dict[str, Any]:
    return {
        "namespaceSelector": {"matchNames": [GATEWAY_NAMESPACE]},
        "selector": {"matchLabels": dict(pod_labels)},
        "podMetricsEndpoints": [{"port": "http", "path": "/metrics", "interval": SCRAPE_INTERVAL,
                                 "relabelings": [{"targetLabel": "job", "replacement": "llm-gateway"}]}],
    }


def dcgm_service_monitor_spec(namespace: str) -> dict[str, Any]:
    """Keep the exporter's pod/namespace labels (the GPU's workload) and add the node name."""
    return {
        "namespaceSelector": {"matchNames": [namespace]},
        "selector": {"matchLabels": {"app.kubernetes.io/name": DCGM_CHART,
                                     "app.kubernetes.io/instance": DCGM_RELEASE}},
        "endpoints": [{"port": "metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL,
                       "honorLabels": True,
                       "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"],
                                        "targetLabel": "node"}]}],
    }


def karpenter_service_monitor_spec() -> dict[str, Any]:
    """Karpenter's controller metrics (the rules in karpenter.yaml read them). The chart's own
    ServiceMonitor stays off: it renders only when the CRD already exists at install, and the
    controller is installed apart from Prometheus. Service, port and labels as the chart makes
    them (aws/karpenter-provider-aws v1.14.1 charts/karpenter/templates/service.yaml: port
    `http-metrics`, selector labels app.kubernetes.io/name and /instance; servicemonitor.yaml
    scrapes /metrics on that port)."""
    # here, not at the top: components.gpu_nodes -> workload_roles imports this module
    from components.gpu_nodes import KARPENTER_NAMESPACE, KARPENTER_RELEASE

    return {
        "namespaceSelector": {"matchNames": [KARPENTER_NAMESPACE]},
        "selector": {"matchLabels": {"app.kubernetes.io/name": "karpenter",
                                     "app.kubernetes.io/instance": KARPENTER_RELEASE}},
        "endpoints": [{"port": "http-metrics", "path": "/metrics", "interval": SCRAPE_INTERVAL,
                       "relabelings": [{"targetLabel": "job", "replacement": "karpenter"}]}],
    }


class Monitoring(pulumi.ComponentResource):
    """Prometheus, Alertmanager and Grafana (kube-prometheus-stack), GPU metrics, rules, dashboards."""

    namespace: pulumi.Output[str]
    prometheus_url: pulumi.Output[str]
    alertmanager_url: pulumi.Output[str]
    grafana_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        validate(args)
        super().__init__("llmops:monitoring:Monitoring", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/part-of": "llmops", "app.kubernetes.io/managed-by": "pulumi"}

        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": cfg.namespace,
                                           "labels": {**labels, **namespace_labels(MONITORING_LEVEL)}},
            opts=child)
        agents = k8s.core.v1.Namespace(
            f"{name}-node-agents", metadata={"name": NODE_AGENTS_NAMESPACE,
                                             "labels": {**labels, **namespace_labels(NODE_AGENTS_LEVEL)}},
            opts=child)
        #: what must exist before anything is applied into these namespaces (network policies)
        self.namespaces = [namespace, agents]
        self.node_agents = agents  # other node agents (log shipping) are applied into it
        ns = namespace.metadata.apply(lambda m: m["name"])

        grafana_secret = k8s.core.v1.Secret(
            f"{name}-grafana-admin", metadata={"name": GRAFANA_SECRET, "namespace": ns, "labels": labels},
            type="Opaque",
            string_data={"admin-user": "admin",
                         "admin-password": pulumi.Output.secret(args.grafana_admin_password)},
            opts=child)
        keys = cfg.secret_keys()
        rendered = pulumi.Output.all(*[args.receiver_secrets[k] for k in keys]).apply(
            lambda values: alertmanager_config.render(cfg, dict(zip(keys, values, strict=True))))
        alertmanager_secret = k8s.core.v1.Secret(
            f"{name}-alertmanager-config",
            metadata={"name": ALERTMANAGER_SECRET, "namespace": ns, "labels": labels}, type="Opaque",
            string_data={"alertmanager.yaml": pulumi.Output.secret(rendered)}, opts=child)

        stack = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack", name=KPS_RELEASE, chart=KPS_CHART, version=KPS_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=KPS_REPO), namespace=ns,
            values=kube_prometheus_stack_values(cfg), timeout=900, cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grafana_secret, alertmanager_secret,
                                                                 agents, *args.storage]))
        k8s.helm.v3.Release(
            f"{name}-dcgm-exporter", name=DCGM_RELEASE, chart=DCGM_CHART, version=DCGM_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DCGM_REPO),
            namespace=agents.metadata.apply(lambda m: m["name"]),
            values=dcgm_exporter_values(cfg), timeout=600, cleanup_on_fail=True, opts=child)

        # Custom resources need the CRDs the kube-prometheus-stack release installs.
        after_crds = pulumi.ResourceOptions(parent=self, depends_on=[stack])

        def custom(kind: str, object_name: str, spec: dict[str, Any], extra: Mapping[str, str] = {}):
            return k8s.apiextensions.CustomResource(
                f"{name}-{kind.lower()}-{object_name}", api_version=MONITORING_API, kind=kind,
                metadata={"name": object_name, "namespace": ns, "labels": {**labels, **extra}},
                spec=spec, opts=after_crds)

        custom("ServiceMonitor", DCGM_RELEASE, dcgm_service_monitor_spec(NODE_AGENTS_NAMESPACE))
        custom("ServiceMonitor", "karpenter", karpenter_service_monitor_spec())
        for model in args.models:
            engine = ENGINES[args.engines.get(model, TGI.name)]
            custom("PodMonitor", engine.deployment_name(model, "stable"),
                   server_pod_monitor_spec(model, engine), {"llmops.io/model": model})
        custom("PodMonitor", "llm-gateway", gateway_pod_monitor_spec(args.gateway_pod_labels))
        # every model's prefix-aware routers (components/router.py), one PodMonitor for all
        custom("PodMonitor", "llm-router", router_pod_monitor_spec(SERVING_NAMESPACE))
        for rule_name, document in alert_rules.render_rules(cfg, args.instance_prices).items():
            custom("PrometheusRule", f"llmops-{rule_name}", document)

        for path in sorted((alert_rules.ASSETS / "grafana").glob("*.json")):
            json.loads(path.read_text())  # fail the plan, not Grafana, on a broken file
            k8s.core.v1.ConfigMap(
                f"{name}-dashboard-{path.stem}",
                metadata={"name": f"dashboard-{path.stem}", "namespace": ns,
                          "labels": {**labels, **DASHBOARD_LABEL}},
                data={path.name: path.read_text()}, opts=child)

        base = f"{KPS_RELEASE}-{{}}.{cfg.namespace}.svc"
        self.namespace = ns
        self.prometheus_url = pulumi.Output.from_input(f"http://{base.format('prometheus')}:9090")
        self.alertmanager_url = pulumi.Output.from_input(f"http://{base.format('alertmanager')}:9093")
        self.grafana_url = pulumi.Output.from_input(f"http://{base.format('grafana')}")
        self.register_outputs({"namespace": self.namespace, "prometheusUrl": self.prometheus_url,
                               "alertmanagerUrl": self.alertmanager_url, "grafanaUrl": self.grafana_url})
