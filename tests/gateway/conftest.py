"""Fake TGI upstreams and the gateway on real loopback ports, run from a background loop so
blocking clients (requests, text-generation's sync Client) can talk to them."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from serving.gateway.app import APP_STATE, create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from serving.gateway.server import GatewayServer, start_server
from tests.gateway.bad_upstream import Misbehaviour, start_bad_upstream
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

KEYS = {"full": "sk-full-0123456789", "small-only": "sk-small-0123456789",
        "tight": "sk-tight-0123456789", "flaky-only": "sk-flaky-0123456789",
        "tokens40": "sk-tokens40-0123456789"}


#: The event loop the gateway runs on in these tests: asyncio's (the default) or uvloop, the
#: one `llmops gateway` runs on in production (`GATEWAY_TEST_LOOP=uvloop`).
TEST_LOOP = os.environ.get("GATEWAY_TEST_LOOP", "asyncio")


def audit_lines(stack) -> list[dict]:
    """Every audit record the stack's gateway has written so far."""
    with open(stack.gateway.config.audit_log) as lines:
        return [json.loads(line) for line in lines]


def until(check, timeout: float = 5.0):
    """`check()`'s first truthy value within `timeout` seconds (else its last value): the
    gateway writes an audit line after the client has its answer."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    return check()


def new_event_loop(kind: str = TEST_LOOP) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop
        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Loop:
    def __init__(self, kind: str = TEST_LOOP) -> None:
        self.kind = kind
        self.loop = new_event_loop(kind)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Cancel what is left on the loop (keep-alive handlers of servers cleaned up), stop it."""
        async def cancel_leftovers() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.run(cancel_leftovers())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def serve(self, app: web.Application) -> tuple[web.AppRunner, str]:
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        return runner, f"http://127.0.0.1:{port}"

    async def serve_gateway(self, app: web.Application, **caps) -> tuple[GatewayServer, str]:
        """The gateway as `llmops gateway` runs it: its listener, caps and cancellation."""
        server = await start_server(app, "127.0.0.1", 0, **caps)
        return server, server.url


class GatewayClient:
    """What every test stack offers: the running gateway's state and request headers."""

    app: web.Application

    @property
    def gateway(self):
        return self.app[APP_STATE]

    def headers(self, key: str = "full", model: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {KEYS[key]}"}
        if model:
            headers["X-Model"] = model
        return headers


@dataclass
class GatewayStack(GatewayClient):
    url: str
    upstreams: dict[str, FakeBehaviour]
    app: web.Application
    loop: Loop
    runners: dict[str, web.AppRunner]
    server: GatewayServer | None = None

    def stop_upstream(self, name: str) -> None:
        """Take a fake model server down, as if its pods were gone."""
        self.loop.run(self.runners.pop(name).cleanup())



def gateway_config(urls: dict[str, str], audit_log: str, **overrides) -> GatewayConfig:
    raw = {
        "models": {
            "llama": {"backends": {"stable": {"url": urls["llama-stable"]},
                                   "canary": {"url": urls["llama-canary"], "weight": 20}},
                      "fallback": "small", "sticky": False, "maxNewTokens": 256},
            "small": {"backends": {"stable": {"url": urls["small"]}}},
            "private": {"backends": {"stable": {"url": urls["private"]}}, "redactPii": True},
        },
        "keys": [
            {"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"],
             "requestsPerMinute": 10_000, "tokensPerMinute": 10_000_000},
            {"id": "small-only", "sha256": hash_key(KEYS["small-only"]), "models": ["small"]},
            {"id": "tight", "sha256": hash_key(KEYS["tight"]), "models": ["*"],
             "requestsPerMinute": 2, "tokensPerMinute": 1000},
            {"id": "tokens40", "sha256": hash_key(KEYS["tokens40"]), "models": ["*"],
             "requestsPerMinute": 1000, "tokensPerMinute": 40},
        ],
        "limits": {"maxBodyBytes": 16384, "denyPatterns": ["ignore (all )?previous instructions"],
                   "requestTimeoutS": 5, "bodyTimeoutS": 1},
        "breaker": {"failureThreshold": 2, "resetAfterS": 60},
        "auditLog": audit_log,
        "defaultModel": "llama",
        "seed": 7,
    }
    for key, value in overrides.items():
        raw[key] = value
    return GatewayConfig.model_validate(raw)


