"""The NodePools and EC2NodeClasses as data (the GPU pools' and the CPU traffic pool's): labels,
taints, limits, disruption budgets and the specs the workloads stack applies
(components/gpu_nodes.py), with no Pulumi import, so the offline tools (cost, deploy checks)
read the very specs that are deployed.

Fields as in aws/karpenter-provider-aws v1.14.1 pkg/apis/crds/ (copied to
components/data/crds/, which the plan validates every object against).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from components.engines.pod import NODE_PROVISION_S, start_budgets
from vocabulary.config.cluster import KarpenterPin, TrafficNodes
from vocabulary.config.gpu import GpuPool
from vocabulary.config.placement import pools_of_shape
from vocabulary.config.serving import ModelConfig
from vocabulary.gpu_instances import GpuInstance

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "true", "effect": "NoSchedule"}
POOL_LABEL = "llmops.io/gpu-pool"
#: What models select (vocabulary.config.gpu GpuPool.shape); every NodePool of a shape sets it.
GPU_SHAPE_LABEL = "llmops.io/gpu-shape"
#: "flex" on a pool's main NodePool (spot first, on-demand fallback), "floor" on its
#: on-demand-only NodePool: the domain multi-replica models spread across.
CAPACITY_TIER_LABEL = "llmops.io/capacity-tier"
#: Karpenter's well-known labels (kubernetes-sigs/karpenter v1.14.1 pkg/apis/v1/labels.go)
CAPACITY_LABEL = "karpenter.sh/capacity-type"
NODEPOOL_LABEL = "karpenter.sh/nodepool"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
#: The least Karpenter drains a GPU node before it terminates it regardless: longer than a
#: model server's grace (120 s). Where models run, node_termination_grace() derives more.
MIN_TERMINATION_GRACE_S = 30 * 60
#: kubernetes-sigs/karpenter v1.14.1 pkg/controllers/nodeclaim/lifecycle/liveness.go:
#: a NodeClaim that has not registered 15 minutes after launch is deleted and retried.
REGISTRATION_TIMEOUT_S = 15 * 60
ROOT_DEVICE = "/dev/xvda"  # AL2023 EKS AMIs
#: The NodePool (and EC2NodeClass) of the request path's CPU pods: the gateway and the routers
#: select its label and tolerate its taint; nothing else does.
TRAFFIC_POOL = "traffic"
TRAFFIC_NODES = {"llmops.io/node-role": "traffic"}
TRAFFIC_TAINT = {"key": "llmops.io/node-role", "value": "traffic", "effect": "NoSchedule"}
TRAFFIC_TOLERATION = {"key": "llmops.io/node-role", "operator": "Equal", "value": "traffic",
                      "effect": "NoSchedule"}
TRAFFIC_ROOT_GIB = 50


def longest_await_s(pool: GpuPool, pools: Sequence[GpuPool], models: Sequence[ModelConfig]) -> int:
    """The longest rollout await of a model that may run on `pool` (its GPU shape), sized as
    components/serving.py sizes it: on the smallest node of the shape. 0 without such a model."""
    shape_pools = pools_of_shape(list(pools), pool.shape) or [pool]
    node = min((p.smallest for p in shape_pools), key=lambda t: (t.memory_gib, t.vcpu))
    return max((start_budgets(m, node).await_s for m in models if m.gpu_shape == pool.shape), default=0)


def node_termination_grace(longest_await: int) -> str:
    """The NodePool's terminationGracePeriod: how long a disrupted node drains before Karpenter
    deletes its remaining pods and terminates it, whatever their PDBs (kubernetes-sigs/karpenter
    v1.14.1, website disruption.md "TerminationGracePeriod"). A drained model's PDB holds its
    old pod until a replacement is Ready, and that replacement may need a new node (node
    provisioning) and may fail its first start once (twice the longest await); rounded up to
    10 minutes, never under MIN_TERMINATION_GRACE_S."""
    seconds = max(MIN_TERMINATION_GRACE_S, NODE_PROVISION_S + 2 * longest_await)
    return f"{math.ceil(seconds / 600) * 10}m"


def ami_alias(pin: KarpenterPin) -> str:
    """AL2023 at a fixed release: Karpenter resolves the NVIDIA variant for GPU types."""
    return f"al2023@{pin.ami_version}"


def node_class_name(pool: GpuPool) -> str:
    return pool.name


def floor_name(pool: GpuPool) -> str:
    return f"{pool.name}-floor"


def _node_class(*, cluster_name: str, role_name: str, pin: KarpenterPin, tags: dict[str, str],
                root_gib: int) -> dict[str, Any]:
    """IMDSv2 with one hop (pods cannot take the node role) and an encrypted gp3 root."""
    discovery = [{"tags": {"karpenter.sh/discovery": cluster_name}}]
    return {
        "role": role_name,
        "amiSelectorTerms": [{"alias": ami_alias(pin)}],
        "subnetSelectorTerms": discovery,
        "securityGroupSelectorTerms": discovery,
        "metadataOptions": {"httpEndpoint": "enabled", "httpProtocolIPv6": "disabled",
                            "httpPutResponseHopLimit": 1, "httpTokens": "required"},
        "blockDeviceMappings": [{"deviceName": ROOT_DEVICE, "rootVolume": True, "ebs": {
            "volumeSize": f"{root_gib}Gi", "volumeType": "gp3", "encrypted": True,
            "deleteOnTermination": True, "iops": 3000, "throughput": 125}}],
        "tags": dict(tags),
    }


def node_class_spec(pool: GpuPool, *, cluster_name: str, role_name: str, pin: KarpenterPin,
                    tags: dict[str, str]) -> dict[str, Any]:
    """The shared node class, and the instance-store NVMe as a RAID0 that nodeadm mounts at
    /mnt/k8s-disks/0, where kubelet, containerd and the node-shared weights cache
    (components/model_cache.py) live."""
    spec = _node_class(cluster_name=cluster_name, role_name=role_name, pin=pin, tags=tags,
                       root_gib=pool.root_volume)
    if pool.has_local_nvme:
        spec["instanceStorePolicy"] = "RAID0"
    if pool.capacity_reservations:
        spec["capacityReservationSelectorTerms"] = [{"id": r} for r in pool.capacity_reservations]
    return spec


def node_limits(instances: list[GpuInstance], nodes: int) -> dict[str, str]:
    """The NodePool's limits: `nodes` of the largest allowed type's GPUs and vCPUs."""
    return {"nvidia.com/gpu": str(nodes * max(t.gpus for t in instances)),
            "cpu": str(nodes * max(t.vcpu for t in instances))}


def disruption_budgets(pool: GpuPool) -> list[dict[str, Any]]:
    """The pool's share for every reason (Empty, Drifted, Underutilized), and, where the pool
    has an underutilizedWindow, no `Underutilized` disruption outside it: replacing a node that
    runs a model server evicts a Ready replica (its PDB allows one), which then pays a cold
    start while the others serve alone. Karpenter takes, per reason, the minimum of the active
    budgets that list it or list no reason; a scheduled budget is active for `duration` after
    each `schedule` hit, in UTC (kubernetes-sigs/karpenter v1.14.1 pkg/apis/v1/nodepool.go
    GetAllowedDisruptionsByReason, Budget.IsActive)."""
    budgets: list[dict[str, Any]] = [{"nodes": pool.disruption_budget}]
    window = pool.underutilized_window
    if window:
        budgets.append({"nodes": "0", "reasons": ["Underutilized"],
                        "schedule": window.closed_from, "duration": window.closed_for})
    return budgets


def node_pool_specs(pool: GpuPool, longest_await: int = 0) -> dict[str, dict[str, Any]]:
    """NodePool name -> spec: the pool's own, and its on-demand floor where it has one.
    `longest_await`: of a model that may run there (longest_await_s), for the drain's grace."""
    def spec(capacity: list[str], tier: str, nodes: int, weight: int) -> dict[str, Any]:
        return {
            "weight": weight,
            "template": {
                "metadata": {"labels": {POOL_LABEL: pool.name, GPU_SHAPE_LABEL: pool.shape,
                                        CAPACITY_TIER_LABEL: tier}},
                "spec": {
                    "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                     "name": node_class_name(pool)},
                    "requirements": [
                        {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(pool.instance_types)},
                        {"key": CAPACITY_LABEL, "operator": "In", "values": capacity},
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
                    "taints": [dict(GPU_TAINT)],
                    "expireAfter": pool.expire_after,
                    "terminationGracePeriod": node_termination_grace(longest_await),
                },
            },
            # empty GPU nodes go (scale to zero), underused ones are replaced by cheaper ones
            # (on-demand back to spot), a share of the pool at a time
            "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized",
                           "consolidateAfter": pool.consolidate_after,
                           "budgets": disruption_budgets(pool)},
            "limits": node_limits(pool.instances, nodes),
        }
    specs = {pool.name: spec(pool.capacity, "flex", pool.max_nodes, 50)}
    if pool.on_demand_floor:
        specs[floor_name(pool)] = spec(["on-demand"], "floor", pool.on_demand_floor.max_nodes, 10)
    return specs


