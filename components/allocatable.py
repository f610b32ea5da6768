"""What a node leaves for pods, and how big a model server may be on a GPU node.

A pod fits a node when its requests fit the node's *allocatable*: capacity minus
kube-reserved minus the hard eviction threshold. Karpenter launches a node for a pending pod
only if its own model of allocatable fits the pod and the DaemonSets that will land there;
kubelet admits it only if the real allocatable does. Both are computed here, from upstream:

- kube-reserved: memory 11 MiB x maxPods + 255 MiB; CPU 6% of the first core, 1% of the
  second, 0.5% of cores 3-4, 0.25% above (awslabs/amazon-eks-ami v20260724
  nodeadm/internal/kubelet/config.go getMemoryMebibytesToReserve/getCPUMillicoresToReserve;
  aws/karpenter-provider-aws v1.14.1 pkg/providers/instancetype/types.go
  kubeReservedResources, the same formula). maxPods is ENI-limited (GpuInstance.max_pods).
- eviction: memory.available 100Mi (nodeadm's evictionHard default; Karpenter's
  evictionThreshold default).
- VM overhead: Karpenter takes settings.vmMemoryOverheadPercent (0.075, chart values.yaml)
  off the instance's memory before anything else (types.go memory()): it stands for what the
  kernel and firmware keep, so the real node has about that much less than its nominal size.

Pods are sized to the smallest instance type their NodePool allows, after a declared budget
for the DaemonSets every GPU node runs. The `pod-fits-node` deploy check
(llmops/offline/deploy_checks/capacity.py) adds up the DaemonSets the plan really runs and
fails the plan when they outgrow the budget on any allowed type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vocabulary.cpu_instances import NodeShape
from vocabulary.gpu_instances import GpuInstance

#: chart values.yaml settings.vmMemoryOverheadPercent at v1.14.1 (the project keeps the default)
VM_MEMORY_OVERHEAD = 0.075
EVICTION_MEMORY_MI = 100
#: What the DaemonSets of a GPU node may request in all: device plugin, DCGM exporter,
#: node exporter, Fluent Bit, image pre-pull (their values in the plan, ~0.3 CPU / 0.5 GiB)
#: and the EKS add-ons' node pods (kube-proxy, aws-node with its network-policy agent, the
#: EBS CSI node plugin), with room to grow. The deploy check holds the plan to it.
GPU_NODE_DAEMONSETS = (600, 1024)  # (millicores, MiB)
#: The model server's own sidecar (the weights hold, components/model_cache.py) and slack for
#: rounding: what the engine container leaves for the rest of its pod.
POD_SIDECARS = (100, 128)
MEMORY_STEP_MI = 64


@dataclass(frozen=True)
class Resources:
    """CPU in millicores and memory in MiB (what requests add up in)."""

    cpu_m: int
    memory_mi: int

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_m + other.cpu_m, self.memory_mi + other.memory_mi)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_m - other.cpu_m, self.memory_mi - other.memory_mi)

    def fits(self, room: Resources) -> bool:
        return self.cpu_m <= room.cpu_m and self.memory_mi <= room.memory_mi

    def __str__(self) -> str:
        return f"{self.cpu_m}m CPU / {self.memory_mi}Mi"


def kube_reserved(instance: NodeShape) -> Resources:
    """nodeadm's (and Karpenter's) kube-reserved for this instance type."""
    millicores, reserved = instance.vcpu * 1000, 0.0
    for start, end, share in ((0, 1000, 0.06), (1000, 2000, 0.01), (2000, 4000, 0.005),
                              (4000, 1 << 31, 0.0025)):
        if millicores > start:
            reserved += (min(millicores, end) - start) * share
    return Resources(int(reserved), 11 * instance.max_pods + 255)


def node_allocatable(instance: NodeShape) -> Resources:
    """Allocatable CPU and memory as Karpenter models it before launching (the stricter of
    its view and kubelet's: it takes the VM overhead off first)."""
    memory = instance.memory_gib * 1024
    memory -= math.ceil(memory * VM_MEMORY_OVERHEAD)
    return Resources(instance.vcpu * 1000, memory) - kube_reserved(instance) - Resources(
        0, EVICTION_MEMORY_MI)


def gpu_node_room(instance: GpuInstance) -> Resources:
    """What pods scheduled by the platform may request on one GPU node of this type."""
    return node_allocatable(instance) - Resources(*GPU_NODE_DAEMONSETS)


def engine_resources(shards: int, instance: GpuInstance) -> dict[str, dict[str, str]]:
    """Requests = limits for a model server using `shards` of the node's GPUs: its GPU share
    of the room left after the DaemonSets, minus its own sidecars."""
    share = shards / instance.gpus
    room = gpu_node_room(instance)
    cpu_m = max(1000, math.floor(room.cpu_m * share) - POD_SIDECARS[0]) // 100 * 100
    memory_mi = (math.floor(room.memory_mi * share) - POD_SIDECARS[1]) // MEMORY_STEP_MI * MEMORY_STEP_MI
    amounts = {"cpu": f"{cpu_m}m", "memory": f"{memory_mi}Mi", "nvidia.com/gpu": str(shards)}
    return {"requests": dict(amounts), "limits": dict(amounts)}
