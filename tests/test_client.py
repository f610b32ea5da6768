"""`serving.client.connect`: resolution from SSM (moto, fed what the workloads stack really
publishes), from a `pulumi stack output --json` file and from the environment; then real
requests through the real gateway to the TGI-protocol fake, with a fake ingress in front for
the failures only an ingress produces."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import requests
from moto import mock_aws
from text_generation.errors import OverloadedError, UnknownError

from llmops.offline.plan import Plan
from serving.client import (
    READS,
    UNDERSTOOD_MAJOR,
    ConnectError,
    GatewayUnavailable,
    OpenAIEndpoint,
    RetryPolicy,
    StreamInterrupted,
    connect,
    resolve,
)
from serving.client_transport import AsyncGatewayClient, GatewayClient, retry_after_seconds
from tests.fake_ingress import IngressBehaviour, create_fake_ingress
from tests.gateway import conftest as gateway_fixtures
from tests.gateway.conftest import KEYS, GatewayStack
from vocabulary.outputs_schema import WORKLOADS

REGION = "us-west-2"
PREFIX = "/llmops/dev/workloads/"
FAST = RetryPolicy(attempts=3, backoff_s=0.05, max_wait_s=2)
#: the gateway tests' fixtures: fake TGI upstreams and the real gateway on loopback ports
loop, gateway = gateway_fixtures.loop, gateway_fixtures.stack


# -- resolution ------------------------------------------------------------------------------

@pytest.fixture
def ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "LLMOPS_GATEWAY_URL",
                "LLMOPS_API_KEY", "LLMOPS_MODEL", "LLMOPS_OUTPUTS_SCHEMA_VERSION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield boto3.client("ssm", region_name=REGION)


def publish(ssm, plan: Plan, **values: str) -> None:
    """Put the workloads stack's parameters as its `pulumi up` would (from the recorded plan)."""
    for parameter in plan.of_type("aws:ssm/parameter:Parameter"):
        if parameter.stack != "workloads":
            continue
        name, inputs = parameter.inputs["name"], parameter.inputs
        value = values.get(name.rsplit("/", 1)[1], inputs.get("insecureValue", inputs.get("value")))
        ssm.put_parameter(Name=name, Type=inputs["type"], Value=value)


def test_the_client_reads_only_what_the_workloads_stack_mirrors():
    assert WORKLOADS.major == UNDERSTOOD_MAJOR
    assert set(READS) <= {o.name for o in WORKLOADS.mirrored()}


def test_ssm_resolves_what_the_workloads_stack_publishes(plans, ssm):
    plan = plans["dev"]
    publish(ssm, plan)
    endpoint = resolve("dev", source="ssm", ssm_client=ssm, api_key="sk-app", model="llama-3-8b")
    assert endpoint.gateway_url == plan.stack_outputs["workloads"]["gatewayUrl"]
    assert (endpoint.schema_version, endpoint.models) == ("1.0", ("llama-3-8b",))
    assert endpoint.source == f"SSM {PREFIX}*"
    assert endpoint.headers() == {"Authorization": "Bearer sk-app", "X-Model": "llama-3-8b"}
    assert "sk-app" not in repr(endpoint)


def test_auto_falls_back_to_ssm_in_the_default_region(plans, ssm):
    publish(ssm, plans["dev"])
    client = connect("dev", api_key="sk-app")   # no env vars, no file: SSM through boto3
    assert isinstance(client, GatewayClient)
    assert client.base_url == plans["dev"].stack_outputs["workloads"]["gatewayUrl"]


def test_no_parameters_means_the_platform_is_not_deployed(ssm):
    with pytest.raises(ConnectError) as caught:
        resolve("dev", source="ssm", ssm_client=ssm, api_key="sk-app")
    assert str(caught.value) == (
        f"no parameters under {PREFIX} in {REGION}: the workloads stack 'dev' is not deployed "
        "there (run its `pulumi up`), or this is the wrong account or region")


