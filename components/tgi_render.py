"""Pure rendering for TGI pods: launcher flags, resources from instance facts, probe budget.
No Pulumi here, so each rule has a fast unit test."""

from __future__ import annotations

from dataclasses import dataclass

from components import cold_start
from components.allocatable import engine_resources
from components.gpu_instances import GpuInstance
from stacks.config.serving import ModelConfig

HTTP_PORT = 8080
METRICS_PORT = 9000
GRACEFUL_TERMINATION_S = 90       # TGI launcher default
TERMINATION_GRACE_S = 120         # must be >= the launcher's graceful termination


def launcher_args(model: ModelConfig, model_path: str) -> list[str]:
    """TGI launcher flags (long form only: `-p` is declared twice upstream)."""
    args = [
        "--model-id", model_path,
        "--num-shard", str(model.shards),
        "--max-input-tokens", str(model.max_input_tokens),
        "--max-total-tokens", str(model.max_total_tokens),
        "--max-batch-prefill-tokens", str(model.max_batch_prefill_tokens),
        "--max-concurrent-requests", str(model.max_concurrent_requests),
        "--hostname", "0.0.0.0",
        "--port", str(HTTP_PORT),
        "--prometheus-port", str(METRICS_PORT),
        "--graceful-termination-timeout", str(GRACEFUL_TERMINATION_S),
        "--usage-stats", "off",
        "--json-output",
    ]
    if model.quantize:
        args += ["--quantize", model.quantize]
    else:
        args += ["--dtype", model.dtype or "bfloat16"]
    if model.lora_adapters:
        args += ["--lora-adapters", ",".join(model.lora_adapters)]
    return args


def pod_resources(model: ModelConfig, instance: GpuInstance) -> dict[str, dict[str, str]]:
    """Requests = limits: the pod's GPU share of the node's allocatable (components/allocatable.py)."""
    return engine_resources(model.shards, instance)


def shm_size_gib(model: ModelConfig) -> int:
    """NCCL needs shared memory between shards; 1 GiB per shard is the upstream example."""
    return max(1, model.shards)


#: TGI's first start may compile kernels and build CUDA graphs: never give it less than this.
STARTUP_FLOOR_S = 600
#: The longest a pending pod waits for a new GPU node: Karpenter's 15-minute registration
#: timeout (components/nodepools.py REGISTRATION_TIMEOUT_S) before it replaces the node, and
#: a retry on another offering
#: (spot gone -> on-demand).
NODE_PROVISION_S = 20 * 60


@dataclass(frozen=True)
class StartBudgets:
    """What a model's pods and the engine allow for a start, from the cold-start model."""

    startup_probe_s: int     # the TGI container's startupProbe (after the init container)
    await_s: int             # the engine's wait for a rollout (customTimeouts)
    fetch_resources: dict[str, dict[str, str]]  # the weights init container's CPU and memory


def start_budgets(model: ModelConfig, instance: GpuInstance) -> StartBudgets:
    """Budgets from components/cold_start.py for `model` on `instance` (the smallest node of
    its shape). The engine waits for a new node (up to the autoscaler's provisioning limit),
    then a fresh node's whole start with margin, and never less than the probe itself."""
    start = cold_start.estimate(model, cold_start.facts_for(instance))
    probe = cold_start.startup_probe_budget_s(start, floor_s=STARTUP_FLOOR_S)
    return StartBudgets(
        startup_probe_s=probe,
        await_s=NODE_PROVISION_S + max(cold_start.await_budget_s(start), probe),
        fetch_resources=cold_start.fetch_container_resources(instance))
