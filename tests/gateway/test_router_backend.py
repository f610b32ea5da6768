"""A track with a prefix-aware router (components/router.py): the gateway sends the OpenAI routes
to the router and TGI's own routes to the model Service, and only after everything it does
for any request (auth, grants, budgets, audit), so the router is never a way around them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from tests.gateway.conftest import KEYS, Loop
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi


@dataclass
class Routed:
    url: str
    service: FakeBehaviour
    router: FakeBehaviour
    audit: str


@pytest.fixture
def routed(loop: Loop, tmp_path) -> Iterator[Routed]:
    service, router = FakeBehaviour(name="service", reply="from the service"), FakeBehaviour(
        name="router", reply="from the router")
    runners, urls = [], {}
    for name, behaviour in (("service", service), ("router", router)):
        runner, urls[name] = loop.run(loop.serve(create_fake_tgi(behaviour)))
        runners.append(runner)
    audit = str(tmp_path / "audit.jsonl")
    config = GatewayConfig.model_validate({
        "models": {"llama": {"backends": {"stable": {"url": urls["service"], "router": urls["router"]}}},
                   "other": {"backends": {"stable": {"url": urls["service"]}}}},
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"]},
                 {"id": "small-only", "sha256": hash_key(KEYS["small-only"]), "models": ["other"]}],
        "cache": {"enabled": False}, "auditLog": audit})
    server, url = loop.run(loop.serve_gateway(create_app(config)))
    yield Routed(url, service, router, audit)
    loop.run(server.close())
    for runner in runners:
        loop.run(runner.cleanup())


def _post(routed: Routed, path: str, body: dict, key: str | None = "full") -> requests.Response:
    headers = {"X-Model": "llama", **({"Authorization": f"Bearer {KEYS[key]}"} if key else {})}
    return requests.post(routed.url + path, json=body, headers=headers, timeout=30)


CHAT = {"messages": [{"role": "user", "content": "capital of France?"}], "max_tokens": 8}


def test_openai_routes_go_through_the_router(routed):
    response = _post(routed, "/v1/chat/completions", CHAT)
    assert response.status_code == 200
    assert "from the router" in response.text
    assert [r["path"] for r in routed.router.requests] == ["/v1/chat/completions"]
    assert routed.service.requests == []


def test_tgi_routes_go_to_the_model_service(routed):
    response = _post(routed, "/generate",
                     {"inputs": "capital of France?", "parameters": {"max_new_tokens": 8}})
    assert response.status_code == 200
    assert response.json()["generated_text"] == "from the service"
    assert [r["path"] for r in routed.service.requests] == ["/generate"]
    assert routed.router.requests == []


def test_a_request_the_gateway_refuses_never_reaches_the_router(routed):
    assert _post(routed, "/v1/chat/completions", CHAT, key=None).status_code == 401
    assert _post(routed, "/v1/chat/completions", CHAT, key="small-only").status_code == 403
    assert routed.router.requests == [] and routed.service.requests == []


def test_a_routed_request_is_audited_like_any_other(routed):
    assert _post(routed, "/v1/chat/completions", CHAT).status_code == 200
    with open(routed.audit) as audit:
        records = [json.loads(line) for line in audit if line.strip()]
    assert any(r.get("model") == "llama" and r.get("status") == 200 for r in records), records
