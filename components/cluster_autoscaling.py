"""Scaling GPU capacity: cluster-autoscaler preferring spot pools (priority expander) and
the NVIDIA device plugin that makes `nvidia.com/gpu` schedulable."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_nodes import GPU_TAINT_KEY, POOL_LABEL, node_group_name
from components.workload_roles import AUTOSCALER_ACCOUNT
from stacks.config.cluster import HelmPin
from stacks.config.gpu import GpuPool

AUTOSCALER_REPO = "https://kubernetes.github.io/autoscaler"
AUTOSCALER_IMAGE = "registry.k8s.io/autoscaling/cluster-autoscaler"
DEVICE_PLUGIN_REPO = "https://nvidia.github.io/k8s-device-plugin"
SPOT_PRIORITY, ON_DEMAND_PRIORITY, FALLBACK_PRIORITY = 50, 10, 1
SYSTEM_NODES = {"llmops.io/node-role": "system"}


def expander_priorities(cluster_name: str, pools: list[GpuPool]) -> dict[str, list[str]]:
    """Spot pools first, on-demand next; the catch-all keeps other groups eligible.

    Managed node groups' Auto Scaling groups are named eks-<node group name>-<uuid>.
    """
    tiers: dict[int, list[str]] = {}
    for pool in pools:
        tier = SPOT_PRIORITY if pool.capacity_type == "SPOT" else ON_DEMAND_PRIORITY
        tiers.setdefault(tier, []).append(f"^eks-{node_group_name(cluster_name, pool)}-.*")
    tiers[FALLBACK_PRIORITY] = [".*"]
    return {str(k): v for k, v in sorted(tiers.items(), reverse=True)}


@dataclass(frozen=True)
class ClusterAutoscalingArgs:
    cluster_name: str
    region: str
    role_arn: pulumi.Input[str]  # IRSA role from the platform stack (WorkloadRoles)
    pools: list[GpuPool]
    autoscaler: HelmPin
    device_plugin: HelmPin


class ClusterAutoscaling(pulumi.ComponentResource):
    """cluster-autoscaler with its IRSA role, and the NVIDIA device plugin."""

    def __init__(self, name: str, args: ClusterAutoscalingArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:cluster:ClusterAutoscaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace, account = AUTOSCALER_ACCOUNT
        k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler", name="cluster-autoscaler", namespace=namespace,
            chart="cluster-autoscaler", version=args.autoscaler.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=AUTOSCALER_REPO),
            values={
                "cloudProvider": "aws", "awsRegion": args.region,
                "autoDiscovery": {"clusterName": args.cluster_name},
                "image": {"repository": AUTOSCALER_IMAGE, "tag": args.autoscaler.image_tag},
                "rbac": {"serviceAccount": {"create": True, "name": account,
                                            "annotations": {"eks.amazonaws.com/role-arn": args.role_arn}}},
                "extraArgs": {
                    "expander": "priority",
                    "balance-similar-node-groups": True,
                    "skip-nodes-with-local-storage": False,
                    # a GPU node that just joined may still be pulling 10s of GB of weights
                    "scale-down-delay-after-add": "15m",
                    "scale-down-unneeded-time": "15m",
                    "max-node-provision-time": "20m",
                },
                "expanderPriorities": expander_priorities(args.cluster_name, args.pools),
                "nodeSelector": SYSTEM_NODES,
                "priorityClassName": "system-cluster-critical",
                "resources": {"requests": {"cpu": "100m", "memory": "300Mi"},
                              "limits": {"cpu": "500m", "memory": "600Mi"}},
            },
            opts=child)
        k8s.helm.v3.Release(
            f"{name}-nvidia-device-plugin", name="nvidia-device-plugin", namespace="kube-system",
            chart="nvidia-device-plugin", version=args.device_plugin.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=DEVICE_PLUGIN_REPO),
            values={
                "image": {"tag": args.device_plugin.image_tag},
                "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists",
                                 "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": POOL_LABEL, "operator": "Exists"}]}]}}},
                "priorityClassName": "system-node-critical",
                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                              "limits": {"cpu": "200m", "memory": "128Mi"}},
            },
            opts=child)
        self.register_outputs({})
