"""With `redactPii`, no shape of answer carries PII: whole, details.tokens, best_of_sequences,
the compat list, TGI streams, OpenAI streams and whole answers, and cached replays; and the
setting that applies is the one of the model that answered."""

from __future__ import annotations

import json

import pytest
import requests

PII = ("alice@example.com", "4111")


def _clean(text: str) -> bool:
    return not any(p in text for p in PII) and "[REDACTED_EMAIL]" in text and "[REDACTED_CARD]" in text


def _post(stack, path, body, model="private"):
    return requests.post(f"{stack.url}{path}", headers=stack.headers(model=model), json=body, timeout=10)


def _events(response) -> list[dict]:
    return [json.loads(line[5:]) for line in response.iter_lines()
            if line.startswith(b"data:") and not line.startswith(b"data: [DONE]")]


def test_whole_answers_details_tokens_and_best_of_sequences_are_redacted(stack):
    body = {"inputs": "contact?", "parameters": {"details": True, "best_of": 2, "do_sample": True}}
    answer = _post(stack, "/generate", body).json()
    assert _clean(answer["generated_text"])
    assert "".join(t["text"] for t in answer["details"]["tokens"]) == answer["generated_text"]
    for sequence in answer["details"]["best_of_sequences"]:
        assert _clean(sequence["generated_text"])
        assert "".join(t["text"] for t in sequence["tokens"]) == sequence["generated_text"]


def test_the_compat_route_list_is_redacted(stack):
    answer = _post(stack, "/", {"inputs": "contact?", "parameters": {"details": True}}).json()
    assert _clean(answer[0]["generated_text"])
    assert "".join(t["text"] for t in answer[0]["details"]["tokens"]) == answer[0]["generated_text"]


def test_a_tgi_stream_is_redacted_and_its_final_text_matches(stack):
    response = requests.post(f"{stack.url}/generate_stream", headers=stack.headers(model="private"),
                             json={"inputs": "contact?"}, stream=True, timeout=10)
    events = _events(response)
    streamed = "".join(e["token"]["text"] for e in events)
    assert _clean(streamed)
    assert events[-1]["generated_text"] == streamed


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "contact?"}]}, "delta"),
    ("/v1/completions", {"prompt": "contact?"}, "text"),
])
def test_openai_streams_and_whole_answers_are_redacted(stack, path, body, field):
    body = {**body, "model": "private"}
    whole = _post(stack, path, body).json()["choices"][0]
    assert _clean(whole["message"]["content"] if field == "delta" else whole["text"])
    response = requests.post(f"{stack.url}{path}", headers=stack.headers(), json={**body, "stream": True},
                             stream=True, timeout=10)
    lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    chunks = [json.loads(line[5:])["choices"][0] for line in lines[:-1]]
    if field == "delta":
        streamed = "".join((c.get("delta") or {}).get("content") or "" for c in chunks)
    else:
        streamed = "".join(c.get("text") or "" for c in chunks)
    assert _clean(streamed)


def test_cached_replays_are_redacted(stack):
    for _ in range(2):
        whole = _post(stack, "/generate", {"inputs": "contact?", "parameters": {"details": True}})
        assert _clean(whole.json()["generated_text"])
    assert whole.headers["X-Cache"] == "hit"
    for _ in range(2):
        response = requests.post(f"{stack.url}/generate_stream", headers=stack.headers(model="private"),
                                 json={"inputs": "contact?"}, stream=True, timeout=10)
        assert _clean("".join(e["token"]["text"] for e in _events(response)))
    assert response.headers["X-Cache"] == "hit"


def test_the_setting_of_the_model_that_answered_applies(bad_stack):
    bad_stack.steady.reply = "write to bob@example.com"
    bad_stack.take_down("flaky")  # flaky (no redaction) falls back to steady (redactPii)
    answer = requests.post(f"{bad_stack.url}/generate", headers=bad_stack.headers(model="flaky"),
                           json={"inputs": "q"}, timeout=10).json()
    assert answer["generated_text"] == "write to [REDACTED_EMAIL]"
    response = requests.post(f"{bad_stack.url}/generate_stream", headers=bad_stack.headers(model="flaky"),
                             json={"inputs": "q"}, stream=True, timeout=10)
    assert "".join(e["token"]["text"] for e in _events(response)) == "write to [REDACTED_EMAIL]"
