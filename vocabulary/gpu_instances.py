"""GPU instance facts (vocabulary/data/gpu_instances.yaml): one table for pool validation,
pod sizing, cost estimates and the budget policy."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

DATA = Path(__file__).parent / "data" / "gpu_instances.yaml"
HOURS_PER_MONTH = 730


@dataclass(frozen=True)
class GpuInstance:
    """What one EC2 GPU instance type offers, and what it costs per hour."""

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_gib: int
    vcpu: int
    memory_gib: int
    local_nvme_gb: int
    on_demand_hourly: float
    spot_estimate_hourly: float
    enis: int
    ips_per_eni: int

    @property
    def max_pods(self) -> int:
        """ENI-limited pods, as nodeadm (eni_max_pods.go calculateStandardMaxPods) and
        Karpenter (pkg/providers/instancetype/types.go ENILimitedPods) both compute it."""
        return self.enis * (self.ips_per_eni - 1) + 2

    @property
    def has_local_nvme(self) -> bool:
        return self.local_nvme_gb > 0

    def hourly(self, capacity_type: str) -> float:
        """Price per hour for a capacity type: "spot" (or "SPOT"), else on-demand (a
        reservation is priced as on-demand: it is paid whether used or not)."""
        return self.spot_estimate_hourly if capacity_type.lower() == "spot" else self.on_demand_hourly


@cache
def gpu_instances() -> dict[str, GpuInstance]:
    raw = yaml.safe_load(DATA.read_text())
    return {
        name: GpuInstance(name=name, gpus=f["gpus"], gpu_model=f["gpuModel"],
                          gpu_memory_gib=f["gpuMemoryGiB"], vcpu=f["vcpu"],
                          memory_gib=f["memoryGiB"], local_nvme_gb=f["localNvmeGB"],
                          on_demand_hourly=float(f["onDemandHourly"]),
                          spot_estimate_hourly=float(f["spotEstimateHourly"]),
                          enis=f["enis"], ips_per_eni=f["ipsPerEni"])
        for name, f in raw.items()
    }


@dataclass(frozen=True)
class FleetPrice:
    """The most a set of GPU nodes can cost: `nodes` of the priciest allowed type at the
    priciest allowed capacity type, and what the same nodes cost at the cheapest."""

    nodes: int
    instance_type: str
    capacity_type: str        # what the worst case is priced at
    worst_hourly: float       # per node
    cheapest_capacity: str
    cheapest_hourly: float    # per node, the priciest type at the cheapest capacity
    on_demand_hourly: float   # per node

    def monthly(self, nodes: int | None = None, worst: bool = True) -> float:
        count = self.nodes if nodes is None else nodes
        return count * (self.worst_hourly if worst else self.cheapest_hourly) * HOURS_PER_MONTH


def price_node_limit(instance_types: list[str], capacity_types: list[str], gpu_limit: int) -> FleetPrice:
    """Price a NodePool's limits: its GPU limit in nodes of its types. Reserved capacity is
    paid whether used or not, so it is priced as on-demand; spot at the spot estimate.
    Raises KeyError for a type the table does not price."""
    table = gpu_instances()
    types = [table[t] for t in instance_types]
    nodes = gpu_limit // min(t.gpus for t in types)
    by_price = sorted(capacity_types, key=lambda c: max(t.hourly(c) for t in types))
    cheapest, worst = by_price[0], by_price[-1]
    priciest = max(types, key=lambda t: t.hourly(worst))
    return FleetPrice(nodes, priciest.name, worst, priciest.hourly(worst), cheapest,
                      priciest.hourly(cheapest), priciest.on_demand_hourly)
