"""`llmops:gpuPools`: GPU node groups, validated against the GPU instance facts table."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from components.gpu_instances import GpuInstance, gpu_instances
from stacks.config.base import Section, repeated, size_order_problem

POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
NVME_ROOT_VOLUME_GIB, EBS_ROOT_VOLUME_GIB = 50, 200


class GpuPool(Section):
    """One managed node group of GPU instances.

    Spot pools list several instance types with the same GPU count so capacity can be
    found in more spot markets; on-demand pools are the baseline that spot bursts above.
    """

    name: str
    instance_types: list[str] = Field(min_length=1)
    capacity_type: Literal["SPOT", "ON_DEMAND"]
    min_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    desired_size: int = Field(ge=0)
    root_volume_gib: int | None = Field(
        default=None, ge=30, le=2000,
        description="EBS root volume; default: 50 GiB where every type has NVMe instance "
        "store (kubelet, images and weights live there), else 200 GiB (TGI's image is ~10 GiB "
        "and the weights land here too)")
    max_unavailable_percentage: int = Field(default=33, ge=1, le=100)

    @field_validator("name")
    @classmethod
    def _dns_safe(cls, value: str) -> str:
        if not POOL_NAME.match(value):
            raise ValueError(f"{value!r} must be 2-31 lowercase letters, digits or dashes, "
                             "starting with a letter")
        return value

    @field_validator("instance_types")
    @classmethod
    def _known_gpu_types(cls, values: list[str]) -> list[str]:
        known = gpu_instances()
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(f"unknown GPU instance types {unknown}; known: {', '.join(sorted(known))}")
        if len(set(values)) != len(values):
            raise ValueError("instance types are listed more than once")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> GpuPool:
        problems = []
        sizes = size_order_problem(self.min_size, self.desired_size, self.max_size)
        if sizes:
            problems.append(sizes)
        if self.capacity_type == "SPOT" and len(self.instance_types) < 2:
            problems.append(f"spot pool {self.name!r} lists one instance type; list at least 2 "
                            "with the same GPU count so spot capacity can be found")
        shapes = {(t.gpus, t.gpu_memory_gib, t.vcpu, t.memory_gib) for t in self.instances}
        if len(shapes) > 1:
            detail = ", ".join(f"{t.name}={t.gpus}x{t.gpu_memory_gib}GiB/{t.vcpu}vCPU/"
                               f"{t.memory_gib}GiB" for t in self.instances)
            problems.append(f"pool {self.name!r} mixes node shapes ({detail}); pods are sized to "
                            "one node shape and cluster-autoscaler models a group by one type, so "
                            "list types with the same GPU count, GPU memory, vCPU and memory")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def instances(self) -> list[GpuInstance]:
        return [gpu_instances()[t] for t in self.instance_types]

    @property
    def root_volume(self) -> int:
        if self.root_volume_gib is not None:
            return self.root_volume_gib
        return NVME_ROOT_VOLUME_GIB if self.has_local_nvme else EBS_ROOT_VOLUME_GIB

    @property
    def shape(self) -> str:
        """What a model schedules on: GPU memory x count ("24gib-x4"), shared by every type
        of the pool and by spot and on-demand pools of the same shape."""
        first = self.instances[0]
        return f"{first.gpu_memory_gib}gib-x{first.gpus}"

    @property
    def gpu_models(self) -> list[str]:
        return sorted({t.gpu_model for t in self.instances})

    @property
    def gpus_per_node(self) -> int:
        return self.instances[0].gpus

    @property
    def smallest(self) -> GpuInstance:
        """The instance every pod must fit (the pool may get any of its types)."""
        return min(self.instances, key=lambda t: (t.gpu_memory_gib, t.memory_gib, t.vcpu))

    @property
    def has_local_nvme(self) -> bool:
        return all(t.has_local_nvme for t in self.instances)


def check_unique_pool_names(pools: list[GpuPool]) -> list[GpuPool]:
    dupes = repeated(p.name for p in pools)
    if dupes:
        raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
    return pools
