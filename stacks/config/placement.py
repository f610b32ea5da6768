"""Where a model can run: the GPU pools of its shape, checked against the model's needs.

Models select a GPU shape (GPU memory x count), not a pool, so spot and on-demand pools of
the same shape are all candidates and cluster-autoscaler's priorities decide which one grows.
"""

from __future__ import annotations

from stacks.config.gpu import GpuPool
from stacks.config.serving import WEIGHTS_SHARE_OF_GPU, ModelConfig, ServingConfig


def pools_of_shape(pools: list[GpuPool], shape: str) -> list[GpuPool]:
    return [p for p in pools if p.shape == shape]


def model_placement_problems(model: ModelConfig, pools: list[GpuPool],
                             serving: ServingConfig) -> list[str]:
    """Problems as suffixes of the model's key path (".gpuShape: ...", ": ...")."""
    candidates = pools_of_shape(pools, model.gpu_shape)
    if not candidates:
        shapes = sorted({p.shape for p in pools})
        return [f".gpuShape: no GPU pool has shape {model.gpu_shape!r}; pool shapes: "
                f"{', '.join(shapes)}"]
    problems = []
    gpus = candidates[0].gpus_per_node
    if model.shards > gpus or gpus % model.shards:
        return [f".shards: {model.shards} must divide the {gpus} GPU(s) per node of shape "
                f"{model.gpu_shape!r}"]
    gpu = min((p.smallest for p in candidates), key=lambda t: t.gpu_memory_gib)
    usable = model.shards * gpu.gpu_memory_gib * WEIGHTS_SHARE_OF_GPU
    if model.weights_gib > usable:
        problems.append(
            f": {model.params_billion:g}B parameters at {model.precision} need "
            f"{model.weights_gib:.1f} GiB of weights but {model.shards} x {gpu.gpu_model} "
            f"({gpu.gpu_memory_gib} GiB, {gpu.name}) leave {usable:.1f} GiB after KV cache "
            "headroom; quantize, add shards or use a larger GPU class")
    capacity = {p.capacity_type for p in candidates}
    if serving.on_demand_fallback and capacity != {"SPOT", "ON_DEMAND"}:
        missing = "on-demand" if "ON_DEMAND" not in capacity else "spot"
        problems.append(f".gpuShape: llmops:serving.onDemandFallback is on but shape "
                        f"{model.gpu_shape!r} has no {missing} pool (pools: "
                        f"{', '.join(p.name for p in candidates)})")
    if model.replicas.min < serving.min_replicas:
        problems.append(f".replicas.min: {model.replicas.min} is below llmops:serving.minReplicas "
                        f"({serving.min_replicas}); one replica per zone must survive a spot "
                        "reclaim or a node loss")
    return problems
