"""What differs between the engines behind the gateway, in one place.

TGI serves its own API (`/generate`, `/generate_stream`, `/`) and the OpenAI routes; vLLM
serves only the OpenAI API (vLLM 0.33.0: `vllm/entrypoints/openai/chat_completion/api_router.py`
and `completion/api_router.py`) and wants `model` to be its `--served-model-name`, which the
stack sets to the model's name. Errors: TGI answers `{"error": str, "error_type": str}`; vLLM
answers `{"error": {"message", "type", "param", "code"}}` (`ErrorResponse` in
`vllm/entrypoints/serve/engine/protocol.py`), in whole answers and as a stream event.
"""

from __future__ import annotations

import json
from typing import Any

from serving.gateway.errors import Refusal
from serving.gateway.request import OPENAI_ROUTES

TGI, VLLM = "tgi", "vllm"


def route_refusal(engine: str, model: str, route: str) -> Refusal | None:
    """A TGI-native route asked of a model whose engine does not serve it (no translation:
    TGI's parameters and answer shapes have no exact OpenAI equivalent, and a silently
    different answer is worse than a clear refusal)."""
    if engine == VLLM and route not in OPENAI_ROUTES:
        return Refusal(400, f"model {model!r} is served by vLLM, which speaks the OpenAI API: "
                       f"use POST /v1/chat/completions or POST /v1/completions instead of "
                       f"{route}", "validation", "wrong_route")
    return None


def model_error(raw: bytes) -> dict[str, Any] | None:
    """The body if it is an engine's own error shape (TGI's or OpenAI's), else None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, str) or (isinstance(error, dict) and isinstance(error.get("message"), str)):
        return body
    return None
