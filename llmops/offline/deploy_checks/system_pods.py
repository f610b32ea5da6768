"""Deploy check for the system node group: nothing scales it, so what is pinned there must fit.

- `system-pods-fit`: the managed node group stays at its desiredSize (Karpenter manages only
  NodePools and no cluster-autoscaler runs), so every pod that can land on no NodePool (the
  controllers, monitoring, the EKS add-ons' controllers) must fit its nodes at the most
  replicas it may have: a Deployment at its HorizontalPodAutoscaler's maxReplicas or KEDA
  ScaledObject's maxReplicaCount, else its replicas; a chart's pods at the replicas its values
  set (or the chart's default); DaemonSets once per node. Allocatable per node is
  components/allocatable.py's formula (kube-reserved, eviction, Karpenter's VM overhead: the
  stricter model), less the DaemonSets that run there. A pod that fits no single node is a
  finding too. An HPA that scales past the room leaves its new pods Pending exactly when load
  peaks, and a controller restarted then may not come back. The same rule holds a CPU
  NodePool (the traffic pool, where the gateway and the routers autoscale) to its limits.

Chart defaults, read at the pinned chart versions (components/data/verified_pins.yaml):
karpenter 1.14.1 `replicas: 2` (charts/karpenter/values.yaml, components/data/crds/);
aws-load-balancer-controller 1.13.0 `replicaCount: 2` (kubernetes-sigs/aws-load-balancer-
controller v2.13.0 helm/aws-load-balancer-controller/values.yaml); external-dns 1.21.1 runs one
replica (templates/deployment.yaml `replicas: 1`); metrics-server 3.13.1 `replicas: 1`;
keda 2.17.0 operator/metricsServer/webhooks `replicaCount: 1`, requests 100m/100Mi each
(kedacore/charts v2.17.0 keda/values.yaml); kube-prometheus-stack 81.4.3 prometheusSpec and
alertmanagerSpec `replicas: 1`, kube-state-metrics 7.1.0 `replicas: 1`, grafana 10.5.15
`replicas: 1`, `resources: {}` for grafana's sidecar and the config reloaders (no requests).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from components.allocatable import Resources, node_allocatable
from components.nodepools import GPU_TAINT_KEY as GPU_RESOURCE
from components.nodepools import INSTANCE_TYPE_LABEL
from llmops.offline.deploy_checks.base import (
    DAEMONSET,
    HELM_RELEASE,
    NODE_GROUP,
    NODE_POOL,
    WORKLOADS,
    Finding,
    Rule,
    _k8s_name,
    _pod_spec,
    _pool_requirement,
    _pool_spec,
    _pools_for,
)
from llmops.offline.deploy_checks.capacity import (
    CHART_DAEMONSETS,
    EKS_ADDON_DAEMONSETS,
    _dig,
    _requests,
    cpu_m,
    daemonsets_on,
    pod_requests,
)
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource
from vocabulary.cpu_instances import node_instances

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
ZERO = Resources(0, 0)
#: The EKS add-ons' controllers, whose manifests are not in the plan: CoreDNS (2 replicas) and
#: the EBS CSI controller (2 replicas, six containers): an allowance, like the add-ons'
#: DaemonSets in capacity.py. Re-check it when llmops:cluster.addons moves.
EKS_ADDON_CONTROLLERS = Resources(400, 768)


@dataclass(frozen=True)
class ChartPod:
    """One pod a chart runs: where its values keep the replicas and the requests, and the
    chart's defaults (read at the pinned version) where the platform sets neither."""

    name: str
    replicas_at: str | None
    replicas: int
    requests_at: str
    requests: Resources = ZERO


CHART_PODS: dict[str, tuple[ChartPod, ...]] = {
    "karpenter": (ChartPod("controller", "replicas", 2, "controller.resources"),),
    "aws-load-balancer-controller": (ChartPod("controller", "replicaCount", 2, "resources"),),
    "external-dns": (ChartPod("external-dns", None, 1, "resources"),),
    "metrics-server": (ChartPod("metrics-server", "replicas", 1, "resources"),),
    "keda": (ChartPod("operator", "operator.replicaCount", 1, "resources.operator", Resources(100, 100)),
             ChartPod("metrics-apiserver", "metricsServer.replicaCount", 1, "resources.metricServer",
                      Resources(100, 100)),
             ChartPod("admission-webhooks", "webhooks.replicaCount", 1, "resources.webhooks",
                      Resources(100, 100))),
    "kube-prometheus-stack": (
        ChartPod("prometheus", "prometheus.prometheusSpec.replicas", 1,
                 "prometheus.prometheusSpec.resources"),
        ChartPod("alertmanager", "alertmanager.alertmanagerSpec.replicas", 1,
                 "alertmanager.alertmanagerSpec.resources"),
        ChartPod("grafana", "grafana.replicas", 1, "grafana.resources"),
        ChartPod("operator", None, 1, "prometheusOperator.resources"),
        ChartPod("kube-state-metrics", "kube-state-metrics.replicas", 1, "kube-state-metrics.resources")),
}


