"""The bootstrap program: GitHub's OIDC provider, the EC2 Spot service-linked role, the deploy,
preview and release roles of every environment, and (stateBackend: s3) the state bucket and the secrets
key. Its outputs are what the repository's settings need (docs/deploy.md, "1. Bootstrap")."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.deploy_roles import DeployRoles, DeployRolesArgs
from components.github_oidc import GitHubOidcProvider
from components.release_roles import ReleaseRoles, ReleaseRolesArgs
from components.spot_role import SpotServiceLinkedRole
from components.state_backend import StateBackend
from components.tagging import register_default_tags
from stacks.bootstrap.config import BootstrapConfig, load_from_runtime
from vocabulary.config import PRODUCT


def build_bootstrap(cfg: BootstrapConfig) -> dict[str, pulumi.Input]:
    register_default_tags(cfg.resource_tags())
    identity = aws.get_caller_identity()
    provider = GitHubOidcProvider("github", existing_arn=cfg.github_oidc_provider_arn)
    spot = SpotServiceLinkedRole("spot", existing=cfg.spot_service_linked_role_exists)
    state = StateBackend("state", name_prefix=PRODUCT) if cfg.state_backend == "s3" else None
    roles = DeployRoles("github", DeployRolesArgs(
        repository=cfg.github_repository, environments=cfg.environments,
        account_id=identity.account_id, github_provider_arn=provider.arn,
        readable_objects=[state.bucket_arn.apply(lambda arn: f"{arn}/*")] if state else ()))
    release = ReleaseRoles("release", ReleaseRolesArgs(
        repository=cfg.github_repository, environments=cfg.environments,
        account_id=identity.account_id, github_provider_arn=provider.arn))
    outputs: dict[str, pulumi.Input] = {
        "accountId": identity.account_id, "githubOidcProviderArn": provider.arn,
        "deployRoleArns": roles.deploy_role_arns, "previewRoleArns": roles.preview_role_arns,
        "releaseRoleArns": release.release_role_arns, "spotServiceLinkedRole": spot.name}
    if state is not None:
        for env in cfg.environments:
            state.grant(f"deploy-{env}", roles.deploy_roles[env].name, write=True)
            state.grant(f"preview-{env}", roles.preview_roles[env].name, write=False)
        outputs["stateBackendUrl"] = state.bucket_name.apply(lambda b: f"s3://{b}")
        outputs["secretsProvider"] = state.secrets_provider
    for key, value in outputs.items():
        pulumi.export(key, value)
    return outputs


def main() -> None:
    build_bootstrap(load_from_runtime())