def test_a_newer_major_schema_is_refused_and_a_newer_minor_accepted(plans, ssm):
    publish(ssm, plans["dev"], outputsSchemaVersion="2.0")
    with pytest.raises(ConnectError) as caught:
        resolve("dev", source="ssm", ssm_client=ssm, api_key="sk-app")
    assert str(caught.value) == (
        f"SSM {PREFIX}* publishes output schema 2.0, but this client understands 1.x: upgrade "
        "the llmops client (serving/client.py)")
    ssm.put_parameter(Name=PREFIX + "outputsSchemaVersion", Value="1.7", Type="String",
                      Overwrite=True)
    assert resolve("dev", source="ssm", ssm_client=ssm, api_key="k").schema_version == "1.7"


def test_the_key_comes_from_the_applications_own_securestring(plans, ssm):
    publish(ssm, plans["dev"])
    ssm.put_parameter(Name="/apps/chat/llmops-key", Value="sk-chat", Type="SecureString")
    endpoint = resolve("dev", source="ssm", ssm_client=ssm, api_key_parameter="/apps/chat/llmops-key")
    assert endpoint.api_key == "sk-chat"
    with pytest.raises(ConnectError) as caught:
        resolve("dev", source="ssm", ssm_client=ssm, api_key_parameter="/apps/other/key")
    assert str(caught.value).startswith(
        f"the API key parameter /apps/other/key does not exist in {REGION}; each application "
        "has its own gateway key")


def test_a_missing_key_names_every_place_to_put_one(plans, ssm):
    publish(ssm, plans["dev"])
    with pytest.raises(ConnectError) as caught:
        resolve("dev", source="ssm", ssm_client=ssm)
    assert str(caught.value) == (
        "no gateway API key for dev: pass api_key=, set LLMOPS_API_KEY, or name an SSM "
        "SecureString with api_key_parameter=; each application has its own gateway key, issued "
        "by the platform team (docs/outputs.md: Gateway API keys are not outputs)")


def test_an_unknown_model_lists_the_served_ones(plans, ssm):
    publish(ssm, plans["dev"])
    with pytest.raises(ConnectError) as caught:
        resolve("dev", source="ssm", ssm_client=ssm, api_key="k", model="gpt-5")
    assert str(caught.value) == "model 'gpt-5' is not served in dev; models: llama-3-8b"


def _outputs_file(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(values))
    return path


def test_a_pulumi_stack_output_file_resolves_with_secrets_masked(plans, tmp_path):
    # what `pulumi stack output --json` prints without --show-secrets
    outputs = {**plans["dev"].stack_outputs["workloads"], "kubeconfig": "[secret]"}
    endpoint = resolve("dev", outputs_file=_outputs_file(tmp_path, outputs), api_key="k",
                       environ={})
    assert endpoint.gateway_url == outputs["gatewayUrl"]
    assert endpoint.source == f"outputs file {tmp_path / 'outputs.json'}"


@pytest.mark.parametrize(("values", "message"), [
    ({}, "holds no outputs: the workloads stack 'dev' is not deployed (run its `pulumi up`), "
         "or the file is of another stack"),
    ({"configDigest": "abc", "clusterName": "llmops-dev"},
     "is the platform stack's; the gateway is in the workloads stack's (`pulumi stack output "
     "--json` in stacks/workloads)"),
    ({"gatewayUrl": "https://x"}, "has no outputsSchemaVersion: the workloads stack 'dev' "
                                  "predates the output contract; redeploy it"),
], ids=["not-deployed", "platform", "pre-contract"])
def test_an_unusable_outputs_file_says_why(tmp_path, values, message):
    path = _outputs_file(tmp_path, values)
    with pytest.raises(ConnectError) as caught:
        resolve("dev", outputs_file=path, api_key="k", environ={})
    assert str(caught.value) == f"outputs file {path} {message}"


def test_an_outputs_file_of_another_environment_is_refused(plans, tmp_path):
    path = _outputs_file(tmp_path, plans["prod"].stack_outputs["workloads"])
    with pytest.raises(ConnectError) as caught:
        resolve("dev", outputs_file=path, api_key="k", environ={})
    assert str(caught.value) == f"outputs file {path} is of environment 'prod', not 'dev'"


