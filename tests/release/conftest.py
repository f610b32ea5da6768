"""Fixtures for the release tests: loopback servers, the real gateway in front of fake models."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from tests.release.servers import Servers

ROOT = Path(__file__).resolve().parents[2]

KEY = "sk-release-0123456789"
DENY = ["ignore (all )?previous instructions"]


@pytest.fixture
def servers() -> Iterator[Servers]:
    servers = Servers()
    yield servers
    servers.close()


def gateway_config(model: str, stable: str, canary: str | None = None, weight: int = 0,
                   breaker_threshold: int = 5, cache: bool = True) -> GatewayConfig:
    backends: dict = {"stable": {"url": stable}}
    if canary:
        backends["canary"] = {"url": canary, "weight": weight}
    return GatewayConfig.model_validate({
        "models": {model: {"backends": backends, "sticky": False, "maxNewTokens": 256}},
        "keys": [{"id": "release", "sha256": hash_key(KEY), "models": ["*"],
                  "requestsPerMinute": 100_000, "tokensPerMinute": 100_000_000}],
        "limits": {"denyPatterns": DENY, "requestTimeoutS": 30},
        "breaker": {"failureThreshold": breaker_threshold, "resetAfterS": 60},
        "cache": {"enabled": cache},
        "auditLog": "/dev/null",
        "seed": 11,
    })


def start_gateway(servers: Servers, config: GatewayConfig) -> str:
    return servers.serve(create_app(config))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def stacks(tmp_path: Path) -> Path:
    """A copy of the shipped environment files the release commands may edit."""
    target = tmp_path / "stacks"
    target.mkdir()
    for path in (ROOT / "stacks").glob("Pulumi.*.yaml"):
        shutil.copy(path, target / path.name)
    return target
