"""Cold-start budget per model: how long until a model-server pod (TGI or vLLM) is ready on a
fresh node and on a warm one, from the facts the stack already has (weights size, shards,
instance, engine) plus a few measured rates. Pure functions, no Pulumi: the stack derives
the startup probe's budget and the engine's await budget from these numbers, and the docs
print them per shipped model.

A pod's start, in the order the kubelet runs it:
  fresh node: node boot -> pull platform image -> init container fetches weights into the node
              cache -> pull the engine's image -> it loads weights into GPU memory -> warm-up
              -> /health
  warm node:  images present, weights in the node cache (a hit moves no bytes) -> load -> warm-up
The kubelet pulls a container's image just before starting it, so the engine's image pull does not
overlap the weights fetch unless the images are pre-pulled (then both pulls are zero).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # at run time any object with name, weights_gib and shards will do
    from vocabulary.config.serving import ModelConfig
    from vocabulary.gpu_instances import GpuInstance

GB = 1e9
GIB = 2**30


@dataclass(frozen=True)
class StartFacts:
    """The rates and sizes a start depends on. Defaults are planning figures (see
    docs/cold-start.md for where each comes from); pass measured ones where you have them."""

    node_boot_s: float = 90.0               # EC2 launch to node Ready (EKS GPU AMI, driver loaded)
    engine_image_gb: float = 10.0           # the engine's image, compressed (TGI's, as issue 18 measured it)
    platform_image_gb: float = 0.3          # the platform image the init container runs
    image_pull_mb_s: float = 60.0           # pull + unpack, ghcr.io through NAT
    fetch_connections: int = 32             # `llmops registry fetch` default concurrency
    per_connection_mb_s: float = 40.0       # one S3 connection (bench/weights.py's high rate)
    nic_gbps: float = 10.0                  # the node's sustained network bandwidth
    gpu_load_gb_s_per_shard: float = 1.0    # safetensors from NVMe page cache into one GPU
    warmup_s: float = 45.0                  # engine warm-up (prefill of max batch, CUDA graphs)
    container_start_s: float = 5.0          # scheduling, sandbox, volume mounts
    images_prepulled: bool = False

    def __post_init__(self) -> None:
        for name in ("image_pull_mb_s", "per_connection_mb_s", "nic_gbps", "gpu_load_gb_s_per_shard"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.fetch_connections < 1:
            raise ValueError(f"fetch_connections must be at least 1, got {self.fetch_connections}")

    @property
    def fetch_gb_s(self) -> float:
        """Weights fetch rate: connections x per-connection rate, capped by the NIC."""
        return min(self.fetch_connections * self.per_connection_mb_s * 1e6, self.nic_gbps * 1e9 / 8) / GB


@dataclass(frozen=True)
class ColdStart:
    """Seconds per phase of one model's pod start, and the two totals."""

    model: str
    weights_gb: float
    node_boot_s: float
    image_pull_s: float
    weights_fetch_s: float
    gpu_load_s: float
    warmup_s: float
    container_start_s: float

    @property
    def fresh_s(self) -> float:
        """A new node: everything, in the kubelet's order."""
        return (self.node_boot_s + self.image_pull_s + self.weights_fetch_s + self.container_start_s
                + self.gpu_load_s + self.warmup_s)

    @property
    def warm_s(self) -> float:
        """A node that already has the images and this version in its cache."""
        return self.container_start_s + self.gpu_load_s + self.warmup_s


def weights_gb(model: ModelConfig) -> float:
    return model.weights_gib * GIB / GB


def estimate(model: ModelConfig, facts: StartFacts | None = None) -> ColdStart:
    """The start phases of one model under the given facts."""
    facts = facts or StartFacts()
    size = weights_gb(model)
    images = 0.0 if facts.images_prepulled else (
        (facts.engine_image_gb + facts.platform_image_gb) * GB / (facts.image_pull_mb_s * 1e6))
    return ColdStart(
        model=model.name, weights_gb=size, node_boot_s=facts.node_boot_s, image_pull_s=images,
        weights_fetch_s=size / facts.fetch_gb_s,
        gpu_load_s=size / (facts.gpu_load_gb_s_per_shard * model.shards),
        warmup_s=facts.warmup_s, container_start_s=facts.container_start_s)


def facts_for(instance: GpuInstance, base: StartFacts | None = None, *, nic_gbps: float | None = None
              ) -> StartFacts:
    """Facts for one instance type: the fetch cannot use more connections than its CPUs can
    drive (about 8 per vCPU given to the init container, at most half the node's vCPUs)."""
    base = base or StartFacts()
    cpus = max(1, instance.vcpu // 2)
    return StartFacts(**{**base.__dict__, "fetch_connections": min(base.fetch_connections, 8 * cpus),
                         "nic_gbps": nic_gbps if nic_gbps is not None else base.nic_gbps})


def startup_probe_budget_s(start: ColdStart, safety: float = 2.0, floor_s: int = 300) -> int:
    """The engine container's startupProbe budget (period x failureThreshold): it starts after the
    init container, so it covers GPU load and warm-up only; rounded up to a 10 s period."""
    budget = max(floor_s, (start.container_start_s + start.gpu_load_s + start.warmup_s) * safety)
    return int(math.ceil(budget / 10) * 10)


def await_budget_s(start: ColdStart, safety: float = 1.5, floor_s: int = 600) -> int:
    """How long the deployment engine should wait for a rollout (Pulumi's customTimeouts on the
    Deployment): a fresh node's whole start, with margin; rounded up to a minute."""
    budget = max(floor_s, start.fresh_s * safety)
    return int(math.ceil(budget / 60) * 60)


def fetch_container_resources(instance: GpuInstance, concurrency: int = 32,
                              part_size_mib: int = 16) -> dict[str, dict[str, str]]:
    """CPU and memory for the weights init container: a quarter of the node's vCPUs (2-8; SHA-256
    runs at ~1-2 GB/s per core and the NIC needs a few more), and the fetcher's buffers
    (2 x concurrency x part size) plus 512 MiB for Python and boto3."""
    cpu = min(8, max(2, instance.vcpu // 4))
    memory_mib = 2 * concurrency * part_size_mib + 512
    memory = f"{math.ceil(memory_mib / 1024)}Gi"
    return {"requests": {"cpu": str(cpu), "memory": memory}, "limits": {"cpu": str(cpu), "memory": memory}}


def describe(seconds: float) -> str:
    """6m33s style, as data-on-eks reports its numbers."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s"
