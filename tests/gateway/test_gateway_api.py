"""The gateway speaks TGI's API: the real text-generation client works against it unchanged."""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
from text_generation import AsyncClient, Client
from text_generation.errors import OverloadedError


def test_sync_text_generation_client_generates_and_streams(stack):
    client = Client(stack.url, headers=stack.headers(model="small"), timeout=10)
    response = client.generate("What is the capital of France?", max_new_tokens=10)
    assert response.generated_text == "Paris"
    assert response.details.generated_tokens == 1
    tokens = [r.token.text for r in client.generate_stream("Capital of France?", max_new_tokens=10)]
    assert tokens == ["Paris"]


def test_async_text_generation_client_generates_and_streams(stack):
    async def run():
        client = AsyncClient(stack.url, headers=stack.headers(model="private"), timeout=10)
        whole = await client.generate("contact?", max_new_tokens=20)
        streamed = [r.token.text async for r in client.generate_stream("contact?", max_new_tokens=20)]
        return whole, streamed
    whole, streamed = asyncio.run(run())
    assert "alice@example.com" not in whole.generated_text
    assert "[REDACTED_EMAIL]" in whole.generated_text
    assert "[REDACTED_CARD]" in "".join(streamed)
    assert "4111" not in "".join(streamed)


def test_generate_route_passes_tgi_timing_headers_and_counts_tokens(stack):
    response = requests.post(f"{stack.url}/generate", headers=stack.headers(model="small"),
                             json={"inputs": "hi", "parameters": {"max_new_tokens": 5, "details": True}})
    assert response.status_code == 200
    assert response.headers["x-generated-tokens"] == "1"
    metrics = requests.get(f"{stack.url}/metrics").text
    assert 'llm_tokens_generated_total{backend="stable",model="small"} 1.0' in metrics


def test_openai_chat_completion_whole_and_streamed(stack):
    body = {"model": "small", "messages": [{"role": "user", "content": "capital?"}], "max_tokens": 5}
    whole = requests.post(f"{stack.url}/v1/chat/completions", headers=stack.headers(), json=body)
    assert whole.json()["choices"][0]["message"]["content"] == "Paris"
    streamed = requests.post(f"{stack.url}/v1/chat/completions", headers=stack.headers(),
                             json={**body, "stream": True}, stream=True)
    lines = [line for line in streamed.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert json.loads(lines[0][5:])["choices"][0]["delta"]["content"] == "Paris"
    assert stack.upstreams["small"].requests[-1]["body"]["model"] == "small"


def test_openai_completions_route(stack):
    response = requests.post(f"{stack.url}/v1/completions", headers=stack.headers(),
                             json={"model": "small", "prompt": "capital?", "max_tokens": 5})
    assert response.json()["choices"][0]["text"] == "Paris"


def test_the_model_comes_from_the_header_then_body_then_default(stack):
    requests.post(f"{stack.url}/generate", headers=stack.headers(),
                  json={"inputs": "x", "model": "small"})
    # model stripped for TGI, the reserved limit named
    forwarded = stack.upstreams["small"].requests[-1]["body"]
    assert forwarded == {"inputs": "x", "parameters": {"max_new_tokens": 1024}}
    requests.post(f"{stack.url}/generate", headers=stack.headers(), json={"inputs": "x"})
    assert len(stack.upstreams["llama-stable"].requests) + len(stack.upstreams["llama-canary"].requests) == 1


def test_health_info_and_metrics_are_open(stack):
    assert requests.get(f"{stack.url}/health").json()["status"] == "ok"
    assert requests.get(f"{stack.url}/info", headers={"X-Model": "small"}).json()["model_id"] == "small"
    assert "llm_requests_total" in requests.get(f"{stack.url}/metrics").text


def test_overloaded_model_without_fallback_is_a_typed_429_for_the_client(stack):
    stack.upstreams["small"].overloaded = True
    client = Client(stack.url, headers=stack.headers(model="small"), timeout=10)
    with pytest.raises(OverloadedError):
        client.generate("hi", max_new_tokens=5)


def test_info_for_an_unreachable_model_is_a_502_in_tgi_shape(stack):
    stack.stop_upstream("small")
    response = requests.get(f"{stack.url}/info", headers={"X-Model": "small"})
    assert response.status_code == 502
    assert response.json() == {"error": "model 'small' did not answer /info", "error_type": "unavailable"}


def test_a_model_whose_servers_are_gone_is_a_503_not_a_500(stack):
    stack.stop_upstream("small")
    response = requests.post(f"{stack.url}/generate", headers=stack.headers(model="small"),
                             json={"inputs": "x"})
    assert response.status_code == 503
    assert response.json() == {"error": "no healthy backend for model 'small'", "error_type": "unavailable"}
