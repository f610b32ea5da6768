"""`llmops:images`: where model-server images come from.

TGI's image (~10 GB) lives on ghcr.io; pulled from there, every new GPU node fetches it
through the NAT gateway (paid per GB, slow across regions). An ECR pull-through cache keeps
a copy in the cluster's region behind the VPC endpoints; ghcr.io needs credentials for
that, kept in a Secrets Manager secret the account owner creates once.
"""

from __future__ import annotations

import re

from pydantic import Field, ValidationInfo, field_validator

from vocabulary.config.arns import check_placed, stack_place
from vocabulary.config.base import Section

#: ECR requires the credential secret's name to start with this prefix.
CREDENTIAL_ARN = re.compile(r"^arn:aws:secretsmanager:[a-z0-9-]+:\d{12}:secret:"
                            r"ecr-pullthroughcache/[\w/+=.@-]+$")


class ImagesConfig(Section):
    """The pull-through cache for ghcr.io (off without a credential)."""

    ghcr_credential_arn: str | None = Field(
        default=None, description="Secrets Manager secret (name ecr-pullthroughcache/...) "
        "holding a GitHub username and token that can read public packages")
    prepull: bool = Field(default=True, description="pull model-server images onto GPU nodes "
                          "as they join, before a model pod needs them")

    @field_validator("ghcr_credential_arn")
    @classmethod
    def _credential(cls, value: str | None) -> str | None:
        if value is not None and not CREDENTIAL_ARN.match(value):
            raise ValueError(f"{value!r} is not a Secrets Manager secret ARN whose name starts "
                             "with ecr-pullthroughcache/ (ECR refuses other names)")
        return value

    @field_validator("ghcr_credential_arn")
    @classmethod
    def _credential_beside_the_cache_rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        # ECR: the secret's account and region must be the rule's (vocabulary/config/arns.py)
        why = ("ECR reads a pull-through cache's credential only from the rule's own account "
               "and region: create the secret there")
        return check_placed(value, stack_place(info.context), region_why=why, account_why=why)
