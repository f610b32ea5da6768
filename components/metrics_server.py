"""metrics-server: the resource metrics API (`metrics.k8s.io`) that CPU and memory
HorizontalPodAutoscalers read (the gateway's HPA scales on CPU). EKS does not install it.

The Helm chart, not the EKS community add-on: every value below is checked against the
chart's values.yaml at its pinned tag (kubernetes-sigs/metrics-server tag
metrics-server-helm-chart-3.13.1, commit 842dcc8c42f22cc19f10c7d5f2d32a9f4b6013b0,
charts/metrics-server/values.yaml), offline; the add-on's configuration schema and version
list are only answered by the EKS API (`describe-addon-configuration`). The chart's
container port stays 10250: the system nodes carry the EKS cluster security group, which
admits the control plane (the APIService's caller) on every port; its scrapes go to each
kubelet's port 10250 (`--kubelet-use-node-status-port`, a chart default arg). It runs in
kube-system, which the stack's NetworkPolicies do not isolate (components/network_policies.py).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import SYSTEM_NODES
from vocabulary.config.cluster import HelmPin

REPO = "https://kubernetes-sigs.github.io/metrics-server/"  # charts/metrics-server/README.md
NAME = "metrics-server"
NAMESPACE = "kube-system"
#: the chart's selector labels (templates/_helpers.tpl metrics-server.selectorLabels)
POD_LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": NAME}


def metrics_server_values(pin: HelmPin) -> dict[str, Any]:
    """Two replicas on different system nodes with a disruption budget: while the API is
    down every resource-metric HPA stops scaling (and `kubectl top` fails)."""
    return {
        "image": {"tag": pin.image_tag},
        "replicas": 2,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "nodeSelector": dict(SYSTEM_NODES),
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(POD_LABELS)}}],
        # the chart default request (the repository README, "Scaling": 100m and 200Mi hold up
        # to 100 nodes), and a memory ceiling
        "resources": {"requests": {"cpu": "100m", "memory": "200Mi"},
                      "limits": {"memory": "400Mi"}},
    }


class MetricsServer(pulumi.ComponentResource):
    """The pinned metrics-server release on the system nodes."""

    def __init__(self, name: str, pin: HelmPin, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:cluster:MetricsServer", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-release", name=NAME, namespace=NAMESPACE, chart=NAME,
            version=pin.chart_version, repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPO),
            values=metrics_server_values(pin), opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
