"""Model-server engines, chosen per model (`engine: tgi | vllm` in llmops:models)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.engines.base import COMPONENT_LABEL, Engine, Scratch, ServiceTarget, flags_of
from components.engines.tgi import TGI
from components.engines.vllm import VLLM

if TYPE_CHECKING:
    from vocabulary.config.serving import ModelConfig

ENGINES: dict[str, Engine] = {e.name: e for e in (TGI, VLLM)}

__all__ = ["COMPONENT_LABEL", "ENGINES", "TGI", "VLLM", "Engine", "Scratch", "ServiceTarget", "engine_of",
           "flags_of", "service_target"]


def engine_of(model: ModelConfig) -> Engine:
    return ENGINES[model.engine]


def service_target(model: ModelConfig, track: str) -> ServiceTarget:
    """The Service, port and protocol of one track of the model (`llmops canary target`)."""
    return engine_of(model).target(model.name, track)
