"""Model-server engines, chosen per model (`engine: tgi | vllm` in llmops:models)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from components.engines.base import COMPONENT_LABEL, Engine, Scratch, flags_of
from components.engines.tgi import TGI
from components.engines.vllm import VLLM

if TYPE_CHECKING:
    from vocabulary.config.serving import ModelConfig

ENGINES: dict[str, Engine] = {e.name: e for e in (TGI, VLLM)}

__all__ = ["COMPONENT_LABEL", "ENGINES", "TGI", "VLLM", "Engine", "Scratch", "engine_of", "flags_of"]


def engine_of(model: ModelConfig) -> Engine:
    return ENGINES[model.engine]
