"""The roles GitHub Actions assumes per environment: one that deploys (trusted only for jobs
in that GitHub environment, which its deployment branch rule keeps to main) and one that
previews pull requests (read-only).

The platform `up` creates a VPC, an EKS cluster, KMS keys, buckets, a CodeBuild project and
IAM roles for them, so its role is broad: AWS's PowerUserAccess (everything but IAM,
Organizations and Account) plus the IAM actions the platform stack's resources call, on this
account's roles, policies, instance profiles and OIDC providers. It may not touch the
bootstrap's own roles (path /llmops-bootstrap/) or the GitHub provider, so a job of one
environment cannot widen another's trust. Preview roles get ReadOnlyAccess without reads
of object, parameter or secret contents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.github_oidc import environment_subject, github_trust_policy, pull_request_subject
from components.iam import Statement, document

BOOTSTRAP_PATH = "/llmops-bootstrap/"
POWER_USER = "arn:aws:iam::aws:policy/PowerUserAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"

#: IAM actions behind the platform stack's aws:iam resources (Role, RolePolicy,
#: RolePolicyAttachment, Policy, OpenIdConnectProvider, InstanceProfile) and the service-linked
#: roles EKS and Auto Scaling create on first use (Service Authorization Reference, IAM). EC2 Spot's
#: is not created on first use by Karpenter (its controller lacks iam:CreateServiceLinkedRole):
#: the bootstrap creates it (components/spot_role.py).
PLATFORM_IAM_ACTIONS = (
    "iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole", "iam:UpdateRoleDescription",
    "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:UntagRole", "iam:ListRoleTags", "iam:PassRole",
    "iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy", "iam:ListRolePolicies",
    "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
    "iam:ListInstanceProfilesForRole", "iam:CreateServiceLinkedRole",
    "iam:CreatePolicy", "iam:DeletePolicy", "iam:GetPolicy", "iam:GetPolicyVersion",
    "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:ListPolicyVersions",
    "iam:TagPolicy", "iam:UntagPolicy", "iam:ListPolicyTags",
    "iam:CreateOpenIDConnectProvider", "iam:DeleteOpenIDConnectProvider",
    "iam:GetOpenIDConnectProvider", "iam:TagOpenIDConnectProvider",
    "iam:UntagOpenIDConnectProvider", "iam:UpdateOpenIDConnectProviderThumbprint",
    "iam:AddClientIDToOpenIDConnectProvider", "iam:RemoveClientIDFromOpenIDConnectProvider",
    "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile",
    "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
    "iam:TagInstanceProfile", "iam:UntagInstanceProfile",
)
#: Reads of contents (not configuration) a pull request's preview never needs.
CONTENT_READS = ("s3:GetObject", "s3:GetObjectVersion", "secretsmanager:GetSecretValue",
                 "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath")


def deploy_policy(account_id: str, github_provider_arn: str) -> str:
    """The deploy role's IAM statements (PowerUserAccess covers the rest)."""
    iam = f"arn:aws:iam::{account_id}"
    statements: list[Statement] = [
        {"Sid": "PlatformIam", "Effect": "Allow", "Action": list(PLATFORM_IAM_ACTIONS),
         "Resource": [f"{iam}:role/*", f"{iam}:policy/*", f"{iam}:instance-profile/*",
                      f"{iam}:oidc-provider/*"]},
        {"Sid": "KeepBootstrap", "Effect": "Deny", "Action": "iam:*",
         "Resource": [f"{iam}:role{BOOTSTRAP_PATH}*", github_provider_arn]},
    ]
    return document(statements)


def preview_policy(readable_objects: Sequence[str] = ()) -> str:
    """Deny content reads, except objects the preview must read (the state, when in S3)."""
    statement: Statement = {"Sid": "NoContentReads", "Effect": "Deny", "Action": list(CONTENT_READS)}
    if readable_objects:
        statement["NotResource"] = list(readable_objects)
    else:
        statement["Resource"] = "*"
    return document([statement])


@dataclass(frozen=True)
class DeployRolesArgs:
    repository: str                       # owner/name
    environments: Sequence[str]
    account_id: str
    github_provider_arn: pulumi.Input[str]
    #: objects preview roles may read despite the content-read deny (the S3 state)
    readable_objects: Sequence[pulumi.Input[str]] = ()


class DeployRoles(pulumi.ComponentResource):
    """`deploy_role_arns` / `preview_role_arns`: environment -> role ARN, for the repository's
    environment variables AWS_DEPLOY_ROLE and AWS_PREVIEW_ROLE_<ENV>."""

    def __init__(self, name: str, args: DeployRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:DeployRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        provider = pulumi.Output.from_input(args.github_provider_arn)
        self.deploy_roles: dict[str, aws.iam.Role] = {}
        self.preview_roles: dict[str, aws.iam.Role] = {}
        for env in args.environments:
            deploy = aws.iam.Role(
                f"{name}-deploy-{env}", name=f"github-deploy-{env}", path=BOOTSTRAP_PATH,
                description=f"GitHub Actions: deploys {env} (jobs in environment {env} of "
                f"{args.repository})", max_session_duration=4 * 3600,
                assume_role_policy=provider.apply(lambda arn, env=env: github_trust_policy(
                    arn, [environment_subject(args.repository, env)])), opts=child)
            aws.iam.RolePolicyAttachment(f"{name}-deploy-{env}", role=deploy.name,
                                         policy_arn=POWER_USER, opts=child)
            aws.iam.RolePolicy(f"{name}-deploy-{env}", role=deploy.id, policy=provider.apply(
                lambda arn: deploy_policy(args.account_id, arn)), opts=child)
            preview = aws.iam.Role(
                f"{name}-preview-{env}", name=f"github-preview-{env}", path=BOOTSTRAP_PATH,
                description=f"GitHub Actions: read-only preview of {env} for pull requests of "
                f"{args.repository}",
                assume_role_policy=provider.apply(lambda arn: github_trust_policy(
                    arn, [pull_request_subject(args.repository)])), opts=child)
            aws.iam.RolePolicyAttachment(f"{name}-preview-{env}", role=preview.name,
                                         policy_arn=READ_ONLY, opts=child)
            aws.iam.RolePolicy(f"{name}-preview-{env}", role=preview.id, policy=pulumi.Output.all(
                *args.readable_objects).apply(lambda objects: preview_policy(objects)), opts=child)
            self.deploy_roles[env], self.preview_roles[env] = deploy, preview
        self.deploy_role_arns = pulumi.Output.all(
            **{env: role.arn for env, role in self.deploy_roles.items()})
        self.preview_role_arns = pulumi.Output.all(
            **{env: role.arn for env, role in self.preview_roles.items()})
        self.register_outputs({"deployRoleArns": self.deploy_role_arns,
                               "previewRoleArns": self.preview_role_arns})
