"""Typed stack configuration: parsed once, validated before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from stacks.config.base import ConfigError, Section
from stacks.config.platform import PlatformConfig

#: Config namespaces the program reads; keys of other namespaces (pulumi:, kubernetes:) pass by.
PROJECT_NAMESPACE = "llmops"
READ_KEYS = ("aws:region",)

__all__ = ["ConfigError", "PlatformConfig", "Section", "load_from_runtime",
           "parse_platform_config", "secret_config_keys"]


def secret_config_keys() -> list[str]:
    """Config keys that hold secrets: set with `pulumi config set --secret`, never in YAML."""
    return [f.alias for f in PlatformConfig.model_fields.values()
            if f.alias and (f.json_schema_extra or {}).get("secret")]


def parse_platform_config(values: Mapping[str, Any], *, project: str, stack: str,
                          source: str | None = None) -> PlatformConfig:
    """Validate a stack's config (keys as in Pulumi.<stack>.yaml) into a `PlatformConfig`.

    Raises `ConfigError` listing every problem at once.
    """
    data: dict[str, Any] = {"project": project, "environment": stack}
    for key, value in values.items():
        namespace = key.split(":", 1)[0]
        if namespace == PROJECT_NAMESPACE or key in READ_KEYS:
            data[key] = value
    try:
        return PlatformConfig.model_validate(data)
    except ValidationError as exc:
        from stacks.config.base import describe_errors

        raise ConfigError(source or f"stack {stack!r}", describe_errors(PlatformConfig, exc)) from None


def _decode(value: Any) -> Any:
    """Pulumi hands structured values to the program as JSON strings."""
    if isinstance(value, str) and value[:1] in ("{", "[") :
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_from_runtime() -> PlatformConfig:
    """Read the running stack's whole config from the Pulumi runtime and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values = {key: _decode(value) for key, value in raw.items()}
    stack = pulumi.get_stack()
    return parse_platform_config(values, project=pulumi.get_project(), stack=stack,
                                 source=f"stacks/Pulumi.{stack}.yaml")
