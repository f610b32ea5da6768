"""A moto server on loopback for `llmops preflight` (what moto lacks: tests/preflight/fake_aws.py)."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from tests.preflight.fake_aws import EC2_QUOTAS, serve_ec2_quotas


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    serve_ec2_quotas(True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        serve_ec2_quotas(False)


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], Any]]:
    """A fresh moto state; returns (service, region) -> client on it. Nothing leaves loopback."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"))
    EC2_QUOTAS.clear()

    def client(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=moto_url)

    yield client
