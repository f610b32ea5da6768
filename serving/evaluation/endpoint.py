"""One deployed endpoint, spoken to with the `text-generation` client (TGI's compat route,
`POST /`, which the gateway serves too), with its failures sorted into three kinds:

- the endpoint answered an error in TGI's shape (`text_generation.errors.*`): that request
  failed, the run goes on and counts it (`RequestFailed`);
- it cannot be reached, or answers something that is not TGI's protocol: there is no honest
  result to give, so the whole run stops with an `EvaluationError`;
- a read timeout, or an answer that breaks off mid-stream: that request failed (the endpoint
  is up but too slow, or a server died while answering).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pydantic
import requests
from text_generation import Client
from text_generation import errors as tgi_errors

from serving.evaluation.errors import EvaluationError
from serving.evaluation.suite import Parameters

TGI_ERRORS = (tgi_errors.ValidationError, tgi_errors.GenerationError, tgi_errors.OverloadedError,
              tgi_errors.IncompleteGenerationError, tgi_errors.BadRequestError,
              tgi_errors.ShardNotReadyError, tgi_errors.ShardTimeoutError, tgi_errors.NotFoundError,
              tgi_errors.RateLimitExceededError, tgi_errors.UnknownError)


class RequestFailed(Exception):
    """The endpoint answered this request with an error; `blocked` when it refused the input
    as invalid (TGI's or the gateway's input checks, e.g. a deny pattern: 422 validation)."""

    def __init__(self, message: str, blocked: bool = False):
        super().__init__(message)
        self.blocked = blocked


@dataclass(frozen=True)
class Answer:
    text: str
    tokens: int


@dataclass(frozen=True)
class Timing:
    """One streamed request, timed from the call: first token, last event, tokens."""

    latency_s: float
    ttft_s: float
    tokens: int
    decode_tokens_per_s: float | None  # (tokens - 1) / (last - first); None under 2 tokens


class Endpoint:
    def __init__(self, url: str, model: str | None = None, key: str | None = None, timeout_s: float = 60):
        if not url.startswith(("http://", "https://")):
            raise EvaluationError(f"--endpoint must be an http(s) URL (got {url!r})")
        headers = {}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if model:
            headers["X-Model"] = model
        self.url = url.rstrip("/")
        self.client = Client(self.url, headers=headers, timeout=timeout_s)

    def generate(self, prompt: str, parameters: Parameters) -> Answer:
        with self._translated():
            response = self.client.generate(prompt, **parameters.client_kwargs())
        return Answer(response.generated_text, response.details.generated_tokens)

    def stream(self, prompt: str, parameters: Parameters) -> Timing:
        started = time.perf_counter()
        first = last = None
        tokens = 0
        with self._translated():
            for event in self.client.generate_stream(prompt, **parameters.client_kwargs()):
                last = time.perf_counter()
                if first is None:
                    first = last
                if not event.token.special:
                    tokens += 1
                if event.details is not None:
                    tokens = event.details.generated_tokens
        if first is None:
            raise EvaluationError(f"{self.url} ended a stream without a single token event")
        rate = (tokens - 1) / (last - first) if tokens >= 2 and last > first else None
        return Timing(last - started, first - started, tokens, rate)

    def _translated(self) -> _Translate:
        return _Translate(self.url)


class _Translate:
    """Context manager mapping client exceptions to RequestFailed / EvaluationError."""

    def __init__(self, url: str):
        self.url = url

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, _tb) -> bool:
        if exc is None:
            return False
        if isinstance(exc, TGI_ERRORS):
            raise RequestFailed(f"{type(exc).__name__}: {exc}",
                                blocked=isinstance(exc, tgi_errors.ValidationError)) from None
        if isinstance(exc, requests.exceptions.ReadTimeout):
            raise RequestFailed(f"no answer within the suite's timeoutS: {exc}") from None
        if isinstance(exc, requests.exceptions.ChunkedEncodingError):  # the server died mid-answer
            raise RequestFailed(f"the answer broke off: {_root(exc)}") from None
        if isinstance(exc, requests.exceptions.JSONDecodeError | json.JSONDecodeError):
            body = getattr(exc, "doc", "") or ""
            raise EvaluationError(f"{self.url} did not answer like a TGI endpoint (not JSON: "
                                  f"{body[:80]!r}); is the URL the model server or the gateway? A vLLM "
                                  "server needs --protocol openai") from None
        if isinstance(exc, requests.exceptions.ConnectionError):
            raise EvaluationError(f"cannot reach {self.url}: {_root(exc)}") from None
        if isinstance(exc, requests.exceptions.RequestException):
            raise EvaluationError(f"request to {self.url} failed: {exc}") from None
        if isinstance(exc, pydantic.ValidationError):
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise EvaluationError(f"{self.url} answered JSON that is not TGI's response shape "
                                  f"({len(exc.errors())} problem(s); {where}: {first['msg']})") from None
        if isinstance(exc, KeyError | IndexError | TypeError | AttributeError):
            raise EvaluationError(f"{self.url} answered JSON that is not TGI's response shape "
                                  '(expected [{"generated_text": ..., "details": ...}] from POST /, '
                                  "or `data:` events with a token)") from None
        return False


def _root(exc: BaseException) -> str:
    """The socket's reason ("[Errno 111] Connection refused"), not urllib3's wrapping of it."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    return match.group(0) if match else text[:200]
