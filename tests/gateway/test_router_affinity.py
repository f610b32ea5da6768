"""A TGI track's router hashes `x-session-id` (vllm-router 0.1.17 `consistent_hash`); with
`routerAffinity: prompt-prefix` the gateway sets it from the prompt's leading text, so a chat's
turns and chats sharing an opening land on one replica, and a client can never choose it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import yaml

from serving.gateway.affinity import PREFIX_CHARS, affinity_key
from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig, GatewayConfigError, load_config
from tests.gateway.conftest import KEYS, Loop
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

SYSTEM = {"role": "system", "content": "You are the support bot of ACME. " * 20}


@dataclass
class Routed:
    url: str
    service: FakeBehaviour
    router: FakeBehaviour


@pytest.fixture
def routed(loop: Loop) -> Iterator[Routed]:
    service, router = FakeBehaviour(name="service"), FakeBehaviour(name="router")
    runners, urls = [], {}
    for name, behaviour in (("service", service), ("router", router)):
        runner, urls[name] = loop.run(loop.serve(create_fake_tgi(behaviour)))
        runners.append(runner)
    config = GatewayConfig.model_validate({
        "models": {
            "tgi": {"backends": {"stable": {"url": urls["service"], "router": urls["router"],
                                            "routerAffinity": "prompt-prefix"}}},
            "vllm": {"backends": {"stable": {"url": urls["service"], "router": urls["router"]}}}},
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"]}],
        "cache": {"enabled": False}})
    server, url = loop.run(loop.serve_gateway(create_app(config)))
    yield Routed(url, service, router)
    loop.run(server.close())
    for runner in runners:
        loop.run(runner.cleanup())


def _chat(routed: Routed, messages: list[dict], model: str = "tgi", headers: dict | None = None,
          **extra) -> dict[str, str]:
    """Send one chat request; the headers the router received with it."""
    response = requests.post(routed.url + "/v1/chat/completions", timeout=30, headers={
        "X-Model": model, "Authorization": f"Bearer {KEYS['full']}", **(headers or {})},
        json={"messages": messages, "max_tokens": 8, **extra})
    assert response.status_code == 200, response.text
    return {k.lower(): v for k, v in routed.router.requests[-1]["headers"].items()}


def test_every_turn_of_a_chat_carries_the_same_session_key(routed):
    first = [SYSTEM, {"role": "user", "content": "my order is late"}]
    later = [*first, {"role": "assistant", "content": "which order?"}, {"role": "user", "content": "42"}]
    keys = {_chat(routed, first)["x-session-id"], _chat(routed, later)["x-session-id"]}
    assert len(keys) == 1 and len(keys.pop()) == 32


def test_chats_that_open_differently_get_different_keys(routed):
    one = _chat(routed, [SYSTEM, {"role": "user", "content": "my order is late"}])["x-session-id"]
    two = _chat(routed, [SYSTEM, {"role": "user", "content": "reset my password"}])["x-session-id"]
    other_system = _chat(routed, [{"role": "system", "content": "You are a poet."},
                                  {"role": "user", "content": "my order is late"}])["x-session-id"]
    assert len({one, two, other_system}) == 3


def test_a_client_cannot_choose_the_replica_by_header_or_body_field(routed):
    messages = [SYSTEM, {"role": "user", "content": "my order is late"}]
    own = _chat(routed, messages)["x-session-id"]
    pinned = _chat(routed, messages, headers={"X-Session-Id": "pin-me", "X-User-Id": "pin-me"},
                   session_id="pin-me", user="pin-me")
    assert pinned["x-session-id"] == own  # the gateway's key, not the client's
    assert "x-user-id" not in pinned      # client headers are never forwarded
    other = _chat(routed, [SYSTEM, {"role": "user", "content": "other question"}],
                  headers={"X-Session-Id": own})
    assert other["x-session-id"] != own


def test_a_backend_without_affinity_sends_no_session_key(routed):
    sent = _chat(routed, [SYSTEM, {"role": "user", "content": "hi"}], model="vllm",
                 headers={"X-Session-Id": "pin-me"})
    assert "x-session-id" not in sent


def test_a_system_prompt_longer_than_the_prefix_keys_alone():
    long_system = {"role": "system", "content": "x" * (PREFIX_CHARS + 10)}
    route = "/v1/chat/completions"
    assert affinity_key(route, {"messages": [long_system, {"role": "user", "content": "a"}]}) == \
        affinity_key(route, {"messages": [long_system, {"role": "user", "content": "b"}]})


def test_a_completions_prompt_keys_on_its_start():
    route, start = "/v1/completions", "y" * PREFIX_CHARS
    assert affinity_key(route, {"prompt": start + " turn one"}) == affinity_key(
        route, {"prompt": [start + " turn one and two"]})
    assert affinity_key(route, {"prompt": "short a"}) != affinity_key(route, {"prompt": "short b"})


def test_an_unknown_affinity_or_one_without_a_router_is_named(tmp_path):
    for backend, expected in (
            ({"url": "http://a:80", "router": "http://r:80", "routerAffinity": "prefix-tree"},
             "models.m.backends.stable.routerAffinity: Input should be 'prompt-prefix'"),
            ({"url": "http://a:80", "routerAffinity": "prompt-prefix"},
             "routerAffinity needs a router")):
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump({"models": {"m": {"backends": {"stable": backend}}}, "keys": []}))
        with pytest.raises(GatewayConfigError) as raised:
            load_config(path)
        assert expected in str(raised.value), str(raised.value)
