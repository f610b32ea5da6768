"""CPU instance facts (vocabulary/data/cpu_instances.yaml) for the nodes that are not GPU nodes:
the system node group and the traffic NodePool. With the GPU table, what every node's
allocatable is computed from (components/allocatable.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol

import yaml

from vocabulary.gpu_instances import gpu_instances

DATA = Path(__file__).parent / "data" / "cpu_instances.yaml"


class NodeShape(Protocol):
    """What a node's allocatable depends on: its name, vCPUs, memory and ENI-limited pods."""

    @property
    def name(self) -> str: ...
    @property
    def vcpu(self) -> int: ...
    @property
    def memory_gib(self) -> int: ...
    @property
    def max_pods(self) -> int: ...


@dataclass(frozen=True)
class CpuInstance:
    name: str
    vcpu: int
    memory_gib: int
    enis: int
    ips_per_eni: int

    @property
    def max_pods(self) -> int:
        """ENI-limited pods, as for GPU instances (vocabulary/gpu_instances.py)."""
        return self.enis * (self.ips_per_eni - 1) + 2


@cache
def cpu_instances() -> dict[str, CpuInstance]:
    raw = yaml.safe_load(DATA.read_text())
    return {name: CpuInstance(name=name, vcpu=f["vcpu"], memory_gib=f["memoryGiB"], enis=f["enis"],
                              ips_per_eni=f["ipsPerEni"]) for name, f in raw.items()}


def node_instances() -> dict[str, NodeShape]:
    """Every instance type the platform knows the shape of, GPU and CPU."""
    return {**gpu_instances(), **cpu_instances()}
