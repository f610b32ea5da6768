"""Defects a third adversarial review of the gateway found, one test each, every one failing on
the gateway before its fix: the route handler's wrong status for other methods on /v1/models,
its audit line, requests it did not charge to the key, and the body it invited on an unknown
route (D5); PII written with JSON escapes inside tool-call arguments (D2); the drain's error
event in TGI's shape on the OpenAI routes (D6); held-back reasoning and tool-call text sent
after the event that finished its choice (D3)."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from serving.gateway.redaction import StreamRedaction
from tests.gateway import rawhttp
from tests.gateway.conftest import KEYS, audit_lines
from tests.gateway.fake_vllm import VllmBehaviour, create_fake_vllm
from tests.gateway.test_vllm_engine import engines  # noqa: F401  (the fixture)

# -- D5. the route handler: 405 on /v1/models, its audit line, the key's rate, no 100 ----------

@pytest.mark.parametrize("method", ["POST", "OPTIONS", "DELETE"])
def test_other_methods_on_the_model_list_are_405_allowing_get(stack, method):
    response = requests.request(method, f"{stack.url}/v1/models", headers=stack.headers(), timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.json() == {"error": f"'{method}' is not allowed on /v1/models; use GET",
                               "error_type": "validation"}


def test_a_served_model_list_is_audited_as_allowed(stack):
    assert requests.get(f"{stack.url}/v1/models", headers=stack.headers(), timeout=10).status_code == 200
    [line] = audit_lines(stack)
    seen = (line["key_id"], line["action"], line["allowed"], line["status"])
    assert seen == ("full", "/v1/models", True, 200)


def test_unknown_routes_and_model_lists_are_charged_to_the_keys_requests_per_minute(stack):
    # key "tight" may send 2 requests per minute: each of these writes an audit line
    headers = stack.headers("tight")
    assert requests.get(f"{stack.url}/nope", headers=headers, timeout=10).status_code == 404
    assert requests.get(f"{stack.url}/v1/models", headers=headers, timeout=10).status_code == 200
    refused = requests.get(f"{stack.url}/nope", headers=headers, timeout=10)
    assert refused.status_code == 429
    assert refused.json() == {"error": "rate limit exceeded: requests per minute for key 'tight'",
                              "error_type": "overloaded"}
    assert int(refused.headers["Retry-After"]) >= 1
    assert requests.post(f"{stack.url}/generate", headers=stack.headers("tight", "small"),
                         json={"inputs": "q"}, timeout=10).status_code == 429  # one rate for both


def test_expect_100_continue_on_an_unknown_route_is_answered_404_without_inviting_the_body(stack):
    head = rawhttp.post("/v1/embeddings", b"", {"Authorization": f"Bearer {KEYS['full']}",
                                                 "Expect": "100-continue"}, length=20)
    with socket.create_connection(rawhttp.address(stack.url), timeout=5) as sock:
        sock.sendall(head)
        first = sock.recv(1024)
    assert first.startswith(b"HTTP/1.1 404 ")
    assert audit_lines(stack)[-1]["status"] == 404


# -- D2. PII written with JSON escapes inside tool-call arguments ------------------------------

def _chat_private(url: str, stream: bool = False) -> requests.Response:
    body = {"model": "private", "messages": [{"role": "user", "content": "x"}], "stream": stream}
    return requests.post(f"{url}/v1/chat/completions", headers={"Authorization": f"Bearer {KEYS['full']}"},
                         json=body, timeout=15, stream=stream)


def test_escaped_pii_in_tool_call_arguments_is_redacted_whole_and_streamed(engines):  # noqa: F811
    fake = engines.fakes["private"]
    # the arguments a model may write: `@` and `.` as JSON escapes, one escape split across pieces
    fake.tool_arguments = ('{"to": "carol\\u00', '40example\\u002eorg", "n": "\\u0022"}')
    whole = _chat_private(engines.url).json()["choices"][0]["message"]["tool_calls"][0]
    assert whole["function"]["arguments"] == '{"to": "[REDACTED_EMAIL]", "n": "\\u0022"}'
    streamed = _chat_private(engines.url, stream=True).content
    arguments = ""
    for line in streamed.split(b"\n"):
        if line.startswith(b"data: {"):
            for choice in json.loads(line[6:]).get("choices", []):
                for call in choice.get("delta", {}).get("tool_calls") or []:
                    arguments += call["function"]["arguments"]
    assert arguments == '{"to": "[REDACTED_EMAIL]", "n": "\\u0022"}'
    assert json.loads(arguments) == {"to": "[REDACTED_EMAIL]", "n": '"'}


# -- D6. the drain's error event on an OpenAI route is OpenAI's error object --------------------

def test_an_openai_stream_cut_by_the_drain_window_ends_with_an_openai_error_object(loop, tmp_path):
    upstream = VllmBehaviour(served="chat", token_delay_s=0.5)
    runner, upstream_url = loop.run(loop.serve(create_fake_vllm(upstream)))
    config = GatewayConfig.model_validate({
        "models": {"chat": {"engine": "vllm", "backends": {"stable": {"url": upstream_url}}}},
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"]}],
        "auditLog": str(tmp_path / "audit.jsonl")})
    server, url = loop.run(loop.serve_gateway(create_app(config)))
    got: dict = {}

    def stream() -> None:
        body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": True}
        response = requests.post(f"{url}/v1/chat/completions", json=body, stream=True, timeout=15,
                                 headers={"Authorization": f"Bearer {KEYS['full']}"})
        got["lines"] = [line for line in response.iter_lines() if line.startswith(b"data:")]
    streaming = threading.Thread(target=stream)
    streaming.start()
    try:
        deadline = time.monotonic() + 10
        while not upstream.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.run(server.drain(0.2)) is False
        loop.run(server.close())
        streaming.join(20)
    finally:
        loop.run(runner.cleanup())
    assert json.loads(got["lines"][-1][5:]) == {"error": {
        "message": "this gateway replica shut down before the generation finished (its drain window "
                   "ended); retry", "type": "ServiceUnavailableError", "param": None, "code": 503}}


# -- D3. a choice's held-back texts are released with its last event, not after it -------------

def _event(delta: dict, finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice]}).encode()


def _arguments(text: str) -> dict:
    return {"tool_calls": [{"index": 0, "function": {"arguments": text}}]}


def test_held_back_reasoning_and_tool_text_is_released_with_the_choices_last_event():
    redaction = StreamRedaction()
    sent = [redaction.line(_event({"reasoning_content": "mail bob@exa"})),
            redaction.line(_event(_arguments('{"to": "carol@'))),
            redaction.line(_event({"reasoning_content": "mple.com"})),
            redaction.line(_event(_arguments("example.org"))),
            redaction.line(_event({}, finish="stop"))]
    assert redaction.rest() == []          # nothing is left to send after the finishing event
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in sent]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    arguments = "".join(c["function"]["arguments"] for d in deltas for c in d.get("tool_calls") or [])
    assert reasoning == "mail [REDACTED_EMAIL]"
    assert arguments == '{"to": "[REDACTED_EMAIL]'