def test_environment_variables_win_in_auto_mode(tmp_path):
    environ = {"LLMOPS_GATEWAY_URL": "https://llm.example.com/", "LLMOPS_API_KEY": "sk-env",
               "LLMOPS_OUTPUTS_SCHEMA_VERSION": "1.2", "LLMOPS_MODEL": "small"}
    endpoint = resolve("dev", outputs_file=tmp_path / "ignored.json", environ=environ)
    assert (endpoint.gateway_url, endpoint.api_key, endpoint.model) == (
        "https://llm.example.com", "sk-env", "small")
    with pytest.raises(ConnectError, match=r"publishes output schema 3\.1, but this client"):
        resolve("dev", environ={**environ, "LLMOPS_OUTPUTS_SCHEMA_VERSION": "3.1"})


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0   # in the past
    assert retry_after_seconds("soon") is None
    assert FAST.after_status(503, {"Retry-After": "1"}) == 1.0
    assert FAST.after_status(503, {}) is None
    assert FAST.after_status(503, {"Retry-After": "30"}) is None        # longer than we wait
    assert FAST.after_status(429, {"Retry-After": "1"}) is None         # a spent budget


# -- through the gateway ---------------------------------------------------------------------

def _connect(url: str, tmp_path: Path, kind: str = "sync", key: str = "small-only",
             model: str | None = "small", retry: RetryPolicy = FAST):
    outputs = _outputs_file(tmp_path, {"outputsSchemaVersion": "1.0", "environment": "dev",
                                       "gatewayUrl": url, "models": ["llama", "small", "private"]})
    return connect("dev", kind=kind, outputs_file=outputs, api_key=KEYS[key], model=model,
                   retry=retry, environ={})


def _ingress(stack: GatewayStack, **behaviour) -> tuple[IngressBehaviour, str]:
    b = IngressBehaviour(target=stack.url, **behaviour)
    runner, url = stack.loop.run(stack.loop.serve(create_fake_ingress(b)))
    stack.runners["ingress"] = runner
    return b, url


def test_sync_client_generates_and_streams_through_the_gateway(gateway, tmp_path):
    client = _connect(gateway.url, tmp_path)
    assert client.generate("Capital of France?", max_new_tokens=5).generated_text == "Paris"
    assert [e.token.text for e in client.generate_stream("Capital?", max_new_tokens=5)] == ["Paris"]
    assert gateway.upstreams["small"].requests[-1]["body"]["parameters"]["max_new_tokens"] == 5


def test_async_client_generates_and_streams_through_the_gateway(gateway, tmp_path):
    client = _connect(gateway.url, tmp_path, kind="async", key="full", model="llama")
    assert isinstance(client, AsyncGatewayClient)

    async def run():
        whole = await client.generate("Capital?", max_new_tokens=10)
        streamed = [e.token.text async for e in client.generate_stream("Capital?", max_new_tokens=10)]
        return whole, streamed
    whole, streamed = asyncio.run(run())
    assert whole.generated_text.startswith("Paris is the capital of France")
    assert "".join(streamed).startswith("Paris is the capital of France")


def test_openai_endpoint_is_the_gateways_v1_base_url(gateway, tmp_path):
    endpoint = _connect(gateway.url, tmp_path, kind="openai", key="full")
    assert isinstance(endpoint, OpenAIEndpoint)
    assert endpoint.base_url == f"{gateway.url}/v1"
    response = requests.post(f"{endpoint.base_url}/chat/completions",
                             headers={"Authorization": f"Bearer {endpoint.api_key}",
                                      **endpoint.default_headers},
                             json={"messages": [{"role": "user", "content": "capital?"}]})
    assert response.json()["choices"][0]["message"]["content"] == "Paris"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_503_with_retry_after_is_retried(gateway, tmp_path, kind):
    ingress, url = _ingress(gateway, unavailable=1, retry_after="0")
    client = _connect(url, tmp_path, kind=kind)
    result = client.generate("x", max_new_tokens=5)
    if kind == "async":
        result = asyncio.run(result)
    assert result.generated_text == "Paris"
    assert ingress.requests == ["/", "/"] and ingress.forwarded == 1
    assert len(gateway.upstreams["small"].requests) == 1