def _chart(release: RecordedResource) -> str:
    return str(release.inputs.get("chart", "")).rstrip("/").rsplit("/", 1)[-1]


def chart_pods(release: RecordedResource) -> list[tuple[str, int, Resources]]:
    """(pod, replicas, requests of one) for each pod the release runs."""
    values = release.inputs.get("values") or {}
    pods = []
    for pod in CHART_PODS.get(_chart(release), ()):
        replicas = _dig(values, pod.replicas_at) if pod.replicas_at else None
        set_requests = (_dig(values, pod.requests_at) or {}).get("requests")
        requests = _requests({"resources": {"requests": set_requests}}) if set_requests else pod.requests
        pods.append((f"{release.name}/{pod.name}", int(replicas or pod.replicas), requests))
    return pods


def max_replicas(plan: Plan) -> dict[tuple[str, str], int]:
    """(namespace, Deployment name) -> the most replicas an HPA or a ScaledObject may give it."""
    most: dict[tuple[str, str], int] = {}
    for scaler in [*plan.of_type(HPA), *plan.of_type(SCALED_OBJECT)]:
        spec = scaler.inputs.get("spec") or {}
        target = spec.get("scaleTargetRef", {}).get("name")
        key = (scaler.inputs.get("metadata", {}).get("namespace", ""), target)
        most[key] = max(most.get(key, 0), int(spec.get("maxReplicas") or spec.get("maxReplicaCount") or 0))
    return most


def _selects(pod: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in (pod.get("nodeSelector") or {}).items()
               if k != "kubernetes.io/os")


def system_pods(plan: Plan, labels: dict[str, str]) -> list[tuple[str, int, Resources]]:
    """(what, replicas at most, requests of one) of every pod bound for the node group: the
    plan's own workloads that no NodePool takes, and the charts' pods."""
    pools, most = plan.of_type(NODE_POOL), max_replicas(plan)
    pods = []
    for resource in (r for r in plan.resources if r.type in WORKLOADS and r.type != DAEMONSET):
        pod = _pod_spec(resource)
        if _pools_for(resource, pools) or not _selects(pod, labels):
            continue
        meta = resource.inputs.get("metadata", {})
        replicas = int(resource.inputs.get("spec", {}).get("replicas") or 1)
        replicas = max(replicas, most.get((meta.get("namespace", ""), meta.get("name")), 0))
        pods.append((resource.name, replicas, pod_requests(pod)))
    for release in plan.of_type(HELM_RELEASE):
        pods += chart_pods(release)
    pods.append(("EKS add-on controllers (allowance)", 1, EKS_ADDON_CONTROLLERS))
    return pods


