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


#: What a log shipper does in a group that already exists: add its streams and write them
#: (DescribeLogStreams: to find a stream's sequence state). No CreateLogGroup, no retention or
#: key changes: the platform owns the groups (components/container_logs.py).
LOG_WRITER_ACTIONS = ("logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents")


def log_group_arn(region: str, account_id: str, group: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{group}"


def log_writer_policy(region: str, account_id: str, log_groups: Sequence[str]) -> str:
    """Fluent Bit: write streams into the named groups (group ARN, and `:*` for their
    streams), nothing else."""
    groups = [log_group_arn(region, account_id, g) for g in log_groups]
    return document([
        {"Sid": "WriteOwnLogGroups", "Effect": "Allow", "Action": list(LOG_WRITER_ACTIONS),
         "Resource": [*groups, *(f"{g}:*" for g in groups)]},
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


#: The upstream policy this follows: kubernetes-sigs/aws-load-balancer-controller, tag v2.13.0
#: (commit 73980cf11d1c79c310f4f14a089554f58b165d7d), docs/install/iam_policy.json; chart
#: 1.13.0 runs that version. Statement for statement the same actions and the same
#: conditions on the `elbv2.k8s.aws/cluster` tag, with '*' resources narrowed to this
#: account and region. Left out, for features this platform does not use: Shield Advanced
#: protection (shield:CreateProtection/DeleteProtection), WAF Classic on ALBs
#: (elasticloadbalancing:SetWebAcl) and IPAM pools (elasticloadbalancing:ModifyIpPools).
#: Update both together when the chart pin moves.
LBC_UPSTREAM = "aws-load-balancer-controller v2.13.0 docs/install/iam_policy.json"
LBC_DESCRIBE = (
    "ec2:DescribeAccountAttributes", "ec2:DescribeAddresses", "ec2:DescribeAvailabilityZones",
    "ec2:DescribeInternetGateways", "ec2:DescribeVpcs", "ec2:DescribeVpcPeeringConnections",
    "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:DescribeInstances",
    "ec2:DescribeNetworkInterfaces", "ec2:DescribeTags",
    "ec2:DescribeCoipPools", "ec2:DescribeIpamPools",
    "ec2:DescribeRouteTables", "elasticloadbalancing:DescribeLoadBalancers",
    "elasticloadbalancing:DescribeLoadBalancerAttributes", "elasticloadbalancing:DescribeListeners",
    "elasticloadbalancing:DescribeListenerCertificates", "elasticloadbalancing:DescribeSSLPolicies",
    "elasticloadbalancing:DescribeRules", "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
    "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeTrustStores",
    "elasticloadbalancing:DescribeListenerAttributes", "elasticloadbalancing:DescribeCapacityReservation")
LBC_INTEGRATIONS = (
    "cognito-idp:DescribeUserPoolClient", "acm:DescribeCertificate",
    "iam:GetServerCertificate", "waf-regional:GetWebACL",
    "waf-regional:GetWebACLForResource", "waf-regional:AssociateWebACL",
    "waf-regional:DisassociateWebACL", "wafv2:GetWebACL", "wafv2:GetWebACLForResource",
    "wafv2:AssociateWebACL", "wafv2:DisassociateWebACL", "shield:DescribeProtection")
LBC_MODIFY_OWNED = (
    "elasticloadbalancing:ModifyLoadBalancerAttributes", "elasticloadbalancing:SetIpAddressType",
    "elasticloadbalancing:SetSecurityGroups", "elasticloadbalancing:SetSubnets",
    "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:ModifyTargetGroup",
    "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DeleteTargetGroup",
    "elasticloadbalancing:ModifyListenerAttributes", "elasticloadbalancing:ModifyCapacityReservation")
LBC_LISTENERS = (
    "elasticloadbalancing:ModifyListener",
    "elasticloadbalancing:AddListenerCertificates", "elasticloadbalancing:RemoveListenerCertificates",
    "elasticloadbalancing:ModifyRule", "elasticloadbalancing:SetRulePriorities")


def load_balancer_controller_policy(cluster_name: str, region: str, account_id: str) -> str:
    """What the AWS Load Balancer Controller needs (upstream's policy, see LBC_UPSTREAM),
    in this account and region. Creating balancers, target groups and security groups requires
    this cluster's tag; deleting or modifying them requires it on the resource. Listeners,
    rules and ingress rules on the cluster's own security groups are not tag-conditioned,
    as upstream: the controller adds ingress to the cluster security group for targets."""
    elb = f"arn:aws:elasticloadbalancing:{region}:{account_id}"
    security_groups = f"arn:aws:ec2:{region}:{account_id}:security-group/*"
    balancers = [f"{elb}:targetgroup/*/*", f"{elb}:loadbalancer/net/*/*", f"{elb}:loadbalancer/app/*/*"]
    listeners = [f"{elb}:listener/net/*/*/*", f"{elb}:listener/app/*/*/*",
                 f"{elb}:listener-rule/net/*/*/*", f"{elb}:listener-rule/app/*/*/*"]
    elb_any = [f"{elb}:loadbalancer/*", f"{elb}:targetgroup/*", f"{elb}:listener/*",
               f"{elb}:listener-rule/*"]
    requested = {"aws:RequestTag/elbv2.k8s.aws/cluster": cluster_name}
    owned = {"StringEquals": {"aws:ResourceTag/elbv2.k8s.aws/cluster": cluster_name}}
    return document([
        {"Sid": "ServiceLinkedRole", "Effect": "Allow", "Action": "iam:CreateServiceLinkedRole",
         "Resource": f"arn:aws:iam::{account_id}:role/aws-service-role/"
                     "elasticloadbalancing.amazonaws.com/*",
         "Condition": {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}},
        {"Sid": "Describe", "Effect": "Allow", "Resource": "*",
         "Action": [*LBC_DESCRIBE, "acm:ListCertificates", "iam:ListServerCertificates",
                    "shield:GetSubscriptionState"]},
        {"Sid": "ReadPoolsAndVpcGroups", "Effect": "Allow",
         "Action": ["ec2:GetCoipPoolUsage", "ec2:GetSecurityGroupsForVpc"],
         "Resource": [f"arn:aws:ec2:{region}:{account_id}:coip-pool/*",
                      f"arn:aws:ec2:{region}:{account_id}:vpc/*"]},
        {"Sid": "Integrations", "Effect": "Allow", "Action": list(LBC_INTEGRATIONS), "Resource": [
            f"arn:aws:acm:{region}:{account_id}:certificate/*",
            f"arn:aws:cognito-idp:{region}:{account_id}:userpool/*",
            f"arn:aws:iam::{account_id}:server-certificate/*",
            f"arn:aws:waf-regional:{region}:{account_id}:*", f"arn:aws:wafv2:{region}:{account_id}:*",
            f"arn:aws:shield::{account_id}:*", *elb_any]},
        {"Sid": "SecurityGroupIngress", "Effect": "Allow", "Resource": security_groups,
         "Action": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"]},
        {"Sid": "CreateSecurityGroup", "Effect": "Allow", "Action": "ec2:CreateSecurityGroup",
         "Resource": [security_groups, f"arn:aws:ec2:{region}:{account_id}:vpc/*"]},
        {"Sid": "TagNewSecurityGroups", "Effect": "Allow", "Action": "ec2:CreateTags",
         "Resource": security_groups, "Condition": {
             "StringEquals": {"ec2:CreateAction": "CreateSecurityGroup", **requested}}},
        {"Sid": "RetagOwnedSecurityGroups", "Effect": "Allow",
         "Action": ["ec2:CreateTags", "ec2:DeleteTags"], "Resource": security_groups,
         "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true"}, **owned}},
        {"Sid": "ManageOwnedSecurityGroups", "Effect": "Allow", "Resource": security_groups,
         "Condition": owned, "Action": [
             "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
             "ec2:DeleteSecurityGroup"]},
        {"Sid": "CreateTaggedBalancers", "Effect": "Allow", "Resource": elb_any,
         "Action": ["elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:CreateTargetGroup"],
         "Condition": {"StringEquals": requested}},
        {"Sid": "ListenersAndRules", "Effect": "Allow", "Resource": elb_any, "Action": [
            "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener",
            "elasticloadbalancing:CreateRule", "elasticloadbalancing:DeleteRule"]},
        {"Sid": "RetagOwnedBalancers", "Effect": "Allow", "Resource": balancers,
         "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"],
         "Condition": {"Null": {"aws:RequestTag/elbv2.k8s.aws/cluster": "true"}, **owned}},
        {"Sid": "TagListenersAndRules", "Effect": "Allow", "Resource": listeners,
         "Action": ["elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags"]},
        {"Sid": "ManageOwnedBalancers", "Effect": "Allow", "Resource": elb_any, "Condition": owned,
         "Action": list(LBC_MODIFY_OWNED)},
        {"Sid": "TagOnCreate", "Effect": "Allow", "Action": "elasticloadbalancing:AddTags",
         "Resource": balancers, "Condition": {"StringEquals": {
             "elasticloadbalancing:CreateAction": ["CreateTargetGroup", "CreateLoadBalancer"],
             **requested}}},
        {"Sid": "Targets", "Effect": "Allow", "Resource": f"{elb}:targetgroup/*/*",
         "Action": ["elasticloadbalancing:RegisterTargets", "elasticloadbalancing:DeregisterTargets"]},
        {"Sid": "Listeners", "Effect": "Allow", "Resource": elb_any, "Action": list(LBC_LISTENERS)},
    ])


#: Record types external-dns writes for an Ingress behind an ALB: the balancer's hostname is a
#: CNAME target it turns into an A alias plus its AAAA counterpart (kubernetes-sigs/external-dns
#: v0.21.0 provider/aws/aws.go AdjustEndpoints), and TXT ownership records
#: (registry/txt/registry.go).
EXTERNAL_DNS_RECORD_TYPES = ("A", "AAAA", "TXT")


def external_dns_record_names(host: str) -> list[str]:
    """The names external-dns writes for `host`: the host, and the TXT registry's ownership
    record per record type, `<type>-<first label>.<rest>` (registry/mapper/mapper.go
    ToTXTName at v0.21.0, no txtPrefix/txtSuffix): a, aaaa, and cname for the endpoint's type
    before the alias adjustment (a TXT record only: CNAME itself is not an allowed type)."""
    first, _, rest = host.lower().partition(".")
    return [host.lower(), *(f"{t}-{first}.{rest}" for t in ("a", "aaaa", "cname"))]


def external_dns_policy(hosted_zone_id: str, host: str) -> str:
    """external-dns (AWS provider, v0.21.0): it lists the zones (no resource-level permission)
    and reads and changes record sets in the one zone, and only the gateway's names and the
    types above (Route53's ChangeResourceRecordSets condition keys, external-dns
    docs/tutorials/aws.md; names normalized lowercase without the trailing dot, Route 53
    Developer Guide "Using IAM policy conditions for fine-grained access control")."""
    zone = f"arn:aws:route53:::hostedzone/{hosted_zone_id}"
    return document([
        {"Sid": "FindZones", "Effect": "Allow", "Action": "route53:ListHostedZones", "Resource": "*"},
        {"Sid": "ReadZoneRecords", "Effect": "Allow", "Action": "route53:ListResourceRecordSets",
         "Resource": zone},
        {"Sid": "WriteGatewayRecords", "Effect": "Allow", "Action": "route53:ChangeResourceRecordSets",
         "Resource": zone, "Condition": {"ForAllValues:StringEquals": {
             "route53:ChangeResourceRecordSetsNormalizedRecordNames": external_dns_record_names(host),
             "route53:ChangeResourceRecordSetsRecordTypes": list(EXTERNAL_DNS_RECORD_TYPES)}}},
    ])
