"""GPU capacity by Karpenter: the controller (its chart and CRDs from one pinned release), the
NVIDIA device plugin, and per GPU pool an EC2NodeClass and a NodePool (plus an on-demand floor
NodePool where the pool has one); and the `traffic` NodePool, on-demand CPU nodes for the
request path's autoscaled pods (gateway, routers), since nothing scales the system node group.

A NodePool buys its shape's instance types on reserved capacity first (when the pool lists
reservations), then spot, then on-demand: Karpenter launches the cheapest offering it can get,
so spot runs out -> on-demand, and consolidation (WhenEmptyOrUnderutilized) replaces an
on-demand node by a cheaper spot one when spot returns. The interruption queue
(components/interruption_queue.py) lets it drain a node on the 2-minute spot notice.

Upstream facts (aws/karpenter-provider-aws v1.14.1): chart values in charts/karpenter/
values.yaml (settings.interruptionQueue, settings.clusterName, serviceAccount, nodeSelector;
the chart's default affinity keeps the controller off nodes that carry karpenter.sh/nodepool);
NodePool and EC2NodeClass fields in pkg/apis/crds/ (copied to components/data/crds/, which the
plan validates every object against).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import SYSTEM_NODES
from components.nodepools import (  # noqa: F401  (re-exported: what serving and agents select)
    CAPACITY_LABEL,
    CAPACITY_TIER_LABEL,
    GPU_SHAPE_LABEL,
    GPU_TAINT,
    GPU_TAINT_KEY,
    INSTANCE_TYPE_LABEL,
    NODEPOOL_LABEL,
    POOL_LABEL,
    REGISTRATION_TIMEOUT_S,
    TRAFFIC_POOL,
    capacity_spread,
    longest_await_s,
    node_class_name,
    node_class_spec,
    node_pool_specs,
    traffic_node_class_spec,
    traffic_node_pool_spec,
)
from components.workload_roles import KARPENTER_ACCOUNT
from vocabulary.config.cluster import HelmPin, KarpenterPin, TrafficNodes
from vocabulary.config.gpu import GpuPool
from vocabulary.config.serving import ModelConfig

KARPENTER_REPO = "oci://public.ecr.aws/karpenter"
#: the controller's release name: the chart names its Service after it (release and chart are
#: both "karpenter", so karpenter.fullname is "karpenter"; charts/karpenter/templates/_helpers.tpl)
KARPENTER_RELEASE = "karpenter"
#: the service account the platform's IRSA role trusts (components/workload_roles.py)
KARPENTER_NAMESPACE, KARPENTER_SERVICE_ACCOUNT = KARPENTER_ACCOUNT
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"


def controller_values(*, cluster_name: str, cluster_endpoint: pulumi.Input[str],
                      queue_name: pulumi.Input[str], role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Karpenter chart values (each key exists in charts/karpenter/values.yaml at v1.14.1)."""
    return {
        "serviceAccount": {"name": KARPENTER_SERVICE_ACCOUNT,
                           "annotations": {"eks.amazonaws.com/role-arn": role_arn}},
        "settings": {"clusterName": cluster_name, "clusterEndpoint": cluster_endpoint,
                     # not the pre-v0.32 `interruptionQueueName`: that key is ignored now
                     "interruptionQueue": queue_name},
        # the system node group; the chart's own affinity already refuses karpenter.sh/nodepool
        "nodeSelector": {**SYSTEM_NODES, "kubernetes.io/os": "linux"},
        "controller": {"resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                     "limits": {"memory": "1Gi"}}},
    }


@dataclass(frozen=True)
class GpuCapacityArgs:
    pools: list[GpuPool]
    cluster_name: str
    cluster_endpoint: pulumi.Input[str]
    karpenter: KarpenterPin
    device_plugin: HelmPin
    controller_role_arn: pulumi.Input[str]  # IRSA role from the platform stack (WorkloadRoles)
    interruption_queue: pulumi.Input[str]   # queue name from the platform stack
    node_role_name: pulumi.Input[str]       # GPU nodes' role from the platform stack
    resource_tags: dict[str, str]
    #: the models that run on the pools: their awaits size each NodePool's drain grace
    models: Sequence[ModelConfig] = ()
    #: the request path's CPU NodePool (gateway, routers); None: no such NodePool
    traffic: TrafficNodes | None = None


class GpuCapacity(pulumi.ComponentResource):
    """Karpenter (CRDs, controller), the device plugin, and the pools' NodePools."""

    def __init__(self, name: str, args: GpuCapacityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu:GpuCapacity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = args.karpenter.chart_version
        crds = k8s.helm.v3.Release(
            f"{name}-karpenter-crd", name="karpenter-crd", namespace=KARPENTER_NAMESPACE,
            chart=f"{KARPENTER_REPO}/karpenter-crd", version=version, opts=child)
        controller = k8s.helm.v3.Release(
            f"{name}-karpenter", name=KARPENTER_RELEASE, namespace=KARPENTER_NAMESPACE,
            chart=f"{KARPENTER_REPO}/karpenter", version=version, skip_crds=True,
            values=controller_values(cluster_name=args.cluster_name,
                                     cluster_endpoint=args.cluster_endpoint,
                                     queue_name=args.interruption_queue,
                                     role_arn=args.controller_role_arn),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[crds]))
        self.device_plugin = k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin", name="nvidia-device-plugin", namespace="kube-system",
            chart="nvidia-device-plugin", version=args.device_plugin.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DEVICE_PLUGIN_REPO),
            values={
                "image": {"tag": args.device_plugin.image_tag},
                "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": POOL_LABEL, "operator": "Exists"}]}]}}},
                "priorityClassName": "system-node-critical",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"cpu": "200m", "memory": "128Mi"}},
            },
            opts=child)
        after = pulumi.ResourceOptions(parent=self, depends_on=[crds, controller])
        #: what waits for GPU capacity to be declared (the model servers, with the device plugin)
        self.node_pools: list[pulumi.Resource] = []
        for pool in args.pools:
            node_class = k8s.apiextensions.CustomResource(
                f"{name}-{pool.name}-class", api_version="karpenter.k8s.aws/v1", kind="EC2NodeClass",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=node_class_name(pool)),
                spec=pulumi.Output.from_input(args.node_role_name).apply(
                    lambda role, p=pool: node_class_spec(
                        p, cluster_name=args.cluster_name, role_name=role, pin=args.karpenter,
                        tags=args.resource_tags)),
                opts=after)
            awaited = longest_await_s(pool, args.pools, args.models)
            for pool_name, spec in node_pool_specs(pool, awaited).items():
                self.node_pools.append(k8s.apiextensions.CustomResource(
                    f"{name}-{pool_name}", api_version="karpenter.sh/v1", kind="NodePool",
                    metadata=k8s.meta.v1.ObjectMetaArgs(name=pool_name), spec=spec,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[crds, controller, node_class])))
        self.traffic_pool: pulumi.Resource | None = None
        if args.traffic:
            traffic_class = k8s.apiextensions.CustomResource(
                f"{name}-traffic-class", api_version="karpenter.k8s.aws/v1", kind="EC2NodeClass",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=TRAFFIC_POOL),
                spec=pulumi.Output.from_input(args.node_role_name).apply(
                    lambda role: traffic_node_class_spec(
                        cluster_name=args.cluster_name, role_name=role, pin=args.karpenter,
                        tags=args.resource_tags)),
                opts=after)
            #: what the gateway and the routers wait for: the NodePool their pods need
            self.traffic_pool = k8s.apiextensions.CustomResource(
                f"{name}-traffic", api_version="karpenter.sh/v1", kind="NodePool",
                metadata=k8s.meta.v1.ObjectMetaArgs(name=TRAFFIC_POOL),
                spec=traffic_node_pool_spec(args.traffic),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[crds, controller, traffic_class]))
        self.register_outputs({})