def daemonsets_on_group(plan: Plan, labels: dict[str, str]) -> Resources:
    """What the DaemonSets that run on every node of an untainted node group request."""
    total = EKS_ADDON_DAEMONSETS
    for ds in plan.of_type(DAEMONSET):
        pod = _pod_spec(ds)
        terms = (pod.get("affinity") or {}).get("nodeAffinity", {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
        if _selects(pod, labels) and not terms:
            total = total + pod_requests(pod)
    for release in plan.of_type(HELM_RELEASE):
        where = CHART_DAEMONSETS.get(str(release.inputs.get("chart")))
        values = release.inputs.get("values") or {}
        if where and not _dig(values, "affinity"):  # GPU-only agents select GPU nodes by affinity
            total = total + _requests({"resources": _dig(values, where[0]) or {}})
    return total


def _short(total: Resources, room: Resources) -> str:
    return " and ".join(f"{what} by {need - have}{unit}" for what, need, have, unit in (
        ("CPU", total.cpu_m, room.cpu_m, "m"), ("memory", total.memory_mi, room.memory_mi, "Mi"))
        if need > have)


def system_pods_fit(plan: Plan) -> Iterator[Finding]:
    table = node_instances()
    for group in plan.of_type(NODE_GROUP):
        labels = group.inputs.get("labels") or {}
        types = group.inputs.get("instanceTypes") or []
        nodes = int((group.inputs.get("scalingConfig") or {}).get("desiredSize") or 0)
        unknown = [t for t in types if t not in table]
        if unknown or not types:
            yield Finding("system-pods-fit", group.stack, group.name,
                          f"no instance facts for {', '.join(unknown) or 'its types'}; add them to "
                          "vocabulary/data/cpu_instances.yaml so its room can be checked")
            continue
        smallest = min((table[t] for t in types), key=lambda t: (t.memory_gib, t.vcpu))
        per_node = node_allocatable(smallest) - daemonsets_on_group(plan, labels)
        room = Resources(per_node.cpu_m * nodes, per_node.memory_mi * nodes)
        pods = system_pods(plan, labels)
        total = sum((Resources(r.cpu_m * n, r.memory_mi * n) for _, n, r in pods), ZERO)
        for what, _, one in pods:
            if not one.fits(per_node):
                yield Finding("system-pods-fit", group.stack, group.name,
                              f"{what} requests {one} but a {smallest.name} has {per_node} left after "
                              "kube-reserved, eviction and its DaemonSets: it fits no system node")
        if not total.fits(room):
            largest = sorted(pods, key=lambda p: -p[1] * p[2].cpu_m)[:4]
            detail = ", ".join(f"{what} {n} x {one}" for what, n, one in largest)
            needed = max(math.ceil(total.cpu_m / per_node.cpu_m),
                         math.ceil(total.memory_mi / per_node.memory_mi))
            yield Finding("system-pods-fit", group.stack, group.name,
                          f"the pods bound for it request {total} at their most replicas (largest: {detail}) "
                          f"but its {nodes} x {smallest.name} (desiredSize; nothing scales the group) have "
                          f"{room} left after kube-reserved, eviction and DaemonSets: short of "
                          f"{_short(total, room)}; raise llmops:cluster.systemNodes.desiredSize to "
                          f"{needed} or move the autoscaled pods to a NodePool (llmops:cluster.trafficNodes)")


def cpu_pool_limits_fit(plan: Plan) -> Iterator[Finding]:
    """A CPU NodePool (the traffic pool) must hold what selects it at its most replicas: its
    limits, in nodes of its largest type, less each node's kube-reserved and DaemonSets.
    Past them Karpenter launches nothing and the HPA's new pods stay Pending."""
    table, most = node_instances(), max_replicas(plan)
    for pool in plan.of_type(NODE_POOL):
        limits = _pool_spec(pool).get("limits") or {}
        types = [table[t] for t in _pool_requirement(pool, INSTANCE_TYPE_LABEL) if t in table]
        if GPU_RESOURCE in limits or "cpu" not in limits or not types:
            continue
        largest = max(types, key=lambda t: (t.vcpu, t.memory_gib))
        nodes = cpu_m(limits["cpu"]) // (largest.vcpu * 1000)
        per_node = node_allocatable(largest) - daemonsets_on(plan, pool)[0]
        room = Resources(per_node.cpu_m * nodes, per_node.memory_mi * nodes)
        pods = []
        for resource in (r for r in plan.resources if r.type in WORKLOADS and r.type != DAEMONSET):
            if _pools_for(resource, [pool]):
                meta = resource.inputs.get("metadata", {})
                replicas = max(int(resource.inputs.get("spec", {}).get("replicas") or 1),
                               most.get((meta.get("namespace", ""), meta.get("name")), 0))
                pods.append((resource.name, replicas, pod_requests(_pod_spec(resource))))
        total = sum((Resources(r.cpu_m * n, r.memory_mi * n) for _, n, r in pods), ZERO)
        if not total.fits(room):
            detail = ", ".join(f"{what} {n} x {one}" for what, n, one in pods)
            yield Finding("system-pods-fit", pool.stack, _k8s_name(pool),
                          f"its pods request {total} at their most replicas ({detail}) but its limits "
                          f"({limits['cpu']} CPU: {nodes} x {largest.name}) leave {room} after "
                          f"kube-reserved, eviction and DaemonSets: short of {_short(total, room)}; raise "
                          "llmops:cluster.trafficNodes.maxNodes")


RULES: tuple[Rule, ...] = (system_pods_fit, cpu_pool_limits_fit)
