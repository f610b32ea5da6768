"""Where a model can run: the GPU pool of its shape, checked against the model's needs.

Models select a GPU shape (GPU memory x count), not a pool or a capacity type: the shape's
NodePool buys spot first and falls back to on-demand (Karpenter), and its on-demand floor,
where there is one, holds half of a multi-replica model's pods (components/gpu_nodes.py).
"""

from __future__ import annotations

import math

from vocabulary.config.gpu import GpuPool
from vocabulary.config.serving import WEIGHTS_SHARE_OF_GPU, ModelConfig, ServingConfig

#: kubelet evicts pods when imagefs has less than 15% free (nodefs: 10%); the model cache,
#: kubelet and containerd share the node's disk, so a cache fill leaves that much free...
EVICTION_FREE_SHARE = 0.15
#: ...plus room for TGI's image (~10 GB compressed, twice that unpacked) and the next one.
IMAGE_ALLOWANCE_GIB = 40
GB_PER_GIB = 1024**3 / 1e9


def node_disk_gib(pool: GpuPool) -> int:
    """The disk the node-shared model cache lives on: the smallest NVMe RAID0 of the pool's
    types (sold in GB), or the root volume where there is no NVMe."""
    if pool.has_local_nvme:
        return math.floor(min(t.local_nvme_gb for t in pool.instances) / GB_PER_GIB)
    return pool.root_volume


def cache_reserve_gib(disk_gib: int) -> int:
    """Free space a cache fill must leave: enough that the cache never puts the node under
    disk pressure (kubelet would evict the model servers) and images still fit."""
    return math.ceil(disk_gib * EVICTION_FREE_SHARE) + IMAGE_ALLOWANCE_GIB


def shape_cache_reserve_gib(pools: list[GpuPool]) -> int:
    """One reserve for every node a model's pods may land on (a fetch cannot tell which pool
    its node came from): the largest any of them needs."""
    return max(cache_reserve_gib(node_disk_gib(p)) for p in pools)


def cache_entry_gib(model: ModelConfig) -> int:
    """A version's cache entry: the weights plus headroom for tokenizer and adapters."""
    return math.ceil(model.weights_gib * 1.2) + 5


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
    reserve = shape_cache_reserve_gib(candidates)
    tightest = min(candidates, key=node_disk_gib)
    if cache_entry_gib(model) > node_disk_gib(tightest) - reserve:
        problems.append(
            f": needs {cache_entry_gib(model)} GiB in the node's model cache but pool "
            f"{tightest.name!r} has {node_disk_gib(tightest)} GiB of "
            f"{'NVMe' if tightest.has_local_nvme else 'root volume'} of which {reserve} GiB stay "
            "free (kubelet's eviction threshold and images); "
            + ("use types with more instance storage" if tightest.has_local_nvme
               else "raise the pool's rootVolumeGiB"))
    capacity = {c for p in candidates for c in p.capacity}
    if serving.on_demand_fallback and not {"spot", "on-demand"} <= capacity:
        missing = "on-demand" if "on-demand" not in capacity else "spot"
        problems.append(f".gpuShape: llmops:serving.onDemandFallback is on but pool "
                        f"{candidates[0].name!r} of shape {model.gpu_shape!r} buys no {missing} "
                        "(its capacityTypes)")
    elif (serving.on_demand_fallback and model.replicas.min >= 2
          and not any(p.on_demand_floor for p in candidates)):
        problems.append(f".replicas.min: {model.replicas.min} replicas could all sit on spot and go "
                        f"in one market event; give pool {candidates[0].name!r} an onDemandFloor "
                        "(its replicas spread evenly across spot and the floor)")
    if model.replicas.min < serving.min_replicas:
        problems.append(f".replicas.min: {model.replicas.min} is below llmops:serving.minReplicas "
                        f"({serving.min_replicas}); one replica per zone must survive a spot "
                        "reclaim or a node loss")
    return problems
