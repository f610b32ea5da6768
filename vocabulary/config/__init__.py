"""Typed stack configuration: parsed once, validated before any resource exists."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from vocabulary.config.arns import place_from_config
from vocabulary.config.base import ConfigError, Section
from vocabulary.config.gateway_keys import stack_key_problems
from vocabulary.config.monitoring import SECRETS_NAMESPACE
from vocabulary.config.platform import PlatformConfig

#: Config namespaces the program reads; keys of other namespaces (pulumi:, kubernetes:) pass by.
PROJECT_NAMESPACE = "llmops"
#: The product name in resource names, tags and SSM paths: the same for both Pulumi projects
#: (llmops, llmops-workloads) so both stacks of an environment agree on names.
PRODUCT = "llmops"
READ_KEYS = ("aws:region",)

__all__ = ["PRODUCT", "ConfigError", "PlatformConfig", "Section", "load_from_runtime",
           "load_workloads_config", "misplaced_key_problem", "misplaced_workloads_keys",
           "parse_platform_config", "secret_config_keys"]


def secret_config_keys() -> list[str]:
    """Config keys that hold secrets: set with `pulumi config set --secret`, never in YAML."""
    return [f.alias for f in PlatformConfig.model_fields.values()
            if f.alias and (f.json_schema_extra or {}).get("secret")]


def misplaced_workloads_keys(workloads: Mapping[str, Any], environment: Mapping[str, Any]) -> list[str]:
    """Settings written in the workloads stack's file, which holds only that stack's secrets:
    merged over the environment file they would replace its section without a word (and a
    problem in them would be blamed on the environment file). `aws:region` may repeat the
    environment's (the default AWS provider of that stack reads it), never differ from it."""
    secrets = set(secret_config_keys())
    return sorted(key for key in workloads
                  if (key.split(":", 1)[0] == PROJECT_NAMESPACE and key not in secrets)
                  or (key in READ_KEYS and workloads[key] != environment.get(key)))


def misplaced_key_problem(key: str, *, workloads_source: str, environment_source: str) -> str:
    secrets = ", ".join([*secret_config_keys(), f"{SECRETS_NAMESPACE}:*"])
    if key in READ_KEYS:
        return (f"{key}: differs from {environment_source}'s; the workloads stack deploys where "
                f"the environment file says: delete it from {workloads_source} or make it the same")
    return (f"{key}: not a secret, so it does not belong in {workloads_source} (that file holds "
            f"only the workloads stack's secrets: {secrets}); set it in {environment_source}, "
            "the environment file both stacks read")


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
    keys_problems = stack_key_problems(data)  # the keys file's grants against the models
    try:
        # the stack's region (and account) for the sections' "must be where the stack is" checks
        config = PlatformConfig.model_validate(data, context={"stack": place_from_config(values)})
    except ValidationError as exc:
        from vocabulary.config.base import describe_errors
        from vocabulary.config.platform import cross_section_problems

        problems = describe_errors(PlatformConfig, exc)
        problems += [p for p in cross_section_problems(data) if p not in problems]
        raise ConfigError(source or f"stack {stack!r}", problems + keys_problems) from None
    if keys_problems:
        raise ConfigError(source or f"stack {stack!r}", keys_problems)
    return config


def _decode(value: Any) -> Any:
    """Pulumi hands structured values to the program as JSON strings."""
    if isinstance(value, str) and value[:1] in ("{", "[") :
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _runtime_values() -> dict[str, Any]:
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    return {key: _decode(value) for key, value in raw.items()}


def load_from_runtime() -> PlatformConfig:
    """The platform stack: its whole config is the environment file, from the runtime."""
    import pulumi

    stack = pulumi.get_stack()
    return parse_platform_config(_runtime_values(), project=PRODUCT, stack=stack,
                                 source=f"stacks/Pulumi.{stack}.yaml")


def load_workloads_config() -> PlatformConfig:
    """The workloads stack: the environment file (stacks/Pulumi.<stack>.yaml, the platform
    stack's config) under the workloads stack's own config (its secrets, any override).

    One file describes an environment; secrets live with the stack that uses them, because
    each stack encrypts its config with its own key.
    """
    import pulumi

    from vocabulary.stackfile import read_stack_config

    stack = pulumi.get_stack()
    runtime = _runtime_values()
    if f"{PROJECT_NAMESPACE}:cluster" in runtime:
        environment = {}  # the runtime holds the whole environment (`llmops plan` passes it)
    else:
        file = read_stack_config(stack)
        environment = {k: v for k, v in file.values.items() if k not in file.secret_keys}
        misplaced = misplaced_workloads_keys(runtime, environment)
        if misplaced:  # the runtime is this stack's own file: its secrets only
            workloads_source = f"stacks/workloads/Pulumi.{stack}.yaml"
            raise ConfigError(workloads_source, [
                misplaced_key_problem(key, workloads_source=workloads_source,
                                      environment_source=file.source) for key in misplaced])
    return parse_platform_config({**environment, **runtime}, project=PRODUCT, stack=stack,
                                 source=f"stacks/Pulumi.{stack}.yaml + stacks/workloads/Pulumi.{stack}.yaml")