@pytest.mark.parametrize(("retry_after", "expected"), [
    (None, "HTTP 503 from the gateway: <html><head><title>503 Service Temporarily Unavailable"),
    ("60", "HTTP 503 from the gateway: <html>"),
], ids=["no-retry-after", "too-long"])
def test_a_503_without_a_usable_retry_after_is_not_retried(gateway, tmp_path, retry_after, expected):
    ingress, url = _ingress(gateway, unavailable=1, retry_after=retry_after)
    with pytest.raises(UnknownError) as caught:
        _connect(url, tmp_path).generate("x")
    assert str(caught.value).startswith(expected)
    assert ingress.requests == ["/"]


def test_the_gateways_own_503_and_429_are_not_retried(gateway, tmp_path):
    ingress, url = _ingress(gateway)
    client = _connect(url, tmp_path)
    gateway.upstreams["small"].overloaded = True
    with pytest.raises(OverloadedError):
        client.generate("x")
    gateway.stop_upstream("small")
    with pytest.raises(UnknownError, match="no healthy backend for model 'small'"):
        client.generate("x")
    assert ingress.requests == ["/", "/"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_connection_is_retried_then_named(tmp_path):
    port = _free_port()
    client = _connect(f"http://127.0.0.1:{port}", tmp_path)
    with pytest.raises(GatewayUnavailable) as caught:
        client.generate("x")
    assert str(caught.value).startswith(f"could not connect to http://127.0.0.1:{port} (3 attempts)")
    with pytest.raises(GatewayUnavailable, match=r"\(3 attempts\)"):
        asyncio.run(_connect(f"http://127.0.0.1:{port}", tmp_path, kind="async").generate("x"))


def test_a_gateway_that_comes_up_during_the_backoff_is_reached(gateway, tmp_path):
    port = _free_port()
    ingress = IngressBehaviour(target=gateway.url)

    async def start_late():
        await asyncio.sleep(0.1)
        from aiohttp import web
        runner = web.AppRunner(create_fake_ingress(ingress))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    late = asyncio.run_coroutine_threadsafe(start_late(), gateway.loop.loop)
    client = _connect(f"http://127.0.0.1:{port}", tmp_path,
                      retry=RetryPolicy(attempts=4, backoff_s=0.1, max_wait_s=2))
    assert client.generate("x").generated_text == "Paris"
    gateway.runners["late"] = late.result(5)
    assert ingress.requests == ["/"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_broken_half_way_is_never_retried(gateway, tmp_path, kind):
    ingress, url = _ingress(gateway, drop_stream_after_events=1)
    client = _connect(url, tmp_path, kind=kind, key="full", model="small")
    gateway.upstreams["small"].reply = "one two three four"
    received: list[str] = []

    async def consume_async():
        async for event in client.generate_stream("x"):
            received.append(event.token.text)

    with pytest.raises(StreamInterrupted) as caught:
        if kind == "sync":
            received.extend(e.token.text for e in client.generate_stream("x"))
        else:
            asyncio.run(consume_async())
    assert received == ["one"]
    assert "broke after 1 events" in str(caught.value)
    assert "not retried: a retry would generate again" in str(caught.value)
    assert ingress.requests == ["/"] and len(gateway.upstreams["small"].requests) == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_tls_failure_is_named_and_not_retried(gateway, tmp_path, kind):
    ingress, url = _ingress(gateway)
    https = url.replace("http://", "https://")
    result = _connect(https, tmp_path, kind=kind)
    with pytest.raises(GatewayUnavailable) as caught:
        outcome = result.generate("x")
        if kind == "async":
            asyncio.run(outcome)
    assert str(caught.value).startswith(f"TLS with {https} failed: ")
    assert ingress.requests == []
