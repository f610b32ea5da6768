"""vLLM models behind the gateway (issue 23), through the real `openai` client, next to a TGI
model through `text-generation` in the same run: auth, budgets, cache, PII redaction,
canary, fallback and cold-start holds work as they do for TGI."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import openai
import pytest
import requests
import text_generation
from aiohttp import web

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from tests.gateway.conftest import KEYS, Loop
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi
from tests.gateway.fake_vllm import VllmBehaviour, create_fake_vllm


@dataclass
class Engines:
    url: str
    fakes: dict[str, VllmBehaviour]
    tgi: FakeBehaviour
    gateway: object
    cold_port: int
    loop: Loop
    runners: dict[str, web.AppRunner]

    def openai(self, key: str = "full") -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=KEYS[key], max_retries=0, timeout=20)

    def audit(self) -> list[dict]:
        with open(self.gateway.config.audit_log) as lines:
            return [json.loads(line) for line in lines]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def engines(loop: Loop, tmp_path) -> Iterator[Engines]:
    fakes = {"chat": VllmBehaviour(served="chat"),
             "chat-canary": VllmBehaviour(served="chat", words=("canary", " answer")),
             "backup": VllmBehaviour(served="backup", words=("backup", " answer", " here")),
             "private": VllmBehaviour(served="private",
                                      words=("Mail", " alice@example.com", " now"))}
    tgi = FakeBehaviour(name="llama", reply="Paris is the capital of France")
    runners, urls = {}, {}
    for name, behaviour in fakes.items():
        runners[name], urls[name] = loop.run(loop.serve(create_fake_vllm(behaviour)))
    runners["llama"], urls["llama"] = loop.run(loop.serve(create_fake_tgi(tgi)))
    cold_port = _free_port()
    config = GatewayConfig.model_validate({
        "models": {
            "chat": {"engine": "vllm", "fallback": "backup", "maxNewTokens": 64,
                     "backends": {"stable": {"url": urls["chat"]},
                                  "canary": {"url": urls["chat-canary"], "weight": 0}}},
            "backup": {"engine": "vllm", "maxNewTokens": 2, "backends": {"stable": {"url": urls["backup"]}}},
            "private": {"engine": "vllm", "redactPii": True,
                        "backends": {"stable": {"url": urls["private"]}}},
            "cold": {"engine": "vllm", "coldStart": {"holdSeconds": 3},
                     "backends": {"stable": {"url": f"http://127.0.0.1:{cold_port}"}}},
            "llama": {"backends": {"stable": {"url": urls["llama"]}}},
        },
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"],
                  "requestsPerMinute": 10_000, "tokensPerMinute": 10_000_000},
                 {"id": "tokens40", "sha256": hash_key(KEYS["tokens40"]), "models": ["*"],
                  "requestsPerMinute": 1000, "tokensPerMinute": 40}],
        "auditLog": str(tmp_path / "audit.jsonl"), "seed": 1})
    app = create_app(config)
    server, url = loop.run(loop.serve_gateway(app))
    yield Engines(url, fakes, tgi, server.gateway, cold_port, loop, runners)
    loop.run(server.close())
    for runner in runners.values():
        loop.run(runner.cleanup())


def test_a_vllm_model_through_openai_and_a_tgi_model_through_text_generation_in_one_run(engines):
    answer = engines.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10)
    assert answer.choices[0].message.content == "vLLM says hello to you today"
    assert answer.usage.completion_tokens == 6
    client = text_generation.Client(engines.url, headers={"Authorization": f"Bearer {KEYS['full']}",
                                                          "X-Model": "llama"}, timeout=20)
    assert client.generate("q", max_new_tokens=10).generated_text == "Paris is the capital of France"
    assert "".join(r.token.text for r in client.generate_stream("q", max_new_tokens=10)) == (
        "Paris is the capital of France")
    assert engines.fakes["chat"].requests[-1]["body"]["model"] == "chat"


def test_openai_streams_from_vllm_end_with_usage_and_the_key_pays_what_usage_says(engines):
    stream = engines.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10, n=2, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == 0)
    assert text == "vLLM says hello to you today"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12
    usage = engines.gateway.limiter._usage["full"]
    deadline = time.monotonic() + 5  # settled after the last byte: the client may read it first
    while usage.reserved and time.monotonic() < deadline:
        time.sleep(0.01)
    assert usage.token_total == 12
    completions = engines.openai().completions.create(model="chat", prompt="hi", max_tokens=3,
                                                      stream=True)
    assert "".join(c.choices[0].text for c in completions) == "vLLM says hello"


def test_tgi_routes_for_a_vllm_model_are_a_400_naming_the_openai_routes(engines):
    response = requests.post(f"{engines.url}/generate", json={"inputs": "q"}, timeout=10,
                             headers={"Authorization": f"Bearer {KEYS['full']}", "X-Model": "chat"})
    assert response.status_code == 400
    assert response.json() == {"error": "model 'chat' is served by vLLM, which speaks the OpenAI API: "
                                        "use POST /v1/chat/completions or POST /v1/completions "
                                        "instead of /generate", "error_type": "validation"}
    assert engines.fakes["chat"].requests == []


def test_n_sequences_reserve_n_times_max_tokens_so_the_budget_holds(engines):
    def ask(i: int) -> int:
        try:
            engines.openai("tokens40").chat.completions.create(
                model="chat", messages=[{"role": "user", "content": f"q{i}"}], max_tokens=5, n=4)
            return 200
        except openai.RateLimitError:
            return 429
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(ask, range(20)))
    generated = sum(5 * r["body"]["n"] for r in engines.fakes["chat"].requests)  # 5 words each
    assert statuses.count(200) >= 1 and 0 < generated <= 40


def test_a_vllm_fallback_is_asked_for_its_own_model_name_within_its_own_cap(engines):
    for track in ("chat", "chat-canary"):  # nothing answers for 'chat': its fallback does
        engines.loop.run(engines.runners.pop(track).cleanup())
    answer = engines.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10)
    assert answer.choices[0].message.content == "backup answer"
    assert engines.fakes["backup"].requests[-1]["body"] | {"messages": None} == {
        "model": "backup", "max_tokens": 2, "messages": None}
    assert engines.audit()[-1]["answered_by"] == "backup"


def test_vllm_answers_are_redacted_whole_and_streamed(engines):
    client = engines.openai()
    whole = client.chat.completions.create(model="private", messages=[{"role": "user", "content": "x"}])
    assert whole.choices[0].message.content == "Mail [REDACTED_EMAIL] now"
    streamed = client.chat.completions.create(model="private", stream=True,
                                              messages=[{"role": "user", "content": "x"}])
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
        "Mail [REDACTED_EMAIL] now")


def test_deterministic_vllm_requests_are_cached_per_key(engines):
    client = engines.openai()
    body = {"model": "chat", "messages": [{"role": "user", "content": "same"}], "temperature": 0}
    first = client.chat.completions.with_raw_response.create(**body)
    second = client.chat.completions.with_raw_response.create(**body)
    assert second.headers.get("X-Cache") == "hit" and first.headers.get("X-Cache") is None
    assert len(engines.fakes["chat"].requests) == 1


def test_the_canary_of_a_vllm_model_is_asked_for_the_same_served_name(engines):
    route = engines.gateway.router.routes["chat"]
    engines.gateway.router.routes["chat"] = route.model_copy(update={"backends": route.backends.model_copy(
        update={"canary": route.backends.canary.model_copy(update={"weight": 100})})})
    answer = engines.openai().chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content == "canary answer"
    assert engines.fakes["chat-canary"].requests[-1]["body"]["model"] == "chat"


def test_a_vllm_error_passes_through_in_openais_shape_and_is_not_a_fault(engines):
    with pytest.raises(openai.BadRequestError, match="maximum context length is 100 characters"):
        engines.openai().chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x" * 200}])
    line = engines.audit()[-1]
    assert (line["status"], line["outcome"]) == (400, "model_refused")
    assert engines.gateway.router.backends[("chat", "stable")].breaker.failures == 0


def test_a_cold_model_is_held_until_its_backend_listens(engines):
    waiting = []

    def start_later() -> web.AppRunner:
        time.sleep(0.6)
        waiting.append(_waiting(engines, "cold"))
        return engines.loop.run(_serve_on(engines.cold_port, VllmBehaviour(served="cold")))
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(start_later)
        answer = engines.openai().chat.completions.create(
            model="cold", messages=[{"role": "user", "content": "wake up"}])
        runner = later.result()
    assert answer.choices[0].message.content == "vLLM says hello to you today"
    assert waiting == [1.0] and _waiting(engines, "cold") == 0.0
    engines.loop.run(runner.cleanup())


def test_a_cold_model_that_stays_down_is_a_503_with_retry_after_after_the_hold(engines):
    started = time.time()
    response = requests.post(f"{engines.url}/v1/chat/completions", timeout=20,
                             headers={"Authorization": f"Bearer {KEYS['full']}"},
                             json={"model": "cold", "messages": [{"role": "user", "content": "x"}]})
    assert time.time() - started >= 3
    assert (response.status_code, response.headers["Retry-After"]) == (503, "3")
    assert response.json() == {"error": "model 'cold' is starting: no replica was ready within 3 s; "
                                        "retry later", "error_type": "unavailable"}
    assert engines.gateway.router.backends[("cold", "stable")].breaker.failures == 0


def _waiting(engines: Engines, model: str) -> float:
    text = requests.get(f"{engines.url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith(f'llm_requests_waiting{{model="{model}"}}'))
    return float(line.split()[-1])


async def _serve_on(port: int, behaviour: VllmBehaviour) -> web.AppRunner:
    runner = web.AppRunner(create_fake_vllm(behaviour), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def test_a_cold_model_answering_503_is_held_and_still_counted_as_waiting(engines):
    behaviour = VllmBehaviour(served="cold", not_ready=True)   # a Service with no ready replica
    runner = engines.loop.run(_serve_on(engines.cold_port, behaviour))
    seen = []

    def ready_later() -> None:
        time.sleep(0.6)
        seen.append(_waiting(engines, "cold"))
        behaviour.not_ready = False
    try:
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(ready_later)
            answer = engines.openai().chat.completions.create(
                model="cold", messages=[{"role": "user", "content": "wake up"}])
            later.result()
    finally:
        engines.loop.run(runner.cleanup())
    assert answer.choices[0].message.content == "vLLM says hello to you today"
    assert seen == [1.0] and _waiting(engines, "cold") == 0.0
    assert engines.gateway.router.backends[("cold", "stable")].breaker.failures == 0
