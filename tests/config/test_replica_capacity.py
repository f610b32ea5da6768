"""A model's replicas.max x GPUs per replica against the most GPUs its pools can hold, at the
boundary, with shards, and over every pool of the model's shape (spot and on-demand)."""

from __future__ import annotations

from vocabulary.config import PRODUCT, ConfigError, parse_platform_config
from vocabulary.config.capacity import pools_gpu_capacity
from vocabulary.stackfile import read_stack_config


def problems(stack: str, overrides: dict) -> list[str]:
    try:
        parse_platform_config(read_stack_config(stack).with_overrides(overrides).values,
                              project=PRODUCT, stack=stack)
    except ConfigError as exc:
        return exc.problems
    return []


def test_the_shipped_pools_capacity_is_every_nodepool_at_its_limit():
    config = parse_platform_config(read_stack_config("prod").values, project=PRODUCT, stack="prod")
    # gpu24-x1: flex 12 + floor 6 nodes of 1 GPU; gpu24-x4: flex 4 + floor 2 nodes of 4
    assert pools_gpu_capacity(config.gpu_pools) == (12 + 6) * 1 + (4 + 2) * 4


def test_replicas_up_to_the_pools_capacity_pass_and_one_more_is_refused():
    # dev: gpu24-x1, maxNodes 3, one GPU per node; llama-3-8b has 1 shard
    assert problems("dev", {"llmops:models.0.replicas.max": 3}) == []
    assert problems("dev", {"llmops:models.0.replicas.max": 4}) == [
        "llmops:models[0] (llama-3-8b).replicas.max: 4 replicas x 1 GPU(s) each need 4 GPUs but "
        "the pools of shape '24gib-x1' (gpu24-x1) hold at most 3; lower replicas.max to 3 "
        "or raise the pools' maxNodes"]


def test_shards_count_as_gpus_per_replica_over_all_pools_of_the_shape():
    # prod: qwen-2-5-32b has 4 shards on 24gib-x4; the shape's pools hold 24 GPUs = 6 replicas
    assert problems("prod", {"llmops:models.1.replicas.max": 6}) == []
    found = problems("prod", {"llmops:models.1.replicas.max": 7})
    assert found == [
        "llmops:models[1] (qwen-2-5-32b).replicas.max: 7 replicas x 4 GPU(s) each need 28 GPUs "
        "but the pools of shape '24gib-x4' (gpu24-x4) hold at most 24; "
        "lower replicas.max to 6 or raise the pools' maxNodes"]


def test_it_is_reported_with_field_errors_elsewhere_in_one_round():
    found = problems("dev", {"llmops:models.0.replicas.max": 9, "llmops:network.azCount": 9})
    assert len(found) == 2
    assert found[1].startswith("llmops:models[0] (llama-3-8b).replicas.max: 9 replicas")
