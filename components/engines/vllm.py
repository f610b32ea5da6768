"""vLLM's OpenAI-compatible server (`vllm serve`), pinned to one release.

Every flag below exists in vLLM 0.34.0 (data/vllm-0.34.0.flags, extracted from the wheel's
vllm/engine/arg_utils.py and vllm/entrypoints/common/cli_args.py); the environment names
come from its vllm/envs.py. The API and /metrics share port 8000 (FrontendArgs.port).

Weights: the node-shared cache (components/model_cache.py), not `--load-format
runai_streamer` from S3. bench/weights.py puts our verified fetch at 0.55-0.9x s5cmd's time
(docs/registry.md); the NIC caps a fresh node's fetch at ~1.25 GB/s (16 GB in ~13 s of a
~6 min cold start dominated by the image pull), and every later start on that node (a
restart, a second replica, a rollout) moves no bytes. A streamer reads the whole model from
S3 on every start, unverified, and needs S3 credentials and egress in the engine's pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from components.engines.base import Engine, Scratch

if TYPE_CHECKING:
    from vocabulary.config.serving import ModelConfig, ServingConfig

VERSION = "0.34.0"
HOME = "/home/vllm"
#: Our precision names -> vLLM's --quantization (QuantizationMethods in
#: vllm/model_executor/layers/quantization/__init__.py at 0.34.0). The Marlin kernels serve
#: AWQ and GPTQ checkpoints on Ampere and newer (A10G, L4, L40S, A100, H100).
QUANTIZATION = {"awq": "awq_marlin", "gptq": "gptq_marlin", "fp8": "fp8",
                "compressed-tensors": "compressed-tensors"}


@dataclass(frozen=True)
class Vllm(Engine):
    def image(self, serving: ServingConfig) -> str:
        return serving.vllm_image

    def command(self) -> list[str]:
        # the wheel's console script (entry_points: vllm = vllm.entrypoints.cli.main:main),
        # so the image's entrypoint does not matter
        return ["vllm", "serve"]

    def args(self, model: ModelConfig, model_path: str) -> list[str]:
        args = [
            "--model", model_path,                       # the verified local copy, never a Hub id
            "--served-model-name", model.name,           # what clients put in "model"
            "--host", "0.0.0.0",
            "--port", str(self.http_port),
            "--tensor-parallel-size", str(model.shards),
            "--max-model-len", str(model.max_total_tokens),
            "--max-num-seqs", str(model.max_concurrent_requests),
            "--max-num-batched-tokens", str(model.max_batch_prefill_tokens),
            "--enable-chunked-prefill",
            "--enable-prefix-caching",
            "--shutdown-timeout", str(self.graceful_shutdown_s),
            "--disable-uvicorn-access-log",              # the gateway writes the audit log
        ]
        if model.replicas.max > 1:  # routed (components/router.py `is_routed`)
            # vllm-router's cache_aware keys its prefix tree on the token ids each replica's
            # render API returns (router 0.1.17 src/backend/preprocess.rs
            # `prepare_http_token_inputs`). vLLM 0.34.0 answers /v1/chat/completions/render and
            # /v1/completions/render 403 unless --enable-scale-out (entrypoints/scale_out/
            # factories.py `register_scale_out_api_routers`), which the router takes as
            # "no tokens" and then places by load only. The endpoints it adds share port 8000
            # with the generation routes, so only what already reaches those reaches them
            # (components/network_policies.py); the gateway forwards no route but its own list.
            args += ["--enable-scale-out"]
        if model.quantize:
            args += ["--quantization", QUANTIZATION[model.quantize]]
        else:
            args += ["--dtype", model.dtype or "bfloat16"]
        return args

    def env(self, model: ModelConfig) -> dict[str, str]:
        # every directory vLLM, Torch Inductor and Triton write, on the writable HOME volume
        # (vllm/envs.py: VLLM_CACHE_ROOT, VLLM_CONFIG_ROOT, XDG_*; Triton's TRITON_CACHE_DIR;
        # vllm/compilation/compiler_interface.py puts TORCHINDUCTOR_CACHE_DIR under the cache root)
        return {
            "HOME": HOME,
            "XDG_CACHE_HOME": f"{HOME}/.cache",
            "XDG_CONFIG_HOME": f"{HOME}/.config",
            "VLLM_CACHE_ROOT": f"{HOME}/.cache/vllm",
            "VLLM_CONFIG_ROOT": f"{HOME}/.config/vllm",
            "TRITON_CACHE_DIR": f"{HOME}/.triton/cache",
            "TORCHINDUCTOR_CACHE_DIR": f"{HOME}/.cache/torchinductor",
            "HF_HOME": f"{HOME}/.cache/huggingface",
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_DO_NOT_TRACK": "1",
        }


VLLM = Vllm(
    name="vllm", http_port=8000, metrics_port=None,
    graceful_shutdown_s=90,       # --shutdown-timeout: finish running requests, as TGI does
    termination_grace_s=120,
    queue_metric="vllm:num_requests_waiting",
    run_as_uid=2000, read_only_root=True,
    protocol="openai",            # vLLM serves only the OpenAI API (no TGI route)
    # planning figures, not measured here: an image of the same CUDA + PyTorch stack as TGI's;
    # warm-up adds torch.compile and CUDA-graph capture (its compile cache lives on the pod's
    # emptyDir, so every pod start compiles)
    image_gb=10.0, warmup_s=120.0,
    scratch=(Scratch("home", HOME, 10), Scratch("tmp", "/tmp", 2)),
    working_dir=HOME,
    flags_file=f"vllm-{VERSION}.flags",
    # gone from recent releases (0.34.0 has --enable-log-requests, off by default)
    removed_flags=frozenset({"--disable-log-requests"}))
