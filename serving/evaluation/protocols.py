"""Which wire protocol `llmops evaluate` speaks: TGI's (the `text-generation` client; TGI
servers and the gateway) or OpenAI's (`/v1/completions`; vLLM servers, which have no other).
Both endpoints have the same interface, so the suite runs the same against either."""

from __future__ import annotations

from typing import Protocol

from serving.evaluation.endpoint import Answer, Endpoint, Timing
from serving.evaluation.openai_endpoint import OpenAIEndpoint
from serving.evaluation.suite import Parameters


class ModelEndpoint(Protocol):
    url: str

    def generate(self, prompt: str, parameters: Parameters) -> Answer: ...

    def stream(self, prompt: str, parameters: Parameters) -> Timing: ...


PROTOCOLS: dict[str, type[Endpoint] | type[OpenAIEndpoint]] = {"tgi": Endpoint, "openai": OpenAIEndpoint}


def open_endpoint(protocol: str, url: str, model: str | None, key: str | None,
                  timeout_s: float) -> ModelEndpoint:
    return PROTOCOLS[protocol](url, model=model, key=key, timeout_s=timeout_s)
