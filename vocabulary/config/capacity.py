"""Replica limits the model's GPU pools can actually hold. A `replicas.max` above that is
never reached (the extra pods stay Pending) yet `llmops cost` and the budget policy would
price it, so it is refused. The pools' side is one function, `pools_gpu_capacity`: the most
GPUs the pools of a shape can ever run: their NodePools' limits (maxNodes, and the on-demand
floor's)."""

from __future__ import annotations

from vocabulary.config.gpu import GpuPool
from vocabulary.config.serving import ModelConfig


def pools_gpu_capacity(pools: list[GpuPool]) -> int:
    """The most GPUs these pools hold together: every NodePool at its limit."""
    return sum(nodes * p.gpus_per_node for p in pools for _capacity, nodes in p.node_pools)


def replica_capacity_problem(model: ModelConfig, capacity_gpus: int, pools: str) -> str | None:
    """A problem (a suffix of the model's key path) when replicas.max x GPUs per replica
    (its shards) exceeds `capacity_gpus`, the most its pools (`pools`, named) can hold."""
    needed = model.replicas.max * model.shards
    if needed <= capacity_gpus:
        return None
    fits = capacity_gpus // model.shards
    return (f".replicas.max: {model.replicas.max} replicas x {model.shards} GPU(s) each need "
            f"{needed} GPUs but the pools of shape {model.gpu_shape!r} ({pools}) hold at most "
            f"{capacity_gpus}; lower replicas.max to {fits} or raise the pools' maxNodes")


def capacity_problems(model: ModelConfig, pools: list[GpuPool]) -> list[str]:
    """The replica check against the pools of the model's shape."""
    candidates = [p for p in pools if p.shape == model.gpu_shape]
    if not candidates or candidates[0].gpus_per_node % model.shards:
        return []  # no pool, or shards that fit no node: placement says so
    problem = replica_capacity_problem(model, pools_gpu_capacity(candidates),
                                       ", ".join(p.name for p in candidates))
    return [problem] if problem else []
