"""The root of the schema: one field per config key, each a section from its own module.

To add a section: write `stacks/config/<area>.py` with a `Section` subclass, then add one
field here with the alias `llmops:<key>` the YAML uses. Nothing else changes.
"""

from __future__ import annotations

import re

from pydantic import ConfigDict, Field, field_validator

from stacks.config.base import Section
from stacks.config.cluster import ClusterConfig
from stacks.config.gpu import GpuPool, check_unique_pool_names
from stacks.config.network import NetworkConfig
from stacks.config.storage import StorageConfig

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
    region: str = Field(alias="aws:region", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    tags: TagsConfig = Field(alias="llmops:tags")
    network: NetworkConfig = Field(alias="llmops:network")
    cluster: ClusterConfig = Field(alias="llmops:cluster")
    gpu_pools: list[GpuPool] = Field(alias="llmops:gpuPools", min_length=1)
    storage: StorageConfig = Field(default=StorageConfig(), alias="llmops:storage")

    @field_validator("gpu_pools")
    @classmethod
    def _unique_pools(cls, pools: list[GpuPool]) -> list[GpuPool]:
        return check_unique_pool_names(pools)

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
