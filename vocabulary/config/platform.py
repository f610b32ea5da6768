"""The root of the schema: one field per config key, each a section from its own module.

To add a section: write `vocabulary/config/<area>.py` with a `Section` subclass, then add one
field here with the alias `llmops:<key>` the YAML uses. Nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from vocabulary.config.base import Section, repeated
from vocabulary.config.capacity import capacity_problems
from vocabulary.config.ci import CiConfig
from vocabulary.config.cluster import ClusterConfig
from vocabulary.config.gateway import GatewayConfig
from vocabulary.config.gpu import GpuPool, check_unique_pool_names
from vocabulary.config.images import ImagesConfig
from vocabulary.config.monitoring import GRAFANA_PASSWORD_KEY, SECRETS_NAMESPACE, MonitoringConfig
from vocabulary.config.network import NetworkConfig
from vocabulary.config.placement import model_placement_problems
from vocabulary.config.regions import KnownRegion
from vocabulary.config.release import ReleaseConfig
from vocabulary.config.serving import ModelConfig, ServingConfig
from vocabulary.config.storage import StorageConfig

TAG_VALUE = re.compile(r"^[\w .:/=+\-@]{1,256}$")


class TagsConfig(Section):
    """Cost-allocation and ownership tags put on every taggable AWS resource."""

    owner: str = Field(min_length=1)
    cost_centre: str = Field(min_length=1)
    extra: dict[str, str] = {}

    @field_validator("owner", "cost_centre")
    @classmethod
    def _valid_tag_value(cls, value: str) -> str:
        if not TAG_VALUE.match(value):
            raise ValueError(f"{value!r} is not a valid AWS tag value (letters, digits, "
                             "spaces and _ . : / = + - @, at most 256 characters)")
        return value


class PlatformConfig(Section):
    """Everything one environment (stack) is made of."""

    model_config = ConfigDict(alias_generator=None)

    project: str = Field(json_schema_extra={"derived": True})  # the Pulumi project name
    environment: str = Field(json_schema_extra={"derived": True})  # the stack name
    region: KnownRegion = Field(alias="aws:region")
    tags: TagsConfig = Field(alias="llmops:tags")
    network: NetworkConfig = Field(alias="llmops:network")
    cluster: ClusterConfig = Field(alias="llmops:cluster")
    gpu_pools: list[GpuPool] = Field(alias="llmops:gpuPools", min_length=1)
    storage: StorageConfig = Field(default=StorageConfig(), alias="llmops:storage")
    serving: ServingConfig = Field(default=ServingConfig(), alias="llmops:serving")
    models: list[ModelConfig] = Field(default=[], alias="llmops:models")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig, alias="llmops:monitoring")
    gateway: GatewayConfig = Field(alias="llmops:gateway")
    release: ReleaseConfig = Field(default=ReleaseConfig(), alias="llmops:release")
    ci: CiConfig = Field(alias="llmops:ci")
    images: ImagesConfig = Field(default=ImagesConfig(), alias="llmops:images")
    platform_stack: str | None = Field(
        default=None, alias="llmops:platformStack", pattern=r"^[\w.-]+/[\w.-]+/[\w.-]+$",
        description="the platform stack the workloads stack reads (org/project/stack); "
        "default: <this org>/llmops/<this stack>")
    gateway_api_keys: str | None = Field(default=None, alias="llmops:gatewayApiKeys", min_length=1,
                                  json_schema_extra={"secret": True},
                                  description="the gateway's key file (hashed keys); set it with "
                                  "`pulumi config set --secret llmops:gatewayApiKeys < keys.yaml`")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        dupes = repeated(m.name for m in models)
        if dupes:
            raise ValueError(f"model names must be unique; repeated: {', '.join(dupes)}")
        return models

    @model_validator(mode="after")
    def _models_fit_their_pools(self) -> PlatformConfig:
        """Cross-section checks: each model's GPU shape has pools, and its shards and weights fit."""
        problems = placement_problems(enumerate(self.models), self.gpu_pools, self.serving)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pools(cls, pools: list[GpuPool]) -> list[GpuPool]:
        return check_unique_pool_names(pools)

    def monitoring_secret_keys(self) -> list[str]:
        """The `llmops-secrets:` keys this stack's monitoring reads (Grafana, receivers)."""
        keys = [GRAFANA_PASSWORD_KEY, *self.monitoring.secret_keys()]
        return [f"{SECRETS_NAMESPACE}:{key}" for key in keys]

    def resource_tags(self) -> dict[str, str]:
        """The tags every taggable AWS resource carries."""
        return {
            "Environment": self.environment,
            "Project": self.project,
            "Owner": self.tags.owner,
            "CostCentre": self.tags.cost_centre,
            "ManagedBy": "pulumi",
            **self.tags.extra,
        }

    @property
    def cluster_name(self) -> str:
        return f"{self.project}-{self.environment}"


def placement_problems(models, pools: list[GpuPool], serving: ServingConfig) -> list[str]:
    """Each (index, model)'s placement problems, prefixed with the model's key path."""
    return [f"llmops:models[{i}] ({model.name}){problem}"
            for i, model in models
            for problem in model_placement_problems(model, pools, serving)
            + capacity_problems(model, pools)]


def cross_section_problems(data: Mapping[str, Any]) -> list[str]:
    """The cross-section checks for a config that has field errors elsewhere.

    Pydantic skips a model's after-validators once any field fails, which would make users
    fix config in rounds (an `azCount` typo hides that a model does not fit its GPU). So the
    sections the checks need are validated on their own: the checks run when the pools and
    serving sections are valid, for every model that is valid by itself.
    """
    try:
        pools = [GpuPool.model_validate(p) for p in data.get("llmops:gpuPools") or []]
        serving = ServingConfig.model_validate(data.get("llmops:serving", {}))
    except (ValidationError, TypeError):
        return []
    if not pools:
        return []
    models = []
    for i, raw in enumerate(data.get("llmops:models") or []):
        try:
            models.append((i, ModelConfig.model_validate(raw)))
        except (ValidationError, TypeError):
            continue
    return placement_problems(models, pools, serving)
