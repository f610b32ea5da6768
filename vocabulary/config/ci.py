"""`llmops:ci`: the in-VPC runner that applies the workloads stack.

The workloads stack talks to the Kubernetes API, which only the VPC can reach (prod's
endpoint is private; dev/staging allow only office CIDRs). So the platform stack creates an
AWS CodeBuild project registered as a GitHub Actions runner inside the VPC; workflow jobs
with `runs-on: codebuild-<project>-${{ github.run_id }}-${{ github.run_attempt }}` run there.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from vocabulary.config.arns import check_placed, stack_place
from vocabulary.config.base import Section
from vocabulary.config.cluster import check_role_arns

GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")


def github_repository(value: str) -> str:
    """A field validator: owner/name as GitHub allows them."""
    if not GITHUB_REPOSITORY.match(value):
        raise ValueError(f"{value!r} is not a GitHub repository as owner/name")
    return value


GithubRepository = Annotated[str, AfterValidator(github_repository)]
CONNECTION_ARN = re.compile(r"^arn:aws:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:"
                            r"connection/[0-9a-f-]{36}$")


class RunnerConfig(Section):
    """The CodeBuild environment the workloads jobs run in."""

    compute_type: Literal["BUILD_GENERAL1_SMALL", "BUILD_GENERAL1_MEDIUM",
                          "BUILD_GENERAL1_LARGE"] = "BUILD_GENERAL1_MEDIUM"
    # Ubuntu 22.04 with pyenv's Python 3.11 as the global interpreter, the AWS CLI v2 and
    # Docker (aws/aws-codebuild-docker-images ubuntu/standard/7.0/Dockerfile, stage std_v7).
    # The workflows install with that Python: actions/setup-python ships builds for GitHub's
    # own Ubuntu images only (actions/setup-python issues 460, 750, 1214: no Amazon Linux).
    image: str = Field(default="aws/codebuild/standard:7.0",
                       pattern=r"^aws/codebuild/[a-z0-9._/-]+:\d+\.\d+$",
                       description="the CodeBuild image the workloads jobs run in; the "
                       "`ci-runner-image` deploy check knows which images run every step")
    build_timeout_minutes: int = Field(
        default=120, ge=5, le=480,
        description="a workloads `up` waits for TGI rollouts (node scale-up, image pull, "
        "weights, load); must exceed the longest model's await budget")


class CiConfig(Section):
    """Who deploys: the GitHub repository whose workflows run on the in-VPC runner."""

    github_repository: GithubRepository = Field(description="owner/name of the repository holding this code")
    github_connection_arn: str = Field(
        description="an AWS CodeConnections connection to GitHub (created once per account in "
        "the console: connections need a human to authorise the GitHub app)")
    deploy_role_arns: list[str] = Field(
        default=[], description="extra roles that apply the workloads stack from elsewhere "
        "(a VPN-connected host); each gets an EKS access entry with cluster-admin")
    runner: RunnerConfig = RunnerConfig()

    @field_validator("github_connection_arn")
    @classmethod
    def _connection(cls, value: str) -> str:
        if not CONNECTION_ARN.match(value):
            raise ValueError(f"{value!r} is not a CodeConnections ARN "
                             "(arn:aws:codeconnections:<region>:<account>:connection/<uuid>)")
        return value

    @field_validator("github_connection_arn")
    @classmethod
    def _connection_reachable(cls, value: str, info: ValidationInfo) -> str:
        # connections are global (any region); only codeconnections ARNs can be shared with
        # another account through RAM (vocabulary/config/arns.py)
        if not value.startswith("arn:aws:codestar-connections:"):
            return value
        return check_placed(value, stack_place(info.context), account_why=(
            "a codestar-connections connection cannot be shared with another account: create "
            "the connection in the stack's account"))

    @field_validator("deploy_role_arns")
    @classmethod
    def _roles(cls, values: list[str]) -> list[str]:
        return check_role_arns(values)
