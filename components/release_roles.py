"""The role release.yml's `promote` job assumes (`vars.AWS_RELEASE_ROLE` of each GitHub
environment): it moves a model's stage pointer in the environment's registry
(`llmops canary promote --bucket ... --write`: read the pointer and the manifest, write the
pointer with a compare-and-swap and an audit record; serving/registry/core.py `promote`), and
nothing else: no deletes, no other keys, no infrastructure.

The bootstrap runs before any platform stack, so the bucket's name is not known here: the
platform's `ModelStorage("storage")` names it `storage-models-<random suffix>` (Pulumi
auto-names a resource from its logical name and a random suffix; pulumi.com docs/iac/
concepts/resources/names), the same in every environment of an account. What keeps a
role to its own environment is the key: registry objects are encrypted (SSE-KMS) with the
environment's key, `alias/llmops-<env>-models` (components/storage.py), and this role may use
only a key with that alias (`kms:ResourceAliases`, AWS KMS developer guide
"alias-authorization"), only through S3. Without the key it can neither read another
environment's objects nor write into its bucket, whose default encryption is that key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.deploy_roles import BOOTSTRAP_PATH
from components.github_oidc import environment_subject, github_trust_policy
from components.iam import document
from vocabulary.config import PRODUCT

#: ModelStorage("storage")'s models bucket, as Pulumi auto-names it (components/storage.py)
MODELS_BUCKETS = "arn:aws:s3:::storage-models-*"
#: vocabulary/config/storage.py StorageConfig.registry_prefix's default
REGISTRY_PREFIX = "registry/"


def release_policy(account_id: str, environment: str, registry_prefix: str = REGISTRY_PREFIX) -> str:
    """Read and write the registry's keys (no delete), list them, and use only the
    environment's models key, through S3."""
    alias = f"alias/{PRODUCT}-{environment}-models"
    return document([
        {"Sid": "ReadWriteRegistry", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": f"{MODELS_BUCKETS}/{registry_prefix}*"},
        {"Sid": "ListRegistry", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": MODELS_BUCKETS,
         "Condition": {"StringLike": {"s3:prefix": [f"{registry_prefix}*"]}}},
        {"Sid": "OnlyThisEnvironmentsKey", "Effect": "Allow",
         "Action": ["kms:Decrypt", "kms:GenerateDataKey"], "Resource": f"arn:aws:kms:*:{account_id}:key/*",
         "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias]},
                       "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}},
        {"Sid": "WhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
    ])


@dataclass(frozen=True)
class ReleaseRolesArgs:
    repository: str                       # owner/name
    environments: Sequence[str]
    account_id: str
    github_provider_arn: pulumi.Input[str]


class ReleaseRoles(pulumi.ComponentResource):
    """`release_role_arns`: environment -> the ARN for that GitHub environment's AWS_RELEASE_ROLE.
    Trusted, like the deploy role, only by jobs in that environment (the promote job names
    it); under the bootstrap's path, so no deploy role may change it."""

    def __init__(self, name: str, args: ReleaseRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:ReleaseRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        provider = pulumi.Output.from_input(args.github_provider_arn)
        roles = {}
        for env in args.environments:
            role = aws.iam.Role(
                f"{name}-{env}", name=f"github-release-{env}", path=BOOTSTRAP_PATH,
                description=f"GitHub Actions: promotes models in {env}'s registry (release.yml, jobs "
                f"in environment {env} of {args.repository})", max_session_duration=3600,
                assume_role_policy=provider.apply(lambda arn, env=env: github_trust_policy(
                    arn, [environment_subject(args.repository, env)])), opts=child)
            aws.iam.RolePolicy(f"{name}-{env}", role=role.id,
                               policy=release_policy(args.account_id, env), opts=child)
            roles[env] = role
        self.release_role_arns = pulumi.Output.all(**{env: role.arn for env, role in roles.items()})
        self.register_outputs({"releaseRoleArns": self.release_role_arns})
