"""`connect(env)`: an application's way to the environment's gateway.

It reads the workloads stack's published contract (vocabulary/outputs_schema.py) from one of:
- a `pulumi stack output --json` file of the workloads stack (`outputs_file=`),
- SSM Parameter Store, /llmops/<env>/workloads/... (boto3; the role needs the platform's
  `appReadPolicyArn`),
- environment variables (LLMOPS_GATEWAY_URL, optional LLMOPS_OUTPUTS_SCHEMA_VERSION),
checks the schema's major version, and returns a configured text_generation client (sync or
async, see serving/client_transport.py) or an OpenAI-compatible base URL.

The API key is the application's own (the stacks only hold hashes): `api_key=`, then
LLMOPS_API_KEY, then an SSM SecureString the application owns (`api_key_parameter=`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from serving.client_transport import (
    DEFAULT_RETRY,
    DEFAULT_TIMEOUTS,
    AsyncGatewayClient,
    GatewayClient,
    GatewayUnavailable,
    RetryPolicy,
    StreamInterrupted,
    Timeouts,
)
from vocabulary.errors import LlmopsError
from vocabulary.outputs_schema import VERSION_OUTPUT, parameter_name, parse_version

__all__ = ["ConnectError", "Endpoint", "GatewayUnavailable", "OpenAIEndpoint", "RetryPolicy",
           "StreamInterrupted", "Timeouts", "connect", "resolve"]

#: The workloads schema major this client was written for; a newer one may have moved or
#: retyped what it reads (a test ties it to vocabulary/outputs_schema.py).
UNDERSTOOD_MAJOR = 1
PROJECT = "llmops"
ENV_URL, ENV_KEY = "LLMOPS_GATEWAY_URL", "LLMOPS_API_KEY"
ENV_VERSION, ENV_MODEL = "LLMOPS_OUTPUTS_SCHEMA_VERSION", "LLMOPS_MODEL"
#: What the client reads from the workloads stack.
READS = (VERSION_OUTPUT, "environment", "gatewayUrl", "models")
KEY_HELP = ("each application has its own gateway key, issued by the platform team (docs/outputs.md: "
            "Gateway API keys are not outputs)")

Source = Literal["auto", "env", "outputs", "ssm"]


class ConnectError(LlmopsError):
    """The environment could not be resolved: not deployed, a key missing, a newer schema."""


@dataclass(frozen=True)
class Endpoint:
    """What `resolve` found: where the gateway is, how to authenticate, and from where."""

    environment: str
    gateway_url: str
    api_key: str = field(repr=False)
    source: str
    model: str | None = None
    schema_version: str | None = None
    models: tuple[str, ...] | None = None

    def headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        if self.model:
            headers["X-Model"] = self.model
        return headers


@dataclass(frozen=True)
class OpenAIEndpoint:
    """For OpenAI-compatible SDKs: `OpenAI(base_url=e.base_url, api_key=e.api_key,
    default_headers=e.default_headers)`; the model goes in each request's `model`."""

    base_url: str
    api_key: str = field(repr=False)
    default_headers: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    timeouts: Timeouts = DEFAULT_TIMEOUTS


def connect(env: str, *, kind: Literal["sync", "async", "openai"] = "sync",
            timeouts: Timeouts = DEFAULT_TIMEOUTS, retry: RetryPolicy = DEFAULT_RETRY,
            **where: Any) -> GatewayClient | AsyncGatewayClient | OpenAIEndpoint:
    """A client for `env`'s gateway. `where` is passed to `resolve` (source, outputs_file,
    ssm_client, region, api_key, api_key_parameter, model)."""
    endpoint = resolve(env, **where)
    if kind == "sync":
        return GatewayClient(endpoint.gateway_url, endpoint.headers(), timeouts, retry)
    if kind == "async":
        return AsyncGatewayClient(endpoint.gateway_url, endpoint.headers(), timeouts, retry)
    if kind == "openai":
        return OpenAIEndpoint(f"{endpoint.gateway_url}/v1", endpoint.api_key,
                              {"X-Model": endpoint.model} if endpoint.model else {},
                              endpoint.model, timeouts)
    raise ConnectError(f"kind {kind!r} is not one of sync, async, openai")