def traffic_node_class_spec(*, cluster_name: str, role_name: str, pin: KarpenterPin,
                            tags: dict[str, str]) -> dict[str, Any]:
    """The traffic nodes' class: AL2023 at the pinned release (the standard variant for CPU
    types), no instance store, a 50 GiB root for the images of the gateway and the routers."""
    return _node_class(cluster_name=cluster_name, role_name=role_name, pin=pin, tags=tags,
                       root_gib=TRAFFIC_ROOT_GIB)


def traffic_node_pool_spec(nodes: TrafficNodes) -> dict[str, Any]:
    """The NodePool of the request path's CPU pods (gateway, routers): on-demand (a spot reclaim
    would cut live token streams), limited to `maxNodes` of its largest type, tainted so that
    only those pods land there (the controllers stay on the system node group, and Karpenter
    never runs on a node it manages), consolidated when empty or underused. They are stateless
    and start in seconds, so nodes expire after 30 days (fresh AMIs) and drain within 30
    minutes, their PDBs honoured."""
    largest = max(nodes.instances, key=lambda t: (t.vcpu, t.memory_gib))
    return {
        "weight": 10,
        "template": {
            "metadata": {"labels": dict(TRAFFIC_NODES)},
            "spec": {
                "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                 "name": TRAFFIC_POOL},
                "requirements": [
                    {"key": INSTANCE_TYPE_LABEL, "operator": "In", "values": list(nodes.instance_types)},
                    {"key": CAPACITY_LABEL, "operator": "In", "values": ["on-demand"]},
                    {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                    {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
                "taints": [dict(TRAFFIC_TAINT)],
                "expireAfter": "720h",
                "terminationGracePeriod": "30m",
            },
        },
        "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m",
                       "budgets": [{"nodes": "10%"}]},
        "limits": {"cpu": str(nodes.max_nodes * largest.vcpu),
                   "memory": f"{nodes.max_nodes * largest.memory_gib}Gi"},
    }


def capacity_spread(pool: GpuPool, replicas_min: int) -> list[dict[str, Any]]:
    """Topology spread keeping a multi-replica model off a single market: evenly across the
    pool's flex NodePool (spot, falling back to on-demand) and its on-demand floor. Nothing
    where the pool has no floor or the model runs one replica."""
    if not pool.on_demand_floor or replicas_min < 2:
        return []
    return [{"topology_key": CAPACITY_TIER_LABEL, "max_skew": 1,
             "when_unsatisfiable": "DoNotSchedule"}]
