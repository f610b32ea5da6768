"""Monthly GPU cost of an environment, per NodePool and per model, from the instance facts
(vocabulary/gpu_instances.py) the pools are validated with and the budget policy
(policies/gpu_cost.py) prices with: one table, so the estimate, the policy and the platform
never disagree about what an instance costs.

Each NodePool is priced from the spec the workloads stack applies (components/gpu_nodes.py
node_pool_specs): its GPU limit in nodes, at the priciest of its types. The maximum is the
worst case the budget policy checks (every node at the priciest capacity type the NodePool
may buy: on-demand where it falls back); the minimum and typical figures are the nodes the
models' minimum replicas need, at the cheapest capacity (spot first). 730 hours a month.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vocabulary.config import PlatformConfig
from vocabulary.config.gpu import GpuPool
from vocabulary.config.placement import pools_of_shape
from vocabulary.config.serving import ModelConfig
from vocabulary.gpu_instances import HOURS_PER_MONTH, FleetPrice, price_node_limit

#: kubernetes-sigs/karpenter v1.14.1 pkg/apis/v1/labels.go (as components/gpu_nodes.py)
CAPACITY_LABEL, INSTANCE_TYPE_LABEL = "karpenter.sh/capacity-type", "node.kubernetes.io/instance-type"


@dataclass(frozen=True)
class PoolCost:
    """One NodePool: node counts (models' floor, typical, its limit) and node prices."""

    name: str
    capacity_type: str       # the capacity types it may buy, "spot+on-demand"
    instance_type: str       # the priciest type, the one every node is priced at
    nodes: tuple[int, int, int]  # min, typical, max (the limit)
    hourly: float            # at the cheapest capacity it may buy
    worst_hourly: float      # at the priciest capacity it may buy
    on_demand_hourly: float

    def monthly(self, nodes: int) -> float:
        return nodes * self.hourly * HOURS_PER_MONTH

    @property
    def range(self) -> tuple[float, float, float]:
        low, typical, high = self.nodes
        return (self.monthly(low), self.monthly(typical), high * self.worst_hourly * HOURS_PER_MONTH)

    @property
    def savings(self) -> float:
        """Share saved against the same nodes on demand (0 for on-demand pools)."""
        return 1 - self.hourly / self.on_demand_hourly if self.on_demand_hourly else 0.0

    @property
    def spot(self) -> bool:
        return "spot" in self.capacity_type.split("+")


@dataclass(frozen=True)
class ModelCost:
    """One model alone on its GPU shape: nodes for its min and max replicas, priced on the
    cheapest NodePool of that shape at its cheapest capacity (spot) and the priciest at its
    priciest (on-demand fallback)."""

    name: str
    gpu_shape: str
    replicas: tuple[int, int]
    pods_per_node: int
    nodes: tuple[int, int]
    cheapest: PoolCost
    priciest: PoolCost
    engine: str = "tgi"

    def monthly(self, pool: PoolCost, worst: bool = False) -> tuple[float, float]:
        hourly = pool.worst_hourly if worst else pool.hourly
        return tuple(n * hourly * HOURS_PER_MONTH for n in self.nodes)  # type: ignore[return-value]


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


def _node_pool_specs(pool: GpuPool) -> dict[str, dict]:
    """The NodePools the workloads stack applies for the pool (imported when priced: every
    llmops process imports this module, and the components pull in pulumi_kubernetes)."""
    from components.gpu_nodes import node_pool_specs

    return node_pool_specs(pool)


def _requirement(spec: dict, key: str) -> list[str]:
    return next(r["values"] for r in spec["template"]["spec"]["requirements"] if r["key"] == key)


def node_pool_price(spec: dict) -> FleetPrice:
    """A NodePool spec priced at its limits (what the budget policy does on the plan)."""
    return price_node_limit(_requirement(spec, INSTANCE_TYPE_LABEL), _requirement(spec, CAPACITY_LABEL),
                            int(spec["limits"]["nvidia.com/gpu"]))


def _model_nodes(model: ModelConfig, pool: GpuPool) -> tuple[int, int]:
    """Nodes the model's min replicas need in the pool's flex NodePool and its floor (the
    capacity spread puts half of a multi-replica model on the floor, rounded down)."""
    per_node = max(1, pool.gpus_per_node // model.shards)
    on_floor = model.replicas.min // 2 if pool.on_demand_floor and model.replicas.min >= 2 else 0
    return (math.ceil((model.replicas.min - on_floor) / per_node), math.ceil(on_floor / per_node))


def pool_costs(pool: GpuPool, models: list[ModelConfig]) -> list[PoolCost]:
    mine = [m for m in models if m.gpu_shape == pool.shape]
    floors = [_model_nodes(m, pool) for m in mine]
    costs = []
    for i, (name, spec) in enumerate(_node_pool_specs(pool).items()):
        price = node_pool_price(spec)
        low = sum(f[i] for f in floors)
        costs.append(PoolCost(name, "+".join(_requirement(spec, CAPACITY_LABEL)), price.instance_type,
                              (low, low, price.nodes), price.cheapest_hourly, price.worst_hourly,
                              price.on_demand_hourly))
    return costs


def model_cost(model: ModelConfig, pools: dict[str, PoolCost], config: PlatformConfig) -> ModelCost | None:
    shape_pools = pools_of_shape(config.gpu_pools, model.gpu_shape)
    candidates = [pools[name] for p in shape_pools for name in _node_pool_specs(p)]
    if not candidates:
        return None
    per_node = max(1, shape_pools[0].gpus_per_node // model.shards)
    replicas = (model.replicas.min, model.replicas.max)
    return ModelCost(model.name, model.gpu_shape, replicas, per_node,
                     tuple(math.ceil(r / per_node) for r in replicas),  # type: ignore[arg-type]
                     min(candidates, key=lambda p: p.hourly),
                     max(candidates, key=lambda p: p.worst_hourly), model.engine)


def estimate(config: PlatformConfig) -> CostEstimate:
    pools = {c.name: c for p in config.gpu_pools for c in pool_costs(p, config.models)}
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
