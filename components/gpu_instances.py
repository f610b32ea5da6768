"""GPU instance facts (components/data/gpu_instances.yaml): one table for pool validation,
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

    @property
    def has_local_nvme(self) -> bool:
        return self.local_nvme_gb > 0

    def hourly(self, capacity_type: str) -> float:
        """Price per hour for "SPOT" or "ON_DEMAND"."""
        return self.spot_estimate_hourly if capacity_type == "SPOT" else self.on_demand_hourly


@cache
def gpu_instances() -> dict[str, GpuInstance]:
    raw = yaml.safe_load(DATA.read_text())
    return {
        name: GpuInstance(name=name, gpus=f["gpus"], gpu_model=f["gpuModel"],
                          gpu_memory_gib=f["gpuMemoryGiB"], vcpu=f["vcpu"],
                          memory_gib=f["memoryGiB"], local_nvme_gb=f["localNvmeGB"],
                          on_demand_hourly=float(f["onDemandHourly"]),
                          spot_estimate_hourly=float(f["spotEstimateHourly"]))
        for name, f in raw.items()
    }
