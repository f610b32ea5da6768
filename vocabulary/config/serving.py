"""`llmops:serving` and `llmops:models`: a model server per model (TGI or vLLM), its releases
and limits."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from vocabulary.config.base import Section
from vocabulary.config.cron import cron_problem, timezone_problem

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PINNED_IMAGE = re.compile(r"^[\w.\-/:]+:(?!latest$)[\w.\-]+$")
QUANTIZE = ("awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin", "bitsandbytes",
            "bitsandbytes-nf4", "bitsandbytes-fp4", "fp8")
#: Bytes per parameter of the weights at each precision (what must fit in GPU memory).
BYTES_PER_PARAM = {"float16": 2.0, "bfloat16": 2.0, "fp8": 1.0, "eetq": 1.0, "bitsandbytes": 1.0,
                   "compressed-tensors": 1.0, "awq": 0.5, "gptq": 0.5, "marlin": 0.5, "exl2": 0.5,
                   "bitsandbytes-nf4": 0.5, "bitsandbytes-fp4": 0.5}
#: What vLLM 0.34.0 serves of QUANTIZE (components/engines/vllm.py maps the names).
VLLM_QUANTIZE = ("awq", "gptq", "fp8", "compressed-tensors")
#: Weights may use at most this share of GPU memory; the rest is KV cache and activations.
WEIGHTS_SHARE_OF_GPU = 0.8


class ServingConfig(Section):
    """Cluster-wide serving settings: where models run and which pinned images they use."""

    namespace: str = "llm-serving"
    tgi_image: str = Field(default="ghcr.io/huggingface/text-generation-inference:3.3.7",
                           description="TGI's image; 3.3.7 is its last release (maintenance mode)")
    vllm_image: str = Field(default="docker.io/vllm/vllm-openai:v0.34.0",
                            description="vLLM's OpenAI server image, the release whose flags "
                            "components/engines/data/vllm-*.flags lists")
    weights_image_tag: str = Field(default="0.1.0", pattern=r"^\d+\.\d+\.\d+$",
                                   description="tag of the platform image in the gateway ECR "
                                   "repository; its `llmops registry download` fetches weights")
    keda_chart_version: str = Field(default="2.17.0", pattern=r"^\d+\.\d+\.\d+$")
    prometheus_url: str = "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    on_demand_fallback: bool = Field(
        default=False, description="every model's GPU pool must buy spot and on-demand (Karpenter "
        "falls back when spot capacity is gone), and models with 2+ replicas need the pool's "
        "onDemandFloor")
    min_replicas: int = Field(default=0, ge=0, le=10,
                              description="floor for every model's replicas.min (2 in prod: "
                              "one replica per zone survives a spot reclaim or a node loss)")

    @field_validator("tgi_image", "vllm_image")
    @classmethod
    def _pinned(cls, value: str) -> str:
        if not PINNED_IMAGE.match(value):
            raise ValueError(f"{value!r} must be pinned by version tag (not latest, not untagged)")
        return value


class RegistryRef(Section):
    """Which registry version to serve: a stage resolved at deploy time, or a pinned version."""

    stage: Literal["staging", "production"] | None = None
    version: str | None = None
    revision: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> RegistryRef:
        if (self.stage is None) == (self.version is None):
            raise ValueError("give exactly one of stage (resolved from the registry at deploy "
                             "time) or version (pinned)")
        if self.version is not None and not VERSION.match(self.version):
            raise ValueError(f"version {self.version!r} may use letters, digits, '.', '_', '-'")
        if self.revision is not None and self.version is None:
            raise ValueError("revision pins a version; it needs version")
        return self


class Canary(Section):
    registry: RegistryRef
    weight: int = Field(ge=1, le=50, description="percent of traffic the gateway sends to it")


class BlueGreen(Section):
    """Two colours, each a registry version; `active` is what the main Service selects."""

    active: Literal["blue", "green"]
    blue: RegistryRef
    green: RegistryRef


class Schedule(Section):
    """A known peak: keep at least `replicas` between cron `start` and `end`."""

    start: str
    end: str
    replicas: int = Field(ge=1)
    timezone: str = "UTC"

    @field_validator("start", "end")
    @classmethod
    def _cron(cls, value: str) -> str:
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value!r}: {problem}")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        problem = timezone_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _a_window(self) -> Schedule:
        if self.start == self.end:  # KEDA's cron scaler refuses it
            raise ValueError(f"start and end are both {self.start!r}; give the peak's end")
        return self


class Replicas(Section):
    min: int = Field(ge=0)
    max: int = Field(ge=1)


class ModelConfig(Section):
    """One model served by TGI or vLLM."""

    name: str
    engine: Literal["tgi", "vllm"] = Field(
        default="tgi", description="the model server: tgi (the default) or vllm (docs/engines.md)")
    registry: RegistryRef | None = None
    gpu_shape: str = Field(description="GPU memory x count per node, e.g. 24gib-x4: the model may "
                           "run on the NodePool of that shape, spot first, on-demand as fallback")
    params_billion: float = Field(gt=0, description="parameter count, for the GPU memory check")
    shards: int = Field(default=1, ge=1, le=8)
    dtype: Literal["float16", "bfloat16"] | None = None
    quantize: Literal[QUANTIZE] | None = None
    max_input_tokens: int = Field(ge=1)
    max_total_tokens: int = Field(ge=2)
    max_batch_prefill_tokens: int = Field(ge=1)
    max_concurrent_requests: int = Field(default=128, ge=1)
    replicas: Replicas
    queue_target: int = Field(default=8, ge=1, description="queued requests per replica before scaling out")
    schedules: list[Schedule] = []
    lora_adapters: list[str] = []
    canary: Canary | None = None
    blue_green: BlueGreen | None = None

    @field_validator("name")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError(f"{value!r} must be 2-40 lowercase letters, digits or dashes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        problems = []
        if self.dtype and self.quantize:
            problems.append("dtype and quantize are exclusive in TGI; give one")
        if self.max_input_tokens >= self.max_total_tokens:
            problems.append(f"maxInputTokens ({self.max_input_tokens}) must be less than "
                            f"maxTotalTokens ({self.max_total_tokens})")
        if self.max_batch_prefill_tokens < self.max_input_tokens:
            problems.append(f"maxBatchPrefillTokens ({self.max_batch_prefill_tokens}) must be at "
                            f"least maxInputTokens ({self.max_input_tokens})")
        if self.replicas.min > self.replicas.max:
            problems.append(f"replicas.min ({self.replicas.min}) exceeds replicas.max ({self.replicas.max})")
        if (self.registry is None) == (self.blue_green is None):
            problems.append("give registry (one version) or blueGreen (two colours), not both")
        if self.canary and self.blue_green:
            problems.append("canary and blueGreen are different release strategies; pick one")
        if self.engine == "vllm":
            problems += self._vllm_problems()
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @model_validator(mode="after")
    def _schedules_within_replicas(self) -> ModelConfig:
        over = [f"schedules[{i}].replicas ({s.replicas}) exceeds replicas.max ({self.replicas.max}); "
                "KEDA never scales past replicas.max, so the peak would get fewer"
                for i, s in enumerate(self.schedules) if s.replicas > self.replicas.max]
        if over:
            raise ValueError("\n".join(over))
        return self

    def _vllm_problems(self) -> list[str]:
        problems = []
        if self.quantize and self.quantize not in VLLM_QUANTIZE:
            problems.append(f"quantize {self.quantize!r} is not served by vLLM; with engine: vllm use "
                            f"one of {', '.join(VLLM_QUANTIZE)}, or engine: tgi")
        if self.lora_adapters:
            problems.append("loraAdapters are Hub ids TGI resolves; vLLM needs local adapter paths "
                            "the weights cache does not fetch yet: use engine: tgi for adapters")
        if self.max_batch_prefill_tokens < self.max_concurrent_requests:
            problems.append(f"maxBatchPrefillTokens ({self.max_batch_prefill_tokens}) must be at least "
                            f"maxConcurrentRequests ({self.max_concurrent_requests}) for vLLM "
                            "(--max-num-batched-tokens >= --max-num-seqs)")
        return problems

    @property
    def precision(self) -> str:
        return self.quantize or self.dtype or "bfloat16"

    @property
    def weights_gib(self) -> float:
        return self.params_billion * 1e9 * BYTES_PER_PARAM[self.precision] / 2**30
