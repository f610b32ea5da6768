"""Pure sizing for model-server pods, whatever the engine: resources from instance facts,
shared memory, the start budgets. No Pulumi here, so each rule has a fast unit test."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from components import cold_start
from components.allocatable import engine_resources
from components.engines import engine_of
from vocabulary.config.serving import ModelConfig
from vocabulary.gpu_instances import GpuInstance


def pod_resources(model: ModelConfig, instance: GpuInstance) -> dict[str, dict[str, str]]:
    """Requests = limits: the pod's GPU share of the node's allocatable (components/allocatable.py)."""
    return engine_resources(model.shards, instance)


def shm_size_gib(model: ModelConfig) -> int:
    """NCCL needs shared memory between shards; 1 GiB per shard is the upstream example."""
    return max(1, model.shards)


#: An engine's first start may compile kernels and build CUDA graphs: never give it less than this.
STARTUP_FLOOR_S = 600
#: The longest a pending pod waits for a new GPU node: Karpenter's 15-minute registration
#: timeout (components/nodepools.py REGISTRATION_TIMEOUT_S) before it replaces the node, and
#: a retry on another offering (spot gone -> on-demand).
NODE_PROVISION_S = 20 * 60


@dataclass(frozen=True)
class StartBudgets:
    """What a model's pods and the engine allow for a start, from the cold-start model."""

    startup_probe_s: int     # the engine container's startupProbe (after the init containers)
    await_s: int             # the engine's wait for a rollout (customTimeouts)
    fetch_resources: dict[str, dict[str, str]]  # the weights init container's CPU and memory


def engine_facts(model: ModelConfig, base: cold_start.StartFacts | None = None) -> cold_start.StartFacts:
    """The cold-start facts with the model's engine's image size and warm-up."""
    engine = engine_of(model)
    return dataclasses.replace(base or cold_start.StartFacts(), engine_image_gb=engine.image_gb,
                               warmup_s=engine.warmup_s)


def start_budgets(model: ModelConfig, instance: GpuInstance) -> StartBudgets:
    """Budgets from components/cold_start.py for `model` on `instance` (the smallest node of
    its shape). The engine waits for a new node (up to the autoscaler's provisioning limit),
    then a fresh node's whole start with margin, and never less than the probe itself."""
    start = cold_start.estimate(model, cold_start.facts_for(instance, engine_facts(model)))
    probe = cold_start.startup_probe_budget_s(start, floor_s=STARTUP_FLOOR_S)
    return StartBudgets(
        startup_probe_s=probe,
        await_s=NODE_PROVISION_S + max(cold_start.await_budget_s(start), probe),
        fetch_resources=cold_start.fetch_container_resources(instance))