def resolve(env: str, *, source: Source = "auto", outputs_file: str | Path | None = None,
            ssm_client: Any = None, region: str | None = None, api_key: str | None = None,
            api_key_parameter: str | None = None, model: str | None = None,
            environ: Mapping[str, str] | None = None) -> Endpoint:
    """Find `env`'s gateway, check the schema version, the key and the model."""
    environ = os.environ if environ is None else environ
    if source == "auto":
        source = "env" if environ.get(ENV_URL) else "outputs" if outputs_file else "ssm"
    ssm = ssm_client if ssm_client is not None or source != "ssm" else _ssm(region)
    if source == "env":
        values, origin = _from_environ(environ), "environment variables"
    elif source == "outputs":
        if outputs_file is None:
            raise ConnectError("source 'outputs' needs outputs_file= (the workloads stack's "
                               "`pulumi stack output --json`)")
        values, origin = _from_outputs_file(Path(outputs_file), env), f"outputs file {outputs_file}"
    elif source == "ssm":
        prefix = parameter_name(PROJECT, env, "workloads", "")
        values, origin = _from_ssm(ssm, prefix, env), f"SSM {prefix}*"
    else:
        raise ConnectError(f"source {source!r} is not one of auto, env, outputs, ssm")

    version = values.get(VERSION_OUTPUT)
    if version is not None:
        check_schema_version(str(version), origin)
    if values.get("environment", env) != env:
        raise ConnectError(f"{origin} is of environment {values['environment']!r}, not {env!r}")
    if not values.get("gatewayUrl"):
        raise ConnectError(f"{origin} has no gatewayUrl")
    models = tuple(values["models"]) if isinstance(values.get("models"), list) else None
    model = model or environ.get(ENV_MODEL) or None
    if model and models is not None and model not in models:
        raise ConnectError(f"model {model!r} is not served in {env}; models: {', '.join(models)}")
    key = api_key or environ.get(ENV_KEY) or (
        _key_from_ssm(ssm or _ssm(region), api_key_parameter) if api_key_parameter else None)
    if not key:
        raise ConnectError(f"no gateway API key for {env}: pass api_key=, set {ENV_KEY}, or name "
                           f"an SSM SecureString with api_key_parameter=; {KEY_HELP}")
    return Endpoint(env, str(values["gatewayUrl"]).rstrip("/"), key, origin, model,
                    None if version is None else str(version), models)


def check_schema_version(version: str, origin: str) -> None:
    try:
        major, _ = parse_version(version)
    except LlmopsError:
        raise ConnectError(f"{origin}: {VERSION_OUTPUT} {version!r} is not major.minor") from None
    if major > UNDERSTOOD_MAJOR:
        raise ConnectError(
            f"{origin} publishes output schema {version}, but this client understands "
            f"{UNDERSTOOD_MAJOR}.x: upgrade the llmops client (serving/client.py)")


def _from_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {"gatewayUrl": environ.get(ENV_URL)}
    if environ.get(ENV_VERSION):
        values[VERSION_OUTPUT] = environ[ENV_VERSION]
    if not values["gatewayUrl"]:
        raise ConnectError(f"source 'env' needs {ENV_URL} (and {ENV_KEY})")
    return values


def _from_outputs_file(path: Path, env: str) -> dict[str, Any]:
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConnectError(f"outputs file {path} does not exist; write it with `pulumi stack "
                           "output --json > FILE` in stacks/workloads") from None
    except ValueError as exc:
        raise ConnectError(f"outputs file {path} is not JSON ({exc}); write it with "
                           "`pulumi stack output --json`") from None
    if not isinstance(values, dict) or not values:
        raise ConnectError(f"outputs file {path} holds no outputs: the workloads stack {env!r} is "
                           "not deployed (run its `pulumi up`), or the file is of another stack")
    if "gatewayUrl" not in values and "configDigest" in values:
        raise ConnectError(f"outputs file {path} is the platform stack's; the gateway is in the "
                           "workloads stack's (`pulumi stack output --json` in stacks/workloads)")
    if VERSION_OUTPUT not in values:
        raise ConnectError(f"outputs file {path} has no {VERSION_OUTPUT}: the workloads stack "
                           f"{env!r} predates the output contract; redeploy it")
    return values


def _ssm(region: str | None) -> Any:
    import boto3  # only SSM users need AWS credentials and a region

    return boto3.client("ssm", region_name=region) if region else boto3.client("ssm")


def _from_ssm(ssm: Any, prefix: str, env: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    names = [prefix + name for name in READS]
    try:
        answer = ssm.get_parameters(Names=names, WithDecryption=True)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        hint = (" (attach the platform's appReadPolicyArn to this role)"
                if error.get("Code") == "AccessDeniedException" else "")
        raise ConnectError(f"reading {prefix}* from SSM failed: {error.get('Code')}: "
                           f"{error.get('Message')}{hint}") from None
    except BotoCoreError as exc:
        raise ConnectError(f"reading {prefix}* from SSM failed: {exc}") from None
    found = {p["Name"][len(prefix):]: p["Value"] for p in answer.get("Parameters", [])}
    region = ssm.meta.region_name
    if not found:
        raise ConnectError(f"no parameters under {prefix} in {region}: the workloads stack "
                           f"{env!r} is not deployed there (run its `pulumi up`), or this is the "
                           "wrong account or region")
    if VERSION_OUTPUT not in found:
        raise ConnectError(f"{prefix}{VERSION_OUTPUT} is missing in {region}: the workloads "
                           f"stack {env!r} predates the output contract; redeploy it")
    values: dict[str, Any] = dict(found)
    if "models" in found:
        values["models"] = json.loads(found["models"])
    return values


def _key_from_ssm(ssm: Any, name: str) -> str:
    from botocore.exceptions import ClientError

    try:
        return ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code")
        if code == "ParameterNotFound":
            raise ConnectError(f"the API key parameter {name} does not exist in "
                               f"{ssm.meta.region_name}; {KEY_HELP}") from None
        raise ConnectError(f"reading the API key parameter {name} failed: {code}: "
                           f"{exc.response.get('Error', {}).get('Message')}") from None
