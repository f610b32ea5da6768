"""How much of a GPU node's disk the node-shared model cache may fill, and the config check
that refuses a model whose cache entry would not fit (vocabulary/config/placement.py)."""

from __future__ import annotations

from tests.config.test_config_boundaries import validate
from vocabulary.config.gpu import GpuPool
from vocabulary.config.placement import (
    cache_entry_gib,
    cache_reserve_gib,
    model_placement_problems,
    node_disk_gib,
    shape_cache_reserve_gib,
)


def _pool(name: str, types: list[str]) -> GpuPool:
    return GpuPool(name=name, instance_types=types, max_nodes=2)


def test_the_cache_disk_is_the_smallest_nvme_raid_of_the_pool_in_gib():
    assert node_disk_gib(_pool("pool-a", ["g6.xlarge", "g5.xlarge"])) == 232        # 250 GB
    assert node_disk_gib(_pool("pool-b", ["g5.12xlarge", "g5.24xlarge"])) == 3539  # 3800 GB
    assert node_disk_gib(_pool("pool-c", ["g6.2xlarge", "g5.2xlarge"])) == 419


def test_a_fill_leaves_kubelets_eviction_share_and_room_for_images():
    assert cache_reserve_gib(232) == 35 + 40     # 15% rounded up, plus TGI's images
    assert cache_reserve_gib(100) == 15 + 40
    assert cache_reserve_gib(101) == 16 + 40     # never rounds the share down


def test_one_reserve_serves_every_pool_a_model_may_land_on():
    small, large = _pool("small", ["g6.xlarge", "g5.xlarge"]), _pool("large", ["g6.2xlarge", "g5.2xlarge"])
    assert shape_cache_reserve_gib([small, large]) == cache_reserve_gib(419) == 103
    assert shape_cache_reserve_gib([small]) == 75


def _cache_problems(params_billion: float) -> tuple[int, list[str]]:
    config = validate()
    model = config.models[0].model_copy(update={"params_billion": params_billion})
    found = model_placement_problems(model, config.gpu_pools, config.serving)
    return cache_entry_gib(model), [p for p in found if "model cache" in p]


def test_a_model_whose_cache_entry_fills_the_room_exactly_fits_and_one_gib_more_is_refused():
    # dev: g6.xlarge/g5.xlarge, 232 GiB of NVMe, 75 GiB kept free: 157 GiB for the cache
    sizes = {}
    for tenth in range(600, 800):
        entry, problems = _cache_problems(tenth / 10)
        sizes.setdefault(entry, problems)
    assert sizes[157] == []
    assert sizes[158] == [
        ": needs 158 GiB in the node's model cache but pool 'gpu24-x1' has 232 GiB of NVMe of "
        "which 75 GiB stay free (kubelet's eviction threshold and images); use types with more "
        "instance storage"]
