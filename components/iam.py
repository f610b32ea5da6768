"""IAM for workloads: one way to make IRSA roles, and least-privilege policy documents.

Policy documents are built by pure functions (testable, lintable); `IrsaRole` only wires
the role and its inline policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

Statement = dict[str, Any]


def document(statements: Sequence[Statement]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)}, sort_keys=True)


def irsa_trust_policy(oidc_provider_arn: str, issuer_url: str, namespace: str,
                      service_account: str) -> str:
    """Trust exactly one Kubernetes service account through the cluster's OIDC provider."""
    host = issuer_url.removeprefix("https://")
    return document([{
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{host}:aud": "sts.amazonaws.com",
        }},
    }])


def service_trust_policy(service: str, account_id: str | None = None) -> str:
    """Trust an AWS service principal (eks, ec2), optionally only on behalf of this account."""
    statement: Statement = {"Effect": "Allow", "Principal": {"Service": service},
                            "Action": "sts:AssumeRole"}
    if account_id:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return document([statement])


@dataclass(frozen=True)
class IrsaRoleArgs:
    """A role for one service account; the policy is a JSON document (may be an Output)."""

    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    service_account: str
    policy: pulumi.Input[str] | None = None
    managed_policy_arns: list[str] = field(default_factory=list)


class IrsaRole(pulumi.ComponentResource):
    """An IAM role assumable only by `namespace/service_account` via the cluster's OIDC."""

    arn: pulumi.Output[str]

    def __init__(self, name: str, args: IrsaRoleArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:iam:IrsaRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer_url).apply(
            lambda v: irsa_trust_policy(v[0], v[1], args.namespace, args.service_account))
        role = aws.iam.Role(
            name, assume_role_policy=trust,
            description=f"IRSA for {args.namespace}/{args.service_account}", opts=child)
        if args.policy is not None:
            aws.iam.RolePolicy(name, role=role.id, policy=args.policy, opts=child)
        for i, policy_arn in enumerate(args.managed_policy_arns):
            aws.iam.RolePolicyAttachment(f"{name}-{i}", role=role.name, policy_arn=policy_arn,
                                         opts=child)
        self.arn = role.arn
        self.name = role.name
        self.register_outputs({"arn": self.arn})


def cluster_autoscaler_policy(cluster_name: str, region: str, account_id: str) -> str:
    """Describe anything (AWS allows no scoping), mutate only this cluster's tagged groups."""
    return document([
        {"Sid": "Describe", "Effect": "Allow",
         "Action": ["autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities", "autoscaling:DescribeTags",
                    "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"],
         "Resource": "*"},
        {"Sid": "ScaleOwnGroups", "Effect": "Allow",
         "Action": ["autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup"],
         "Resource": f"arn:aws:autoscaling:{region}:{account_id}:autoScalingGroup:*",
         "Condition": {"StringEquals": {
             f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}},
        {"Sid": "ReadOwnNodegroups", "Effect": "Allow", "Action": ["eks:DescribeNodegroup"],
         "Resource": f"arn:aws:eks:{region}:{account_id}:nodegroup/{cluster_name}/*"},
    ])


def model_reader_policy(bucket_arn: str, prefix: str, key_arn: str, region: str) -> str:
    """TGI pods: read one model's prefix and decrypt it through S3, nothing else."""
    return document([
        {"Sid": "ReadModelObjects", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": f"{bucket_arn}/{prefix}*"},
        {"Sid": "ListModelPrefix", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": bucket_arn, "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        {"Sid": "DecryptThroughS3", "Effect": "Allow", "Action": ["kms:Decrypt"],
         "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}},
    ])


def registry_publisher_policy(bucket_arn: str, prefix: str, key_arn: str, region: str) -> str:
    """CI: register and promote models under the registry prefix; no deletes."""
    return document([
        {"Sid": "ReadWriteRegistry", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": f"{bucket_arn}/{prefix}*"},
        {"Sid": "ListRegistry", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": bucket_arn, "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
        {"Sid": "EncryptThroughS3", "Effect": "Allow",
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": key_arn,
         "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}},
        {"Sid": "WhoAmI", "Effect": "Allow", "Action": ["sts:GetCallerIdentity"], "Resource": "*"},
    ])


def load_balancer_controller_policy(cluster_name: str, region: str, account_id: str) -> str:
    """What the AWS Load Balancer Controller needs, scoped to this account and region.
    Reads without resource-level permissions use '*'; every mutation is limited to load
    balancers, target groups and security groups carrying this cluster's controller tag."""
    elb = f"arn:aws:elasticloadbalancing:{region}:{account_id}"
    elb_resources = [f"{elb}:loadbalancer/*", f"{elb}:targetgroup/*", f"{elb}:listener/*",
                     f"{elb}:listener-rule/*"]
    security_groups = f"arn:aws:ec2:{region}:{account_id}:security-group/*"
    tagged = {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": cluster_name}}
    tagging = {"StringEquals": {"aws:RequestTag/elbv2.k8s.aws/cluster": cluster_name}}
    return document([
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*", "Action": [
            "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
            "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeSubnets",
            "ec2:DescribeSecurityGroups", "ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces",
            "ec2:DescribeTags", "elasticloadbalancing:Describe*",
            "acm:ListCertificates", "shield:GetSubscriptionState"]},
        {"Sid": "SecurityGroupsOfVpcs", "Effect": "Allow", "Action": "ec2:GetSecurityGroupsForVpc",
         "Resource": f"arn:aws:ec2:{region}:{account_id}:vpc/*"},
        {"Sid": "ReadCertificatesAndAcls", "Effect": "Allow",
         "Action": ["acm:DescribeCertificate", "wafv2:GetWebACL", "wafv2:GetWebACLForResource"],
         "Resource": [f"arn:aws:acm:{region}:{account_id}:certificate/*",
                      f"arn:aws:wafv2:{region}:{account_id}:regional/*", *elb_resources]},
        {"Sid": "ServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": f"arn:aws:iam::{account_id}:role/aws-service-role/elasticloadbalancing.amazonaws.com/*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "CreateTaggedOnly", "Effect": "Allow", "Condition": tagging,
         "Action": ["ec2:CreateSecurityGroup", "ec2:CreateTags", "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:AddTags"],
         "Resource": [security_groups, f"arn:aws:ec2:{region}:{account_id}:vpc/*", *elb_resources]},
        {"Sid": "ManageOwnedSecurityGroups", "Effect": "Allow", "Condition": tagged,
         "Resource": security_groups, "Action": [
             "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
             "ec2:DeleteSecurityGroup", "ec2:CreateTags", "ec2:DeleteTags"]},
        {"Sid": "ManageOwnedBalancers", "Effect": "Allow", "Condition": tagged,
         "Resource": elb_resources, "Action": [
             "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags",
             "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
             "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
             "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
             "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
             "elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets",
             "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
             "elasticloadbalancing:ModifyListener", "elasticloadbalancing:CreateRule",
             "elasticloadbalancing:DeleteRule", "elasticloadbalancing:ModifyRule",
             "elasticloadbalancing:AddListenerCertificates",
             "elasticloadbalancing:RemoveListenerCertificates"]},
        {"Sid": "AssociateAcls", "Effect": "Allow",
         "Action": ["wafv2:AssociateWebACL", "wafv2:DisassociateWebACL"],
         "Resource": [f"arn:aws:wafv2:{region}:{account_id}:regional/*", f"{elb}:loadbalancer/*"]},
    ])
