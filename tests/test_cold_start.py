"""components/cold_start.py: phases, totals and budgets of a pod's start, and the documented
estimates for the shipped models staying true to the module."""

from __future__ import annotations

from pathlib import Path

import pytest

from components.cold_start import (
    StartFacts,
    await_budget_s,
    describe,
    estimate,
    facts_for,
    fetch_container_resources,
    startup_probe_budget_s,
)
from llmops.offline.plan import OFFLINE_SECRET
from vocabulary.config import parse_platform_config, secret_config_keys
from vocabulary.config.serving import ModelConfig
from vocabulary.gpu_instances import gpu_instances
from vocabulary.stackfile import read_stack_config

DOC = Path(__file__).resolve().parents[1] / "docs" / "cold-start.md"


def model(params_billion: float = 8, shards: int = 1, **extra) -> ModelConfig:
    return ModelConfig.model_validate({
        "name": "llama-3-8b", "registry": {"stage": "production"}, "gpuShape": "24gib-x1",
        "paramsBillion": params_billion, "shards": shards, "maxInputTokens": 10, "maxTotalTokens": 20,
        "maxBatchPrefillTokens": 10, "replicas": {"min": 1, "max": 2}, **extra})


def test_an_8b_bf16_model_phase_by_phase():
    facts = StartFacts(node_boot_s=90, engine_image_gb=10, platform_image_gb=0.3, image_pull_mb_s=100,
                       fetch_connections=20, per_connection_mb_s=40, nic_gbps=100,
                       gpu_load_gb_s_per_shard=2, warmup_s=40, container_start_s=5)

    start = estimate(model(8, dtype="bfloat16"), facts)

    assert start.weights_gb == pytest.approx(16.0)
    assert start.image_pull_s == pytest.approx(103.0)
    assert start.weights_fetch_s == pytest.approx(20.0)   # 20 x 40 MB/s = 0.8 GB/s
    assert start.gpu_load_s == pytest.approx(8.0)
    assert start.fresh_s == pytest.approx(90 + 103 + 20 + 5 + 8 + 40)
    assert start.warm_s == pytest.approx(5 + 8 + 40)


def test_the_nic_caps_the_fetch_and_prepulled_images_cost_nothing():
    facts = StartFacts(fetch_connections=64, per_connection_mb_s=40, nic_gbps=10, images_prepulled=True)
    assert facts.fetch_gb_s == pytest.approx(1.25)
    start = estimate(model(), facts)
    assert start.image_pull_s == 0
    assert start.weights_fetch_s == pytest.approx(16.0 / 1.25)


def test_shards_load_their_slices_in_parallel():
    one, four = estimate(model(32, 1, quantize="awq")), estimate(model(32, 4, quantize="awq"))
    assert one.gpu_load_s == pytest.approx(4 * four.gpu_load_s)
    assert one.weights_fetch_s == four.weights_fetch_s  # the node fetches the whole model either way


def test_a_small_node_gets_fewer_fetch_connections():
    assert facts_for(gpu_instances()["g6.xlarge"]).fetch_connections == 16  # 4 vCPUs: 2 for the fetch
    assert facts_for(gpu_instances()["g5.12xlarge"]).fetch_connections == 32
    assert facts_for(gpu_instances()["g5.12xlarge"], nic_gbps=40).nic_gbps == 40


def test_budgets_cover_their_phases_with_margin_and_round_up():
    start = estimate(model(70, 8, dtype="bfloat16"), StartFacts(gpu_load_gb_s_per_shard=0.25, warmup_s=300))
    probe = startup_probe_budget_s(start, safety=2.0)
    assert probe % 10 == 0 and probe >= 2 * (start.container_start_s + start.gpu_load_s + start.warmup_s)
    assert probe - 10 < 2 * (start.container_start_s + start.gpu_load_s + start.warmup_s)
    engine = await_budget_s(start, safety=1.5)
    assert engine % 60 == 0 and start.fresh_s * 1.5 <= engine < start.fresh_s * 1.5 + 60
    small = estimate(model(1, dtype="bfloat16"), StartFacts(images_prepulled=True))
    assert startup_probe_budget_s(small) == 300 and await_budget_s(small) == 600  # the floors


def test_fetch_container_resources_follow_the_node_and_the_buffers():
    assert fetch_container_resources(gpu_instances()["g6.xlarge"]) == {
        "requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    big = fetch_container_resources(gpu_instances()["p5.48xlarge"], concurrency=64)
    assert big["requests"] == {"cpu": "8", "memory": "3Gi"}


@pytest.mark.parametrize("field", ["image_pull_mb_s", "per_connection_mb_s", "nic_gbps",
                                   "gpu_load_gb_s_per_shard"])
def test_rates_must_be_positive(field):
    with pytest.raises(ValueError, match=f"{field} must be positive, got 0"):
        StartFacts(**{field: 0})


def test_describe_prints_minutes_and_seconds():
    assert describe(393) == "6m33s" and describe(150) == "2m30s" and describe(59.6) == "1m00s"


def shipped_rows() -> list[str]:
    """Each shipped model on the smallest node of its GPU shape, with the probe and await
    budgets the stack gives its pods, as `llmops cold-start` computes them."""
    from llmops.offline.cold_start_report import model_starts

    rows = []
    for env in ("dev", "staging", "prod"):
        stack = read_stack_config(env)
        missing = [k for k in secret_config_keys() if k not in stack.values]
        stack = stack.with_overrides(dict.fromkeys(missing, OFFLINE_SECRET))
        config = parse_platform_config(stack.values, project="llmops", stack=env)
        for m in model_starts(config):
            rows.append(f"| {env} | {m.model} | {m.instance} | {m.start.weights_gb:.1f} GB | "
                        f"{describe(m.start.fresh_s)} | {describe(m.prepulled.fresh_s)} | "
                        f"{describe(m.start.warm_s)} | {m.startup_probe_s} s | {m.await_s} s |")
    return rows


def test_the_documented_estimates_for_the_shipped_models_are_the_modules():
    doc = DOC.read_text()
    for row in shipped_rows():
        assert row in doc, f"docs/cold-start.md is out of date; expected the row\n{row}"
