"""GitHub Actions' OIDC identity provider in an account, and trust policies that accept one
repository's jobs by their exact subject claim.

Facts this relies on:
- Issuer https://token.actions.githubusercontent.com; aws-actions/configure-aws-credentials
  asks for the audience `sts.amazonaws.com` (its action.yml default).
- No thumbprint: for GitHub, IAM validates the issuer against its own library of trusted
  root CAs and ignores configured thumbprints (pulumi_aws 7.x
  `iam.OpenIdConnectProvider.thumbprint_lists` docs), so none is pinned here.
- Subject claims (docs.github.com, "OpenID Connect reference"): a job that names an
  environment gets `repo:<owner>/<repo>:environment:<name>` (whatever its branch: the
  environment's deployment branch rule keeps it to main); a pull_request job without one
  gets `repo:<owner>/<repo>:pull_request`; a branch push `repo:<owner>/<repo>:ref:refs/heads/<b>`.
- An account has one provider per issuer URL: with one already there, pass its ARN.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from components.iam import document

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITHUB_AUDIENCE = "sts.amazonaws.com"
_HOST = GITHUB_ISSUER.removeprefix("https://")


def environment_subject(repository: str, environment: str) -> str:
    """The `sub` of a job in `repository` that names `environment`."""
    return f"repo:{repository}:environment:{environment}"


def pull_request_subject(repository: str) -> str:
    """The `sub` of a pull_request job (no environment) in `repository`."""
    return f"repo:{repository}:pull_request"


def github_trust_policy(provider_arn: str, subjects: Sequence[str]) -> str:
    """Trust GitHub jobs whose audience is STS and whose subject is exactly one of `subjects`
    (StringEquals: no wildcard, so no other repository, branch or environment matches)."""
    if not subjects:
        raise ValueError("a GitHub trust policy needs at least one subject")
    return document([{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {f"{_HOST}:aud": GITHUB_AUDIENCE,
                                       f"{_HOST}:sub": sorted(subjects)}},
    }])


class GitHubOidcProvider(pulumi.ComponentResource):
    """The account's GitHub Actions identity provider (created, or an existing one adopted)."""

    arn: pulumi.Output[str]

    def __init__(self, name: str, existing_arn: str | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:GitHubOidcProvider", name, None, opts)
        if existing_arn is not None:
            self.arn = pulumi.Output.from_input(existing_arn)
        else:
            provider = aws.iam.OpenIdConnectProvider(
                name, url=GITHUB_ISSUER, client_id_lists=[GITHUB_AUDIENCE],
                opts=pulumi.ResourceOptions(parent=self))
            self.arn = provider.arn
        self.register_outputs({"arn": self.arn})
