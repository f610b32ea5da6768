"""The gateway's configuration file: models -> backends (from the stack), keys, limits.

The stack renders `models` into a ConfigMap; API keys come from a Secret mounted next to it
(`keysFile`). Both are validated once at start with errors that name the key path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from vocabulary.config.base import Section, describe_errors
from vocabulary.config.gateway_keys import grant_problems
from vocabulary.errors import LlmopsError

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class GatewayConfigError(LlmopsError):
    """The gateway's config file is unusable; the message lists every problem."""


class Backend(Section):
    url: str = Field(pattern=r"^https?://[^/]+$")
    weight: int = Field(default=0, ge=0, le=100, description="canary share in percent")
    router: str | None = Field(default=None, pattern=r"^https?://[^/]+$", description="the track's "
                               "prefix-cache-aware router (components/router.py): the OpenAI routes go "
                               "there; TGI's own routes go to url (vllm-router 0.1.17 rewrites a "
                               "/generate body into SGLang's shape, dropping TGI's `inputs`)")
    router_affinity: Literal["prompt-prefix"] | None = Field(
        default=None, description="`prompt-prefix`: the gateway sets the header the router's "
        "consistent_hash policy hashes (x-session-id) from the prompt's leading text "
        "(serving/gateway/affinity.py), for an engine without the render API cache_aware keys on (TGI)")

    @model_validator(mode="after")
    def _affinity_needs_router(self) -> Backend:
        if self.router_affinity is not None and self.router is None:
            raise ValueError("routerAffinity needs a router: it sets the header the router hashes")
        return self


class Backends(Section):
    stable: Backend
    canary: Backend | None = None


class ColdStart(Section):
    hold_seconds: float = Field(gt=0, le=900, description="how long a request waits for a "
                                "backend that refuses connections or answers 503 (a model "
                                "scaled to zero) before the client gets 503 with Retry-After")


class ModelRoute(Section):
    backends: Backends
    engine: Literal["tgi", "vllm"] = Field(default="tgi", description="the model server's API: "
                                           "TGI's (and OpenAI's), or vLLM's OpenAI API only")
    cold_start: ColdStart | None = None
    fallback: str | None = Field(default=None, description="model to degrade to when this one "
                                 "is overloaded or its breaker is open")
    sticky: bool = Field(default=True, description="a key always lands on the same track")
    max_new_tokens: int = Field(default=1024, ge=1)
    redact_pii: bool = False


class ApiKey(Section):
    id: str = Field(pattern=r"^[\w.-]{1,64}$")
    sha256: str
    models: list[str] = Field(min_length=1, description="models this key may use; ['*'] for all")
    requests_per_minute: int = Field(default=60, ge=1)
    tokens_per_minute: int = Field(default=50_000, ge=1)

    @field_validator("sha256")
    @classmethod
    def _hash(cls, value: str) -> str:
        if not SHA256_HEX.match(value):
            raise ValueError("must be the lowercase hex SHA-256 of the key, never the key itself")
        return value


