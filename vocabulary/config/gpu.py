"""`llmops:gpuPools`: one GPU shape each, provisioned by a Karpenter NodePool (+ EC2NodeClass),
validated against the GPU instance facts table."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vocabulary.config.base import Section, repeated
from vocabulary.gpu_instances import GpuInstance, gpu_instances

POOL_NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
RESERVATION_ID = re.compile(r"^cr-[0-9a-f]{8,17}$")
DURATION = re.compile(r"^(\d+h)?(\d+m)?(\d+s)?$")
NVME_ROOT_VOLUME_GIB, EBS_ROOT_VOLUME_GIB = 50, 200
#: Karpenter's capacity types (karpenter.sh/capacity-type, kubernetes-sigs/karpenter v1.14.1
#: pkg/apis/v1/labels.go), in the order this platform prefers them.
CAPACITY_ORDER = ("reserved", "spot", "on-demand")


class OnDemandFloor(Section):
    """An on-demand-only NodePool beside the pool's spot NodePool: models with two or more
    replicas spread evenly across the two, so a spot market event never takes all of them."""

    max_nodes: int = Field(ge=1, le=100)


class ConsolidationWindow(Section):
    """The daily hours (UTC: Karpenter's budget schedules have no time zone) in which
    consolidation may replace a node that still runs pods (Karpenter's `Underutilized`
    reason). A replaced node's model server pays a cold start (minutes of weights load) while
    its other replicas serve alone, so this is the quiet part of the day. Empty nodes go and
    drifted ones roll at any hour, within the pool's disruptionBudget."""

    start_hour_utc: int = Field(ge=0, le=23)
    hours: int = Field(ge=1, le=23, description="how long the window lasts (it may pass midnight)")

    @property
    def closed_from(self) -> str:
        """The cron schedule (minute hour * * *) at which the window closes."""
        return f"0 {(self.start_hour_utc + self.hours) % 24} * * *"

    @property
    def closed_for(self) -> str:
        """How long the window stays closed, as a NodePool budget duration (hours)."""
        return f"{24 - self.hours}h"


class GpuPool(Section):
    """One GPU shape (GPU count and memory per node): the instance types that give it, the
    capacity types it may buy, and how many nodes it may have (the NodePool's limits).

    List several types (>= 2) so Karpenter can find spot capacity in more markets; spot,
    then on-demand is the fallback order Karpenter follows, and consolidation moves pods back
    to spot when it returns.
    """

    name: str
    instance_types: list[str] = Field(min_length=2)
    capacity_types: list[Literal["spot", "on-demand"]] = Field(
        default=["spot", "on-demand"], min_length=1,
        description="what the NodePool may buy; `reserved` is added first when "
        "capacityReservations lists reservations")
    capacity_reservations: list[str] = Field(
        default=[], description="EC2 capacity reservation ids (cr-...) the pool uses first")
    max_nodes: int = Field(ge=1, le=100, description="the NodePool's limits: this many nodes' "
                           "GPUs and vCPUs (what the budget policy prices)")
    on_demand_floor: OnDemandFloor | None = None
    root_volume_gib: int | None = Field(
        default=None, ge=30, le=2000,
        description="EBS root volume; default: 50 GiB where every type has NVMe instance "
        "store (kubelet, images and weights live there), else 200 GiB (TGI's image is ~10 GiB "
        "and the weights land here too)")
    consolidate_after: str = Field(default="10m", description="how long a node stays empty or "
                                   "underused before Karpenter removes or replaces it")
    expire_after: str = Field(default="Never", description="a node's maximum life, or Never: "
                              "expiry drains forcefully, ignoring disruption budgets, so AMI updates "
                              "roll by drift instead (the pinned amiVersion changes)")
    disruption_budget: str = Field(default="10%", pattern=r"^(\d{1,2}%|100%|\d+)$",
                                   description="nodes (or share) Karpenter may disrupt at once")
    underutilized_window: ConsolidationWindow | None = Field(
        default=ConsolidationWindow(start_hour_utc=4, hours=4),
        description="when consolidation may replace nodes that still run model servers (UTC); "
        "null: at any hour. Default 04:00-08:00 UTC")

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

    @field_validator("capacity_types")
    @classmethod
    def _unique_capacity(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError("capacity types are listed more than once")
        return values

    @field_validator("capacity_reservations")
    @classmethod
    def _reservation_ids(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not RESERVATION_ID.match(v)]
        if bad:
            raise ValueError(f"not capacity reservation ids (cr- and 8-17 hex digits): {bad}")
        return values

    @field_validator("consolidate_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not value or not DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration such as 10m, 720h or 1h30m")
        return value

    @field_validator("expire_after")
    @classmethod
    def _lifetime(cls, value: str) -> str:
        if value != "Never" and (not value or not DURATION.match(value)):
            raise ValueError(f"{value!r} is not a duration such as 720h or 1h30m, nor Never")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GpuPool:
        problems = []
        shapes = {(t.gpus, t.gpu_memory_gib) for t in self.instances}
        if len(shapes) > 1:
            detail = ", ".join(f"{t.name}={t.gpus}x{t.gpu_memory_gib}GiB" for t in self.instances)
            problems.append(f"pool {self.name!r} mixes GPU shapes ({detail}); models select one "
                            "shape, so list types with the same GPU count and GPU memory")
        if self.on_demand_floor and "spot" not in self.capacity_types:
            problems.append(f"pool {self.name!r} has an onDemandFloor but buys no spot; the floor "
                            "keeps replicas off a single spot market, so it needs spot beside it")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def capacity(self) -> list[str]:
        """Capacity types of the pool's main NodePool, in Karpenter's values and our order."""
        wanted = set(self.capacity_types) | ({"reserved"} if self.capacity_reservations else set())
        return [c for c in CAPACITY_ORDER if c in wanted]

    @property
    def node_pools(self) -> list[tuple[list[str], int]]:
        """(capacity types, max nodes) of each NodePool the pool becomes: its own, and its
        on-demand floor where it has one (components/nodepools.py renders the same)."""
        pools = [(self.capacity, self.max_nodes)]
        if self.on_demand_floor:
            pools.append((["on-demand"], self.on_demand_floor.max_nodes))
        return pools

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
        of the pool."""
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
        """The instance every pod must fit (Karpenter may launch any of the pool's types)."""
        return min(self.instances, key=lambda t: (t.memory_gib, t.vcpu))

    @property
    def has_local_nvme(self) -> bool:
        return all(t.has_local_nvme for t in self.instances)


def check_unique_pool_names(pools: list[GpuPool]) -> list[GpuPool]:
    dupes = repeated(p.name for p in pools)
    if dupes:
        raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
    shapes = repeated(p.shape for p in pools)
    if shapes:
        raise ValueError(f"one pool per GPU shape (a NodePool may launch any of its types); "
                         f"shapes repeated: {', '.join(shapes)}; merge their instanceTypes")
    return pools
