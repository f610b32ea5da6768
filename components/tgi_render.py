"""Pure rendering for TGI pods: launcher flags, resources from instance facts, probe budget.
No Pulumi here, so each rule has a fast unit test."""

from __future__ import annotations

import math

from components.gpu_instances import GpuInstance
from stacks.config.serving import ModelConfig

HTTP_PORT = 8080
METRICS_PORT = 9000
GRACEFUL_TERMINATION_S = 90       # TGI launcher default
TERMINATION_GRACE_S = 120         # must be >= the launcher's graceful termination
#: kubelet, system daemons and the device plugin keep this share of a node.
NODE_RESERVED_SHARE = 0.12


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
    """Requests = limits: the pod's GPU share of the node's CPU and memory, minus reserve."""
    share = model.shards / instance.gpus
    cpu = max(1, math.floor(instance.vcpu * (1 - NODE_RESERVED_SHARE) * share))
    memory_gib = max(4, math.floor(instance.memory_gib * (1 - NODE_RESERVED_SHARE) * share))
    amounts = {"cpu": str(cpu), "memory": f"{memory_gib}Gi", "nvidia.com/gpu": str(model.shards)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def shm_size_gib(model: ModelConfig) -> int:
    """NCCL needs shared memory between shards; 1 GiB per shard is the upstream example."""
    return max(1, model.shards)


def startup_budget_seconds(model: ModelConfig) -> int:
    """Time for TGI to load weights from local disk into GPUs and warm up: 10 minutes, plus
    20 s per GiB of weights (a 70B model at bf16 gets ~55 minutes)."""
    return 600 + math.ceil(model.weights_gib * 20)


#: cluster-autoscaler's --max-node-provision-time (components/cluster_autoscaling.py): the
#: longest a pending pod waits for a new GPU node before the autoscaler gives up on a group.
NODE_PROVISION_S = 20 * 60
#: Pulling TGI's ~10 GB image onto a new node through NAT (~50 MB/s observed for ghcr.io).
IMAGE_PULL_S = 240
#: Weights from S3 to local NVMe through the init container, conservatively per GiB.
WEIGHTS_FETCH_S_PER_GIB = 10


def await_budget_seconds(model: ModelConfig) -> int:
    """How long the engine waits for a TGI rollout: a new node, the image, the weights and
    the startup probe's budget. pulumi-kubernetes' default (10 minutes) is shorter than the
    startup probe alone, so a healthy first rollout would be reported as failed."""
    fetch = math.ceil(model.weights_gib * WEIGHTS_FETCH_S_PER_GIB)
    return NODE_PROVISION_S + IMAGE_PULL_S + fetch + startup_budget_seconds(model)


def weights_cache_gib(model: ModelConfig) -> int:
    """Node-local space for the weights copy (plus headroom for tokenizer and adapters)."""
    return math.ceil(model.weights_gib * 1.2) + 5