class Limits(Section):
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    request_timeout_s: float = Field(default=120, gt=0)
    connect_timeout_s: float = Field(default=2, gt=0)
    body_timeout_s: float = Field(default=10, gt=0, description="time a client has to send its "
                                  "body; a stalled client loses its connection")
    max_inflight_per_backend: int = Field(default=256, ge=1)
    max_inflight_requests: int = Field(default=1024, ge=1, description="requests this process "
                                       "handles at once; beyond it 503 with Retry-After")
    max_connections: int = Field(default=2048, ge=1, description="open client connections per "
                                 "process; beyond it a new connection is answered 503 and closed "
                                 "(keep it below the fd limit, which upstream sockets share)")
    idle_timeout_s: float = Field(default=30, gt=0, description="a connection that has not sent "
                                  "a complete request (idle keep-alive or partial headers) for "
                                  "this long is closed")
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After on overload and drain")
    deny_patterns: list[str] = []

    @field_validator("deny_patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return patterns


class Breaker(Section):
    failure_threshold: int = Field(default=5, ge=1)
    reset_after_s: float = Field(default=30, gt=0)


class Cache(Section):
    enabled: bool = True
    ttl_s: float = Field(default=300, gt=0)
    max_entries: int = Field(default=10_000, ge=1)
    max_bytes: int = Field(default=64 << 20, ge=1024, description="all entries together")
    max_entry_bytes: int = Field(default=1 << 20, ge=1024, description="one answer; larger ones "
                                 "are not cached")


class GatewayConfig(Section):
    models: dict[str, ModelRoute] = Field(min_length=1)
    keys: list[ApiKey] = []
    keys_file: str | None = None
    limits: Limits = Limits()
    breaker: Breaker = Breaker()
    cache: Cache = Cache()
    audit_log: str = "-"
    default_model: str | None = None
    seed: int | None = Field(default=None, description="fixes the canary split's randomness (tests)")
    mode: Literal["tgi"] = "tgi"

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        problems = reference_problems({n: r.fallback for n, r in self.models.items()},
                                      self.default_model)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def reference_problems(fallbacks: Mapping[str, Any], default_model: Any) -> list[str]:
    """Names that must be configured models: each model's fallback, the default model."""
    problems = []
    for name, fallback in fallbacks.items():
        if fallback is not None and fallback not in fallbacks:
            problems.append(f"models.{name}.fallback: {fallback!r} is not a configured "
                            f"model; models: {', '.join(fallbacks)}")
        if fallback == name:
            problems.append(f"models.{name}.fallback: a model cannot fall back to itself")
    if default_model is not None and default_model not in fallbacks:
        problems.append(f"defaultModel: {default_model!r} is not a configured model")
    return problems


class KeysFile(Section):
    """The mounted keys file: `{keys: [...]}`."""

    keys: list[ApiKey] = []


def load_config(path: Path) -> GatewayConfig:
    """Read and validate the config file and the keys file it points at; every problem in
    either is reported at once, keys-file problems under the keys file's name."""
    raw = _read_yaml(path)
    if not isinstance(raw, dict):
        raise GatewayConfigError(f"{path} must be a mapping of settings (got {type(raw).__name__})")
    problems: list[str] = []
    keys: list[ApiKey] | None = None
    keys_file = raw.get("keysFile")
    if isinstance(keys_file, str) and keys_file:
        keys, problems = _load_keys(path.parent / keys_file)  # absolute paths stay absolute
        raw = {**raw, "keys": []}
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = describe_errors(GatewayConfig, exc) + problems
        # pydantic skips the cross-references once a field fails: check them on the raw file
        problems += [p for p in _raw_reference_problems(raw) if p not in problems]
    problems += _grant_problems(raw, path.parent / keys_file if keys is not None else None)
    if problems:
        raise GatewayConfigError(f"{path} has {len(problems)} problem(s):\n"
                                 + "\n".join(f"  - {p}" for p in problems))
    if keys is not None:
        config = config.model_copy(update={"keys": keys})
    return config


def _load_keys(keys_path: Path) -> tuple[list[ApiKey], list[str]]:
    try:
        raw = _read_yaml(keys_path)
    except GatewayConfigError as exc:
        return [], [f"keysFile: {exc}"]
    if isinstance(raw, list):  # a bare list of keys is accepted too
        raw = {"keys": raw}
    try:
        return KeysFile.model_validate(raw).keys, []
    except ValidationError as exc:
        return [], [f"{keys_path}: {p}" for p in describe_errors(KeysFile, exc)]


def _read_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise GatewayConfigError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise GatewayConfigError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    except yaml.YAMLError as exc:
        raise GatewayConfigError(f"{path} is not valid YAML: {exc}") from None


def _raw_reference_problems(raw: dict) -> list[str]:
    models = raw.get("models")
    if not isinstance(models, dict):
        return []
    fallbacks = {name: route.get("fallback") if isinstance(route, dict) else None
                 for name, route in models.items()}
    return reference_problems(fallbacks, raw.get("defaultModel"))


def _grant_problems(raw: dict, keys_path: Path | None) -> list[str]:
    """Keys granting models this gateway does not serve, read raw so that one malformed key
    does not hide another's unknown model; keys-file problems under the keys file's name."""
    models = raw.get("models")
    names = [str(n) for n in models] if isinstance(models, dict) else []
    if keys_path is None:
        return grant_problems(raw.get("keys"), names)
    try:
        document = _read_yaml(keys_path)
    except GatewayConfigError:
        return []  # already reported by _load_keys
    keys = document.get("keys") if isinstance(document, dict) else document
    return [f"{keys_path}: {p}" for p in grant_problems(keys, names)]
