"""One deployed endpoint spoken to in the OpenAI protocol (`POST /v1/completions`), the only
API a vLLM server has, behind the same interface and with the same three failure kinds as
the TGI endpoint (serving/evaluation/endpoint.py):

- the endpoint answered an error (vLLM's `{"error": {"message", "type", ...}}`, or the
  gateway's `{"error", "error_type"}`): that request failed, the run goes on (`RequestFailed`;
  `blocked` for 400/422, input refused as invalid, as TGI's 422 validation is);
- it cannot be reached, or answers something that is not the OpenAI protocol: the whole run
  stops with an `EvaluationError`;
- a read timeout, or a stream that breaks off before `data: [DONE]`: that request failed.

Plain `requests` with Server-Sent-Events parsing, not the `openai` package: `llmops evaluate`
runs from the runtime install (release.yml, the platform image), where `requests` already is
(the TGI endpoint's transport), and the failures map onto the same exceptions as the TGI side.

Request fields as vLLM 0.34.0 defines them (vllm/entrypoints/openai/completion/protocol.py,
CompletionRequest: max_tokens, temperature, top_p, top_k, repetition_penalty, seed, stop,
stream_options, structured_outputs; vllm/sampling_params.py: temperature 0 is greedy).
"""

from __future__ import annotations

import json
import time
from typing import Any

import requests

from serving.evaluation.endpoint import Answer, RequestFailed, Timing, _root
from serving.evaluation.errors import EvaluationError
from serving.evaluation.suite import Parameters

ROUTE = "/v1/completions"
BLOCKED_STATUSES = (400, 422)


def completion_body(prompt: str, parameters: Parameters, model: str | None) -> dict[str, Any]:
    """The suite's TGI-style parameters as an OpenAI completion request."""
    body: dict[str, Any] = {"prompt": prompt, "max_tokens": parameters.max_new_tokens}
    if model:
        body["model"] = model
    # TGI samples only with do_sample; vLLM samples unless temperature is 0 (greedy)
    body["temperature"] = (parameters.temperature if parameters.temperature is not None else 1.0) \
        if parameters.do_sample else 0.0
    for key in ("top_p", "top_k", "repetition_penalty", "seed"):
        value = getattr(parameters, key)
        if value is not None:
            body[key] = value
    if parameters.stop:
        body["stop"] = list(parameters.stop)
    if parameters.grammar is not None:
        body["structured_outputs"] = {parameters.grammar.type: parameters.grammar.value}
    return body


class OpenAIEndpoint:
    def __init__(self, url: str, model: str | None = None, key: str | None = None, timeout_s: float = 60):
        if not url.startswith(("http://", "https://")):
            raise EvaluationError(f"--endpoint must be an http(s) URL (got {url!r})")
        self.url = url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    def generate(self, prompt: str, parameters: Parameters) -> Answer:
        body = completion_body(prompt, parameters, self.model)
        with self._post(body, stream=False) as response:
            answer = self._json(response, response.text)
        try:
            return Answer(answer["choices"][0]["text"], int(answer["usage"]["completion_tokens"]))
        except (KeyError, IndexError, TypeError, ValueError):
            raise self._not_openai('{"choices": [{"text": ...}], "usage": {"completion_tokens": ...}}') \
                from None

    def stream(self, prompt: str, parameters: Parameters) -> Timing:
        body = {**completion_body(prompt, parameters, self.model), "stream": True,
                "stream_options": {"include_usage": True}}
        started = time.perf_counter()
        first = last = None
        chunks = 0
        usage: int | None = None
        done = False
        with self._post(body, stream=True) as response:
            if response.status_code != 200:
                self._json(response, response.text)  # raises: an error answer
            try:
                for line in response.iter_lines(decode_unicode=True):
                    if not line or not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    chunk = self._event(data)
                    now = time.perf_counter()
                    if chunk.get("usage"):
                        usage = int(chunk["usage"]["completion_tokens"])
                    if any(choice.get("text") for choice in chunk.get("choices") or ()):
                        last = now
                        chunks += 1
                        if first is None:
                            first = now
            except requests.exceptions.ChunkedEncodingError as exc:
                raise RequestFailed(f"the answer broke off: {_root(exc)}") from None
            except requests.exceptions.ConnectionError as exc:
                # requests raises a read timeout while iterating a body as ConnectionError
                # (requests 2.34 models.py, Response.iter_content)
                raise RequestFailed(f"no token within the suite's timeoutS, or the connection "
                                    f"dropped mid-stream: {_root(exc)}") from None
            except (KeyError, TypeError, ValueError, AttributeError):
                raise self._not_openai("`data:` events with choices[].text, then usage, then "
                                       "`data: [DONE]`") from None
        if not done:
            raise RequestFailed(f"the stream from {self.url}{ROUTE} ended without `data: [DONE]`")
        if first is None or last is None:
            raise EvaluationError(f"{self.url}{ROUTE} ended a stream without a single token")
        tokens = usage if usage is not None else chunks
        rate = (tokens - 1) / (last - first) if tokens >= 2 and last > first else None
        return Timing(last - started, first - started, tokens, rate)

    def _post(self, body: dict[str, Any], stream: bool) -> requests.Response:
        try:
            return requests.post(self.url + ROUTE, json=body, headers=self.headers,
                                 timeout=self.timeout_s, stream=stream)
        except requests.exceptions.ReadTimeout as exc:
            raise RequestFailed(f"no answer within the suite's timeoutS: {exc}") from None
        except requests.exceptions.ConnectionError as exc:
            raise EvaluationError(f"cannot reach {self.url}: {_root(exc)}") from None
        except requests.exceptions.RequestException as exc:
            raise EvaluationError(f"request to {self.url} failed: {exc}") from None

    def _json(self, response: requests.Response, text: str) -> dict[str, Any]:
        """The answer's JSON; an error answer raises RequestFailed."""
        try:
            document = json.loads(text)
        except ValueError:
            raise EvaluationError(f"{self.url}{ROUTE} did not answer like an OpenAI endpoint (HTTP "
                                  f"{response.status_code}, not JSON: {text[:80]!r}); is the URL the "
                                  "vLLM server or the gateway, and is --protocol right?") from None
        if response.status_code == 200 and isinstance(document, dict):
            return document
        error = document.get("error") if isinstance(document, dict) else None
        if isinstance(error, dict) and "message" in error:        # vLLM's ErrorResponse
            message, kind = error["message"], error.get("type")
        elif isinstance(error, str):                              # the gateway's own refusals
            message, kind = error, document.get("error_type")
        else:
            raise self._not_openai('{"error": {"message": ..., "type": ...}} on an error')
        raise RequestFailed(f"HTTP {response.status_code} {kind}: {message}",
                            blocked=response.status_code in BLOCKED_STATUSES)

    def _event(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            raise EvaluationError(f"{self.url}{ROUTE} streamed an event that is not JSON "
                                  f"({data[:80]!r}); is --protocol right?") from None
        if not isinstance(chunk, dict):
            raise self._not_openai("JSON objects in `data:` events")
        # vLLM reports a failure mid-stream as an ErrorResponse event, then [DONE]
        # (entrypoints/openai/completion/serving.py, create_streaming_error_response)
        if isinstance(chunk.get("error"), dict):
            raise RequestFailed(f"{chunk['error'].get('type')}: {chunk['error'].get('message')}")
        return chunk

    def _not_openai(self, expected: str) -> EvaluationError:
        return EvaluationError(f"{self.url}{ROUTE} answered JSON that is not the OpenAI completion "
                               f"shape (expected {expected}); is --protocol right?")