@pytest.fixture(scope="session")
def loop() -> Iterator[Loop]:
    loop = Loop()
    yield loop
    loop.stop()


@pytest.fixture
def stack(loop: Loop, tmp_path) -> Iterator[GatewayStack]:
    upstreams = {name: FakeBehaviour(name=name, reply=reply) for name, reply in {
        "llama-stable": "Paris is the capital of France",
        "llama-canary": "Paris is the capital of France indeed",
        "small": "Paris",
        "private": "Mail alice@example.com or card 4111 1111 1111 1111 now",
    }.items()}
    runners, urls = {}, {}
    for name, behaviour in upstreams.items():
        runners[name], urls[name] = loop.run(loop.serve(create_fake_tgi(behaviour)))
    app = create_app(gateway_config(urls, str(tmp_path / "audit.jsonl")))
    gateway_server, url = loop.run(loop.serve_gateway(app))
    stack = GatewayStack(url, upstreams, app, loop, runners, gateway_server)
    yield stack
    loop.run(gateway_server.close())
    for runner in stack.runners.values():
        loop.run(runner.cleanup())


@dataclass
class BadStack(GatewayClient):
    """The gateway in front of a misbehaving model server ("flaky", falling back to "steady",
    a well-behaved fake) and a second one with no fallback ("lonely"); short timeouts."""

    url: str
    flaky: Misbehaviour
    lonely: Misbehaviour
    steady: FakeBehaviour
    app: web.Application

    def take_down(self, model: str) -> None:
        """Point the model's backend at a port nothing listens on: its connections are refused."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        backend = self.gateway.router.backends[(model, "stable")]
        backend.url = f"http://127.0.0.1:{port}"
        backend._urls.clear()



def bad_stack_config(urls: dict[str, str], audit_log: str) -> dict:
    return {
        "models": {
            "flaky": {"backends": {"stable": {"url": urls["flaky"]}}, "fallback": "steady"},
            "steady": {"backends": {"stable": {"url": urls["steady"]}}, "redactPii": True},
            "lonely": {"backends": {"stable": {"url": urls["lonely"]}}, "redactPii": True},
        },
        "keys": [
            {"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"],
             "requestsPerMinute": 10**9, "tokensPerMinute": 10**12},
            {"id": "flaky-only", "sha256": hash_key(KEYS["flaky-only"]), "models": ["flaky"]},
        ],
        "limits": {"requestTimeoutS": 1, "connectTimeoutS": 1, "bodyTimeoutS": 1},
        "breaker": {"failureThreshold": 3, "resetAfterS": 60},
        "cache": {"enabled": False},
        "auditLog": audit_log,
        "seed": 3,
    }


@pytest.fixture
def bad_stack(loop: Loop, tmp_path) -> Iterator[BadStack]:
    flaky, lonely = Misbehaviour(), Misbehaviour()
    steady = FakeBehaviour(name="steady", reply="steady answer")
    servers = [loop.run(start_bad_upstream(b)) for b in (flaky, lonely)]
    steady_runner, steady_url = loop.run(loop.serve(create_fake_tgi(steady)))
    urls = {"flaky": servers[0][1], "lonely": servers[1][1], "steady": steady_url}
    app = create_app(GatewayConfig.model_validate(bad_stack_config(urls, str(tmp_path / "audit.jsonl"))))
    server, url = loop.run(loop.serve_gateway(app))
    yield BadStack(url, flaky, lonely, steady, app)
    loop.run(server.close())
    loop.run(steady_runner.cleanup())
    for server, _ in servers:
        server.close()

    async def stop_handlers() -> None:
        flaky.stop()
        lonely.stop()
        await asyncio.sleep(0)
    loop.run(stop_handlers())
