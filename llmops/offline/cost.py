"""Monthly GPU cost of an environment, per pool and per model, from the instance facts
(components/gpu_instances.py) the pools are validated with and the budget policy
(policies/gpu_cost.py) prices with: one table, so the estimate, the policy and the platform
never disagree about what an instance costs.

A node is priced at the priciest of its pool's instance types at the pool's capacity type,
as the budget policy does: the autoscaler may get any of the types. 730 hours a month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from components.gpu_instances import HOURS_PER_MONTH
from stacks.config import PlatformConfig
from stacks.config.gpu import GpuPool
from stacks.config.placement import pools_of_shape
from stacks.config.serving import ModelConfig


@dataclass(frozen=True)
class PoolCost:
    """One node pool: its node counts and what a node costs at its capacity and on demand."""

    name: str
    capacity_type: str
    instance_type: str  # the priciest type, the one every node is priced at
    nodes: tuple[int, int, int]  # min, typical (desired), max
    hourly: float
    on_demand_hourly: float

    def monthly(self, nodes: int) -> float:
        return nodes * self.hourly * HOURS_PER_MONTH

    @property
    def range(self) -> tuple[float, float, float]:
        return tuple(self.monthly(n) for n in self.nodes)  # type: ignore[return-value]

    @property
    def savings(self) -> float:
        """Share saved against the same nodes on demand (0 for on-demand pools)."""
        return 1 - self.hourly / self.on_demand_hourly if self.on_demand_hourly else 0.0


@dataclass(frozen=True)
class ModelCost:
    """One model alone on its GPU shape: nodes for its min and max replicas, priced on the
    cheapest and the priciest pool of that shape (spot first, on-demand fallback)."""

    name: str
    gpu_shape: str
    replicas: tuple[int, int]
    pods_per_node: int
    nodes: tuple[int, int]
    cheapest: PoolCost
    priciest: PoolCost
    engine: str = "tgi"

    def monthly(self, pool: PoolCost) -> tuple[float, float]:
        return pool.monthly(self.nodes[0]), pool.monthly(self.nodes[1])


@dataclass(frozen=True)
class CostEstimate:
    pools: list[PoolCost]
    models: list[ModelCost]

    @property
    def total(self) -> tuple[float, float, float]:
        """Min, typical, max of the whole GPU fleet; max is what the budget policy checks."""
        return tuple(sum(p.range[i] for p in self.pools) for i in range(3))  # type: ignore[return-value]

    @property
    def on_demand_typical(self) -> float:
        return sum(p.nodes[1] * p.on_demand_hourly * HOURS_PER_MONTH for p in self.pools)


def pool_cost(pool: GpuPool) -> PoolCost:
    priciest = max(pool.instances, key=lambda t: t.hourly(pool.capacity_type))
    return PoolCost(pool.name, pool.capacity_type, priciest.name,
                    (pool.min_size, pool.desired_size, pool.max_size),
                    priciest.hourly(pool.capacity_type), priciest.on_demand_hourly)


def model_cost(model: ModelConfig, pools: dict[str, PoolCost], config: PlatformConfig) -> ModelCost | None:
    candidates = [pools[p.name] for p in pools_of_shape(config.gpu_pools, model.gpu_shape)]
    if not candidates:
        return None
    gpus = pools_of_shape(config.gpu_pools, model.gpu_shape)[0].gpus_per_node
    per_node = max(1, gpus // model.shards)
    replicas = (model.replicas.min, model.replicas.max)
    return ModelCost(model.name, model.gpu_shape, replicas, per_node,
                     tuple(math.ceil(r / per_node) for r in replicas),  # type: ignore[arg-type]
                     min(candidates, key=lambda p: p.hourly),
                     max(candidates, key=lambda p: p.hourly), model.engine)


def estimate(config: PlatformConfig) -> CostEstimate:
    pools = {p.name: pool_cost(p) for p in config.gpu_pools}
    models = [c for m in config.models if (c := model_cost(m, pools, config)) is not None]
    return CostEstimate(list(pools.values()), models)


def usd(amount: float) -> str:
    return f"${amount:,.0f}"


def summary_line(cost: CostEstimate, stack: str) -> str:
    """The one line every plan ends with."""
    low, typical, high = cost.total
    line = f"GPU cost: {usd(low)}-{usd(high)}/month, typically {usd(typical)}"
    if cost.on_demand_typical > typical:
        line += f" ({1 - typical / cost.on_demand_typical:.0%} below on-demand)"
    return line + f"; `llmops cost --stack {stack}` for the breakdown"
