"""The bootstrap stack's configuration (`llmops-bootstrap:` keys), parsed and validated at once."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from vocabulary.config.base import ConfigError, Section, describe_errors, repeated
from vocabulary.config.ci import GithubRepository
from vocabulary.config.platform import TagsConfig
from vocabulary.config.regions import KnownRegion

BOOTSTRAP_PROJECT = "llmops-bootstrap"
#: the stack name `llmops plan --stack bootstrap` plans (stacks/bootstrap/Pulumi.bootstrap.yaml)
BOOTSTRAP_STACK = "bootstrap"
ENVIRONMENT = re.compile(r"^[a-z][a-z0-9-]{1,20}$")
OIDC_PROVIDER_ARN = re.compile(r"^arn:aws:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com$")


class BootstrapConfig(Section):
    """What one account needs before its environments can deploy from GitHub Actions."""

    model_config = ConfigDict(alias_generator=None)

    stack: str = Field(json_schema_extra={"derived": True})
    region: KnownRegion = Field(alias="aws:region")
    github_repository: GithubRepository = Field(alias=f"{BOOTSTRAP_PROJECT}:githubRepository",
                                   description="owner/name of the repository whose workflows deploy")
    environments: list[str] = Field(alias=f"{BOOTSTRAP_PROJECT}:environments", min_length=1,
                                    description="GitHub environments (= stack names) deployed here")
    tags: TagsConfig = Field(alias=f"{BOOTSTRAP_PROJECT}:tags")
    state_backend: Literal["pulumi-cloud", "s3"] = Field(
        default="pulumi-cloud", alias=f"{BOOTSTRAP_PROJECT}:stateBackend",
        description="s3: create a state bucket and a KMS key for the stacks' secrets")
    github_oidc_provider_arn: str | None = Field(
        default=None, alias=f"{BOOTSTRAP_PROJECT}:githubOidcProviderArn",
        description="the account's existing GitHub provider (one per issuer URL), else one is made")
    spot_service_linked_role_exists: bool = Field(
        default=False, alias=f"{BOOTSTRAP_PROJECT}:spotServiceLinkedRoleExists",
        description="true when AWSServiceRoleForEC2Spot already exists in the account "
                    "(CreateServiceLinkedRole fails on an existing role), else it is created")

    @field_validator("environments")
    @classmethod
    def _environments(cls, values: list[str]) -> list[str]:
        bad = [v for v in values if not ENVIRONMENT.match(v)]
        if bad:
            raise ValueError(f"{bad} are not environment names (2-21 lowercase letters, digits "
                             "or dashes, starting with a letter)")
        dupes = repeated(values)
        if dupes:
            raise ValueError(f"environments must be unique; repeated: {', '.join(dupes)}")
        return values

    @field_validator("github_oidc_provider_arn")
    @classmethod
    def _provider(cls, value: str | None) -> str | None:
        if value is not None and not OIDC_PROVIDER_ARN.match(value):
            raise ValueError(f"{value!r} is not GitHub's OIDC provider ARN "
                             "(arn:aws:iam::<account>:oidc-provider/token.actions.githubusercontent.com)")
        return value

    def resource_tags(self) -> dict[str, str]:
        return {"Environment": "account", "Project": BOOTSTRAP_PROJECT, "Owner": self.tags.owner,
                "CostCentre": self.tags.cost_centre, "ManagedBy": "pulumi", **self.tags.extra}


def parse_bootstrap_config(values: Mapping[str, Any], *, stack: str, source: str) -> BootstrapConfig:
    """Validate the bootstrap stack's config; `ConfigError` lists every problem."""
    data: dict[str, Any] = {"stack": stack}
    data.update({k: v for k, v in values.items()
                 if k.startswith(f"{BOOTSTRAP_PROJECT}:") or k == "aws:region"})
    try:
        return BootstrapConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, describe_errors(BootstrapConfig, exc)) from None


def load_from_runtime() -> BootstrapConfig:
    """The stack's config as the Pulumi CLI (or `llmops plan`) hands it to the program."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    raw = {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
    values = {k: json.loads(v) if isinstance(v, str) and (v[:1] in "[{" or v in ("true", "false")) else v
              for k, v in raw.items()}
    stack = pulumi.get_stack()
    return parse_bootstrap_config(values, stack=stack, source=f"stacks/bootstrap/Pulumi.{stack}.yaml")
