"""Text Generation Inference (maintenance mode since 2025-12-11; v3.3.7 is its last release).

Flags verified against huggingface/text-generation-inference tag v3.3.7,
launcher/src/main.rs `struct Args` (data/tgi-3.3.7.flags). Long flags only: `-p` is
declared twice upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.engines.base import Engine

if TYPE_CHECKING:
    from vocabulary.config.serving import ModelConfig, ServingConfig

VERSION = "3.3.7"


@dataclass(frozen=True)
class Tgi(Engine):
    def image(self, serving: ServingConfig) -> str:
        return serving.tgi_image

    def args(self, model: ModelConfig, model_path: str) -> list[str]:
        args = [
            "--model-id", model_path,
            "--num-shard", str(model.shards),
            "--max-input-tokens", str(model.max_input_tokens),
            "--max-total-tokens", str(model.max_total_tokens),
            "--max-batch-prefill-tokens", str(model.max_batch_prefill_tokens),
            "--max-concurrent-requests", str(model.max_concurrent_requests),
            "--hostname", "0.0.0.0",
            "--port", str(self.http_port),
            "--prometheus-port", str(self.metrics_port),
            "--graceful-termination-timeout", str(self.graceful_shutdown_s),
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

    def env(self, model: ModelConfig) -> dict[str, str]:
        return {"HF_HUB_OFFLINE": "1", "HF_HOME": "/tmp/hf"}


TGI = Tgi(
    name="tgi", http_port=8080, metrics_port=9000,
    graceful_shutdown_s=90,      # the launcher's default, passed explicitly
    termination_grace_s=120,     # >= the launcher's graceful termination
    queue_metric="tgi_queue_size",
    # TGI's image runs as root (its Dockerfile sets no USER; the interpreter lives under
    # /root): baseline, everything else dropped; writable root for its caches
    run_as_uid=None, read_only_root=False,
    flags_file=f"tgi-{VERSION}.flags")
