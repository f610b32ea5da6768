"""Each policy rule at its edges: the input that just passes and the one that just fails,
with the message a user reads. Resources are plain `Resource`s with provider-shaped inputs,
run through the same evaluator `llmops plan` uses (fast enough for mutation testing)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.rules import COMPUTED, Resource, internet_wide
from policies.settings import PackConfig
from tests.policies.helpers import messages

SG = "aws:ec2/securityGroup:SecurityGroup"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
SG_INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
BUCKET = "aws:s3/bucket:Bucket"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
KMS = "aws:kms/key:Key"
VPC, FLOW_LOG = "aws:ec2/vpc:Vpc", "aws:ec2/flowLog:FlowLog"
ROLE, IAM_POLICY = "aws:iam/role:Role", "aws:iam/policy:Policy"
POD, DEPLOYMENT = "kubernetes:core/v1:Pod", "kubernetes:apps/v1:Deployment"
PDB, HELM = "kubernetes:policy/v1:PodDisruptionBudget", "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"


def res(type_token: str, name: str = "r", deps: tuple[str, ...] = (), **props: Any) -> Resource:
    return Resource(type=type_token, name=name, urn=f"urn:{type_token}::{name}", props=props,
                    dependencies=deps)


def says(policy: str, *resources: Resource, config: dict | None = None) -> list[str]:
    pack = PackConfig("tests", {policy: {"enforcementLevel": "mandatory", **(config or {})}})
    return messages(policy, resources, pack)


# -- what counts as "the internet" -------------------------------------------------------------

@pytest.mark.parametrize(("cidrs", "wide"), [
    (["0.0.0.0/0"], ["0.0.0.0/0"]),
    (["::/0"], ["::/0"]),
    (["0.0.0.0/1", "128.0.0.0/1"], ["0.0.0.0/1", "128.0.0.0/1"]),   # the world, split
    (["::/1", "8000::/1"], ["::/1", "8000::/1"]),
    (["11.0.0.0/7"], ["11.0.0.0/7"]),
    (["11.0.0.0/8", "8.8.8.8/32"], ["11.0.0.0/8", "8.8.8.8/32"]),  # a /8 and one address more
])
def test_cidr_lists_opening_more_than_a_slash_8_of_the_internet_are_wide(cidrs, wide):
    assert internet_wide(cidrs) == wide


@pytest.mark.parametrize("cidrs", [
    ["11.0.0.0/8"],                                   # exactly a /8: the limit, allowed
    ["11.0.0.0/9", "11.128.0.0/9"],                   # a /8 in halves
    ["11.0.0.0/8", "11.0.0.0/8"],                     # repeated, not doubled
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.0/24"],  # private ranges do not count
    ["fc00::/7"],
    ["2001:db8::/32", COMPUTED, "not-a-cidr", None],
])
def test_office_vpn_and_private_ranges_are_not_the_internet(cidrs):
    assert internet_wide(cidrs) == []


# -- security-group-no-public-admin-ports ---------------------------------------------------------

def sg(protocol: Any, from_port: Any, to_port: Any, cidrs=("0.0.0.0/0",), v6=()) -> Resource:
    return res(SG, "sg", ingress=[{"protocol": protocol, "fromPort": from_port, "toPort": to_port,
                                   "cidrBlocks": list(cidrs), "ipv6CidrBlocks": list(v6)}])


@pytest.mark.parametrize(("group", "expected"), [
    (sg("tcp", 0, 65535), "ingress tcp 0-65535 from 0.0.0.0/0 opens admin port(s) 22, 3389, 6443, "
                          "10250 to the internet"),
    (sg("tcp", 22, 22), "ingress tcp 22 from 0.0.0.0/0 opens admin port(s) 22 to the internet"),
    (sg("tcp", 21, 22), "ingress tcp 21-22 from 0.0.0.0/0 opens admin port(s) 22 to the internet"),
    (sg("tcp", 22, 23), "ingress tcp 22-23 from 0.0.0.0/0 opens admin port(s) 22 to the internet"),
    (sg("6", 10250, 10250), "ingress 6 10250 from 0.0.0.0/0 opens admin port(s) 10250 to the internet"),
    (sg("TCP", 6443, 6443), "ingress TCP 6443 from 0.0.0.0/0 opens admin port(s) 6443 to the internet"),
    (sg("-1", 0, 0), "ingress of all traffic from 0.0.0.0/0 opens admin port(s) 22, 3389, 6443, 10250 "
                     "to the internet"),
    (sg("all", None, None), "ingress of all traffic from 0.0.0.0/0 opens admin port(s) 22, 3389, "
                            "6443, 10250 to the internet"),
    (sg("tcp", 3389, 3389, cidrs=(), v6=("::/0",)), "ingress tcp 3389 from ::/0 opens admin port(s) "
                                                    "3389 to the internet"),
    (sg("tcp", 22, 22, cidrs=("0.0.0.0/1", "128.0.0.0/1")),
     "ingress tcp 22 from 0.0.0.0/1, 128.0.0.0/1 opens admin port(s) 22 to the internet"),
    (res(SG_RULE, type="ingress", protocol="tcp", fromPort="0", toPort="65535", cidrBlocks=["0.0.0.0/0"]),
     "ingress tcp 0-65535 from 0.0.0.0/0 opens admin port(s) 22, 3389, 6443, 10250 to the internet"),
    (res(SG_INGRESS, ipProtocol="tcp", fromPort=20, toPort=30, cidrIpv6="::/0"),
     "ingress tcp 20-30 from ::/0 opens admin port(s) 22 to the internet"),
], ids=["all-tcp-ports", "ssh", "range-ending-at-22", "range-starting-at-22", "protocol-number",
        "upper-case", "all-protocols", "all-protocols-named", "rdp-ipv6", "world-split", "sg-rule",
        "ingress-rule-ipv6"])
def test_admin_ports_open_to_the_internet_are_refused(group, expected):
    assert says("security-group-no-public-admin-ports", group) == [expected]


@pytest.mark.parametrize("group", [
    sg("tcp", 23, 3388),                      # between the admin ports
    sg("tcp", 443, 443),
    sg("tcp", 3390, 6442),
    sg("tcp", 6444, 10249),
    sg("tcp", 10251, 65535),
    sg("udp", 22, 22),                        # not TCP
    sg("tcp", 22, 22, cidrs=("10.0.0.0/8",)),  # the VPC, not the internet
    sg("tcp", 22, 22, cidrs=("11.0.0.0/8",)),  # a /8: the largest allowed range
    sg("tcp", COMPUTED, 22),                  # unknown port: judged at `pulumi up`
    res(SG_RULE, type="egress", protocol="-1", fromPort=0, toPort=0, cidrBlocks=["0.0.0.0/0"]),
], ids=["23-3388", "https", "3390-6442", "6444-10249", "10251-65535", "udp", "vpc", "slash-8",
        "computed", "egress"])
def test_ingress_that_avoids_admin_ports_or_the_internet_passes(group):
    assert says("security-group-no-public-admin-ports", group) == []


def test_admin_ports_are_a_setting():
    assert says("security-group-no-public-admin-ports", sg("tcp", 8080, 8080),
                config={"adminPorts": [8080]}) == [
        "ingress tcp 8080 from 0.0.0.0/0 opens admin port(s) 8080 to the internet"]


def test_a_vpc_needs_its_own_flow_log():
    vpc = res(VPC, "main")
    other = res(VPC, "other")
    log = res(FLOW_LOG, "main-flow-log", deps=(vpc.urn,), vpcId=COMPUTED)
    assert says("vpc-flow-logs-enabled", vpc, other, log) == ["VPC 'other' has no flow log"]


# -- eks-endpoint-not-public -------------------------------------------------------------------

def cluster(**vpc: Any) -> Resource:
    return res(CLUSTER, "eks", vpcConfig=vpc)


@pytest.mark.parametrize(("eks", "expected"), [
    (cluster(endpointPublicAccess=True, publicAccessCidrs=["::/0"]),
     "the public API endpoint is open to ::/0"),
    (cluster(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/1", "128.0.0.0/1"]),
     "the public API endpoint is open to 0.0.0.0/1, 128.0.0.0/1"),
    (cluster(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24", "0.0.0.0/0"]),
     "the public API endpoint is open to 0.0.0.0/0"),
    (cluster(endpointPublicAccess=True, publicAccessCidrs=[]),
     "the API endpoint is public and publicAccessCidrs is unset, which AWS opens to 0.0.0.0/0"),
    (cluster(publicAccessCidrs=None),
     "the API endpoint is public and publicAccessCidrs is unset, which AWS opens to 0.0.0.0/0"),
], ids=["ipv6-world", "world-split", "world-among-others", "empty", "default-public"])
def test_a_public_endpoint_open_to_the_internet_is_refused(eks, expected):
    assert says("eks-endpoint-not-public", eks) == [expected]


@pytest.mark.parametrize("eks", [
    cluster(endpointPublicAccess=False),
    cluster(endpointPublicAccess=True, publicAccessCidrs=["203.0.113.0/24"]),
    cluster(endpointPublicAccess=True, publicAccessCidrs=["11.0.0.0/8"]),
    cluster(endpointPublicAccess=True, publicAccessCidrs=COMPUTED),
    cluster(endpointPublicAccess=COMPUTED),
    res(CLUSTER, "no-vpc-config"),
], ids=["private", "office", "slash-8", "computed-cidrs", "computed-flag", "no-vpc-config"])
def test_a_private_or_listed_endpoint_passes(eks):
    assert says("eks-endpoint-not-public", eks) == []


def test_control_plane_logging_names_each_missing_log_type():
    assert says("eks-control-plane-logging",
                res(CLUSTER, enabledClusterLogTypes=["api", "scheduler"])) == [
        "control-plane log types not enabled: audit, authenticator"]
    assert says("eks-control-plane-logging",
                res(CLUSTER, enabledClusterLogTypes=["api", "audit", "authenticator"])) == []
    assert says("eks-control-plane-logging", res(CLUSTER, enabledClusterLogTypes=COMPUTED)) == []


@pytest.mark.parametrize(("config", "ok"), [
    ({"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-west-2:1:key/k"}}, True),
    ([{"resources": ["secrets"], "provider": {"keyArn": "arn:aws:kms:us-west-2:1:key/k"}}], True),
    (COMPUTED, True),
    ({"resources": ["secrets"], "provider": {}}, False),
    ({"resources": ["configmaps"], "provider": {"keyArn": "arn:aws:kms:us-west-2:1:key/k"}}, False),
    (None, False),
], ids=["object", "list", "computed", "no-key", "not-secrets", "absent"])
def test_secrets_encryption_needs_a_key_for_secrets(config, ok):
    expected = [] if ok else [
        "Kubernetes secrets are not envelope-encrypted with a KMS key (encryptionConfig)"]
    assert says("eks-secrets-encryption", res(CLUSTER, encryptionConfig=config)) == expected


# -- launch templates --------------------------------------------------------------------------

@pytest.mark.parametrize(("options", "expected"), [
    ({"httpTokens": "required"}, []),
    ({"httpTokens": COMPUTED}, []),
    ({"httpTokens": "optional", "httpEndpoint": "disabled"}, []),
    ({"httpTokens": "optional", "httpEndpoint": "enabled"},
     ["instance metadata allows IMDSv1 (metadataOptions.httpTokens is optional, not 'required')"]),
    (None, ["instance metadata allows IMDSv1 (metadataOptions.httpTokens is unset, not 'required')"]),
], ids=["required", "computed", "metadata-off", "optional", "unset"])
def test_launch_templates_require_imdsv2(options, expected):
    assert says("launch-template-imdsv2", res(LAUNCH_TEMPLATE, metadataOptions=options)) == expected


@pytest.mark.parametrize(("mappings", "expected"), [
    ([{"deviceName": "/dev/xvda", "ebs": {"encrypted": "true"}}], []),
    ([{"deviceName": "/dev/xvda", "ebs": {"encrypted": True}}], []),
    ([{"deviceName": "/dev/xvda", "ebs": {"encrypted": COMPUTED}}], []),
    ([{"deviceName": "/dev/nvme1n1", "virtualName": "ephemeral0"}], []),
    ([{"deviceName": "/dev/xvda", "ebs": {"encrypted": "false"}}], ["EBS volume /dev/xvda is not encrypted"]),
    ([{"deviceName": "/dev/xvdb", "ebs": {}}], ["EBS volume /dev/xvdb is not encrypted"]),
    ([], ["no blockDeviceMappings: the root volume inherits the AMI's (possibly unencrypted) settings"]),
], ids=["string-true", "bool-true", "computed", "instance-store", "false", "unset", "none"])
def test_launch_template_volumes_are_declared_and_encrypted(mappings, expected):
    assert says("launch-template-encrypted-volumes",
                res(LAUNCH_TEMPLATE, blockDeviceMappings=mappings)) == expected


# -- S3 ------------------------------------------------------------------------------------------

BUCKET_ARN = "arn:aws:s3:::models"
TLS_DENY = {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


def bucket_with(*subresources: tuple[str, dict], name: str = "model-bucket") -> list[Resource]:
    bucket = res(BUCKET, name, bucket=name)
    subs = [res(t, f"{name}-{t.rsplit(':', 1)[1]}", deps=(bucket.urn,), bucket=COMPUTED, **props)
            for t, props in subresources]
    return [bucket, *subs]


def tls_messages(**statement_changes: Any) -> list[str]:
    statement = {k: v for k, v in {**TLS_DENY, **statement_changes}.items() if v is not None}
    document = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    return says("s3-bucket-tls-only", *bucket_with((POLICY, {"policy": document})))


NO_TLS = ["bucket 'model-bucket' has no policy denying requests without TLS"]


@pytest.mark.parametrize("changes", [
    {}, {"Action": "*"}, {"Action": ["s3:GetObject", "s3:*"]}, {"Principal": {"AWS": "*"}},
    {"Condition": {"Bool": {"aws:SecureTransport": False}}},
], ids=["canonical", "every-action", "action-list", "aws-star", "boolean-false"])
def test_a_deny_of_all_s3_for_everyone_without_tls_passes(changes):
    assert tls_messages(**changes) == []


@pytest.mark.parametrize("changes", [
    {"Condition": None},                                           # Deny s3:* always: not TLS-only
    {"Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    {"Condition": {"Bool": {"aws:MultiFactorAuthPresent": "false"}}},
    {"Principal": {"AWS": "arn:aws:iam::123456789012:role/x"}},   # only one caller must use TLS
    {"Action": "s3:GetObject"},                                   # writes may still go in clear
    {"Effect": "Allow"},
], ids=["no-condition", "secure-true", "other-condition", "one-principal", "one-action", "allow"])
def test_anything_short_of_that_deny_is_refused(changes):
    assert tls_messages(**changes) == NO_TLS


def test_a_tls_policy_built_from_unknown_outputs_is_judged_at_up():
    assert says("s3-bucket-tls-only", *bucket_with((POLICY, {"policy": COMPUTED}))) == []


FLAGS = {"blockPublicAcls": True, "blockPublicPolicy": True, "ignorePublicAcls": True,
         "restrictPublicBuckets": True}


@pytest.mark.parametrize("flag", sorted(FLAGS))
@pytest.mark.parametrize("value", [False, "false", None], ids=["false", "string-false", "unset"])
def test_each_public_access_block_flag_left_off_or_unset_is_named(flag, value):
    flags = {**FLAGS, flag: value}
    if value is None:
        del flags[flag]
    assert says("s3-bucket-public-access-blocked", *bucket_with((PAB, flags))) == [
        f"public access block 'model-bucket-BucketPublicAccessBlock' leaves {flag} off"]


@pytest.mark.parametrize("value", [True, "true", COMPUTED], ids=["true", "string-true", "computed"])
def test_a_public_access_block_with_every_flag_on_passes(value):
    assert says("s3-bucket-public-access-blocked",
                *bucket_with((PAB, {**FLAGS, "blockPublicPolicy": value}))) == []


def test_a_bucket_without_a_public_access_block_is_named():
    assert says("s3-bucket-public-access-blocked", *bucket_with()) == [
        "bucket 'model-bucket' has no BucketPublicAccessBlock"]


def sse(algorithm: Any) -> tuple[str, dict]:
    return (SSE, {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm}}]})


@pytest.mark.parametrize("algorithm", ["aws:kms", "aws:kms:dsse", COMPUTED])
def test_kms_encryption_passes(algorithm):
    assert says("s3-bucket-kms-encryption", *bucket_with(sse(algorithm))) == []


def test_s3_managed_keys_and_missing_rules_are_refused():
    name = "encryption configuration 'model-bucket-BucketServerSideEncryptionConfiguration'"
    assert says("s3-bucket-kms-encryption", *bucket_with(sse("AES256"))) == [
        f"{name} encrypts with AES256, not a KMS key (aws:kms)"]
    assert says("s3-bucket-kms-encryption", *bucket_with((SSE, {"rules": []}))) == [
        f"{name} has no server-side encryption rule"]
    assert says("s3-bucket-kms-encryption", *bucket_with()) == [
        "bucket 'model-bucket' has no BucketServerSideEncryptionConfiguration with a KMS key"]


def test_access_log_buckets_may_use_s3_managed_keys_but_must_encrypt():
    bucket = res(BUCKET, "access-logs", bucket="access-logs")

    def encryption(props: dict) -> Resource:  # named like the platform's: <bucket>-access-logs
        return res(SSE, "models-access-logs", deps=(bucket.urn,), bucket=COMPUTED, **props)

    assert says("s3-bucket-kms-encryption", bucket, encryption(sse("AES256")[1])) == []
    assert says("s3-bucket-kms-encryption", bucket, encryption({"rules": []})) == [
        "encryption configuration 'models-access-logs' has no server-side encryption rule"]


def test_inline_bucket_encryption_is_judged_too():
    inline = res(BUCKET, "model-bucket", serverSideEncryptionConfiguration={
        "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}})
    assert says("s3-bucket-kms-encryption", inline) == [
        "bucket 'model-bucket' encrypts with AES256, not a KMS key (aws:kms)"]


@pytest.mark.parametrize(("status", "expected"), [
    ("Enabled", []), (COMPUTED, []),
    ("Suspended", ["model bucket 'model-bucket' is not versioned (status Suspended)"]),
    (None, ["model bucket 'model-bucket' is not versioned (status None)"]),
])
def test_model_buckets_keep_versions(status, expected):
    resources = bucket_with((VERSIONING, {"versioningConfiguration": {"status": status}}))
    assert says("s3-bucket-versioning", *resources) == expected


def test_an_unversioned_bucket_is_named_and_other_buckets_are_free():
    assert says("s3-bucket-versioning", *bucket_with()) == [
        "model bucket 'model-bucket' is not versioned"]
    assert says("s3-bucket-versioning", *bucket_with(name="access-logs")) == []
    assert says("s3-bucket-versioning", res(BUCKET, "model-bucket", versioning={"enabled": True})) == []


@pytest.mark.parametrize(("props", "expected"), [
    ({"enableKeyRotation": True}, []),
    ({"enableKeyRotation": COMPUTED}, []),
    ({"enableKeyRotation": False}, ["KMS key does not rotate (enableKeyRotation is not true)"]),
    ({}, ["KMS key does not rotate (enableKeyRotation is not true)"]),
    ({"customerMasterKeySpec": "RSA_2048", "keyUsage": "SIGN_VERIFY"}, []),
    ({"keyUsage": "GENERATE_VERIFY_MAC", "customerMasterKeySpec": "HMAC_256"}, []),
], ids=["on", "computed", "off", "unset", "asymmetric", "hmac"])
def test_symmetric_keys_rotate(props, expected):
    assert says("kms-key-rotation", res(KMS, **props)) == expected


# -- IAM ----------------------------------------------------------------------------------------

def iam(*statements: dict) -> Resource:
    return res(IAM_POLICY, "p", policy=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def test_wildcard_actions_are_refused_and_named_actions_pass():
    allow = {"Effect": "Allow", "Resource": BUCKET_ARN}
    assert says("iam-no-wildcard-actions", iam({**allow, "Action": "s3:GetObject"})) == []
    assert says("iam-no-wildcard-actions", iam({**allow, "Effect": "Deny", "Action": "*"})) == []
    assert says("iam-no-wildcard-actions", iam({**allow, "Sid": "All", "Action": "*"})) == [
        "policy statement All allows every action ('*')"]
    assert says("iam-no-wildcard-actions", iam({**allow, "Action": ["s3:GetObject", "s3:*"]})) == [
        "policy statement 0 allows every action of a service ('s3:*')"]
    assert says("iam-no-wildcard-actions", iam({**allow, "Action": "s3:*"}),
                config={"allowServiceWildcards": True}) == []
    assert says("iam-no-wildcard-actions", iam({**allow, "NotAction": "iam:*"})) == [
        "policy statement 0 allows NotAction, which grants every other action"]


def test_resource_star_passes_only_for_actions_without_resource_scoping():
    star = {"Effect": "Allow", "Resource": "*"}
    assert says("iam-no-wildcard-resources", iam({**star, "Action": ["ec2:DescribeInstances",
                                                                       "sts:GetCallerIdentity"]})) == []
    assert says("iam-no-wildcard-resources", iam({**star, "Action": ["EC2:describeSubnets"]})) == []
    assert says("iam-no-wildcard-resources", iam({**star, "Action": ["ec2:DescribeInstances",
                                                                       "s3:GetObject"]})) == [
        "policy statement 0 grants s3:GetObject on Resource '*'; scope it to ARNs (only actions "
        "without resource-level permissions may use '*')"]
    assert says("iam-no-wildcard-resources", iam({**star, "Resource": BUCKET_ARN,
                                                  "Action": "s3:GetObject"})) == []


def test_inline_role_policies_are_checked_by_name():
    role = res(ROLE, "r", assumeRolePolicy=COMPUTED, inlinePolicies=[{"name": "weights", "policy": json.dumps(
        {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})}])
    assert says("iam-no-wildcard-actions", role) == [
        "inline policy weights statement 0 allows every action ('*')"]


@pytest.mark.parametrize(("statement", "open_"), [
    ({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole"}, True),
    ({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}, True),
    ({"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::1:root", "*"]},
      "Action": "sts:AssumeRole"}, True),
    ({"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole",
      "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}, False),
    ({"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole"}, False),
    ({"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}, False),
], ids=["star", "aws-star", "aws-star-in-list", "conditioned", "deny", "service"])
def test_trust_policies_open_to_anyone_are_refused(statement, open_):
    role = res(ROLE, "r", assumeRolePolicy=json.dumps({"Statement": [statement]}))
    expected = ["trust policy statement 0 lets any AWS principal assume the role (Principal '*' "
                "without a Condition)"] if open_ else []
    assert says("iam-trust-policy-not-public", role) == expected


# -- tags ---------------------------------------------------------------------------------------

TAGS = {"Environment": "dev", "Project": "llmops", "Owner": "ml", "CostCentre": "CC-1", "ManagedBy": "pulumi"}


@pytest.mark.parametrize(("tags", "expected"), [
    (TAGS, []),
    (COMPUTED, []),
    ({**TAGS, "Owner": " "}, ["missing or empty cost-allocation tag(s): Owner"]),
    ({k: v for k, v in TAGS.items() if k not in ("Project", "ManagedBy")},
     ["missing or empty cost-allocation tag(s): Project, ManagedBy"]),
    (None, ["missing or empty cost-allocation tag(s): Environment, Project, Owner, CostCentre, ManagedBy"]),
], ids=["all", "computed", "blank", "missing-two", "none"])
def test_every_cost_tag_is_present_and_not_blank(tags, expected):
    assert says("required-cost-tags", res("aws:s3/bucket:Bucket", tags=tags)) == expected


def test_untaggable_resources_are_not_asked_for_tags():
    assert says("required-cost-tags", res(PAB, bucket="b")) == []


# -- Kubernetes ---------------------------------------------------------------------------------

def gpu_pod(tolerations: Any, **container: Any) -> Resource:
    main = {"name": "tgi", "image": "ghcr.io/huggingface/text-generation-inference:3.3.4",
            "resources": {"limits": {"nvidia.com/gpu": "1"}}, **container}
    return res(POD, "p", spec={"containers": [main], "tolerations": tolerations})


UNTOLERATED = ["requests nvidia.com/gpu but does not tolerate the nvidia.com/gpu=true:NoSchedule taint "
               "of the GPU nodes, so it can never schedule"]


@pytest.mark.parametrize("toleration", [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
    {"key": "nvidia.com/gpu", "value": "true", "effect": ""},        # operator defaults to Equal
    {"operator": "Exists"},                                          # tolerates every taint
], ids=["exists", "exists-any-effect", "equal", "default-operator", "everything"])
def test_a_toleration_matching_the_gpu_taint_passes(toleration):
    assert says("k8s-gpu-workload-tolerates-gpu-taint", gpu_pod([toleration])) == []


@pytest.mark.parametrize("tolerations", [
    [{"key": "nvidia.com/gpus", "operator": "Exists", "effect": "NoSchedule"}],
    [{"key": "gpu", "operator": "Exists"}],
    [{"key": "nvidia.com/gpu", "operator": "Equal", "value": "false", "effect": "NoSchedule"}],
    [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],             # Equal to an empty value
    [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}],
    [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "PreferNoSchedule"}],
    [{"operator": "Exists", "effect": "NoExecute"}],
    [],
    None,
], ids=["wrong-key", "other-key", "wrong-value", "no-value", "no-execute", "prefer", "all-no-execute",
        "empty", "none"])
def test_a_gpu_pod_without_the_right_toleration_is_refused(tolerations):
    assert says("k8s-gpu-workload-tolerates-gpu-taint", gpu_pod(tolerations)) == UNTOLERATED


def test_cpu_pods_and_unknown_tolerations_are_not_judged():
    cpu = res(POD, "cpu", spec={"containers": [{"name": "x", "image": "busybox:1.36"}]})
    zero = gpu_pod([], resources={"limits": {"nvidia.com/gpu": "0"}})
    assert says("k8s-gpu-workload-tolerates-gpu-taint", cpu, zero, gpu_pod(COMPUTED)) == []


def test_requests_alone_count_as_asking_for_a_gpu():
    pod = gpu_pod([], resources={"requests": {"nvidia.com/gpu": 2}})
    assert says("k8s-gpu-workload-tolerates-gpu-taint", pod) == UNTOLERATED


def test_the_taint_key_and_value_are_settings():
    pod = gpu_pod([{"key": "accelerator", "operator": "Equal", "value": "h100"}])
    assert says("k8s-gpu-workload-tolerates-gpu-taint", pod,
                config={"taintKey": "accelerator", "taintValue": "h100"}) == []


SIZED = {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


@pytest.mark.parametrize(("resources", "expected"), [
    (SIZED, []),
    (COMPUTED, []),
    ({**SIZED, "limits": {"memory": "2Gi"}}, ["container 'x' sets no limits.cpu"]),
    ({"requests": {"cpu": "1"}}, ["container 'x' sets no requests.memory, limits.cpu, limits.memory"]),
    ({**SIZED, "requests": {"cpu": "", "memory": "1Gi"}}, ["container 'x' sets no requests.cpu"]),
], ids=["sized", "computed", "no-cpu-limit", "only-cpu-request", "empty-cpu"])
def test_every_container_is_sized(resources, expected):
    pod = res(POD, "p", spec={"containers": [{"name": "x", "image": "a:1", "resources": resources}]})
    assert says("k8s-container-resources", pod) == expected


def test_init_containers_are_sized_too():
    pod = res(POD, "p", spec={"containers": [{"name": "x", "image": "a:1", "resources": SIZED}],
                              "initContainers": [{"name": "fetch", "image": "a:1"}]})
    assert says("k8s-container-resources", pod) == [
        "init container 'fetch' sets no requests.cpu, requests.memory, limits.cpu, limits.memory"]


@pytest.mark.parametrize(("image", "expected"), [
    ("ghcr.io/huggingface/text-generation-inference:3.3.4", None),
    ("registry.local:5000/team/app@sha256:" + "a" * 64, None),
    (COMPUTED, None),
    ("registry.local:5000/team/app", "image 'registry.local:5000/team/app' has no tag (pulls :latest)"),
    ("busybox", "image 'busybox' has no tag (pulls :latest)"),
    ("busybox:latest", "image 'busybox:latest' uses the mutable tag :latest"),
    ("", "has no image"),
], ids=["tag", "digest", "computed", "registry-port-no-tag", "bare", "latest", "empty"])
def test_images_are_pinned(image, expected):
    pod = res(POD, "p", spec={"containers": [{"name": "x", "image": image}]})
    assert says("k8s-image-pinned", pod) == ([f"container 'x' {expected}"] if expected else [])


def test_privileged_pods_and_host_namespaces_are_refused_unless_allow_listed():
    spec = {"hostNetwork": True, "hostPID": False,
            "containers": [{"name": "x", "image": "a:1", "securityContext": {"privileged": True}}]}
    assert says("k8s-no-privileged-or-host-namespaces", res(POD, "agent", spec=spec)) == [
        "pod uses the host namespace (hostNetwork: true)", "container 'x' runs privileged"]
    named = res(POD, "dcgm-exporter-abc", spec=spec)
    in_namespace = res(POD, "agent", spec=spec, metadata={"namespace": "gpu-operator"})
    assert says("k8s-no-privileged-or-host-namespaces", named, in_namespace) == []
    calm = {"containers": [{"name": "x", "image": "a:1", "securityContext": {"privileged": False}}]}
    assert says("k8s-no-privileged-or-host-namespaces", res(POD, "p", spec=calm)) == []


TGI_LABELS = {"app.kubernetes.io/name": "tgi", "app.kubernetes.io/component": "model-server"}


def tgi(name: str = "tgi-llama", namespace: str = "llm-serving", **container: Any) -> Resource:
    main = {"name": "tgi", "image": "a:1", "resources": {"limits": {"nvidia.com/gpu": "1"}},
            "startupProbe": {"httpGet": {"path": "/health"}},
            "readinessProbe": {"httpGet": {"path": "/health"}}, **container}
    return res(DEPLOYMENT, name, metadata={"namespace": namespace, "labels": TGI_LABELS},
               spec={"template": {"metadata": {"labels": {**TGI_LABELS, "model": "llama"}},
                                  "spec": {"containers": [main]}}})


def test_serving_deployments_request_a_gpu_and_are_probed():
    assert says("tgi-serving-requests-gpu", tgi()) == []
    assert says("tgi-serving-requests-gpu", tgi(resources={"limits": {"cpu": "4"}})) == [
        "serving Deployment requests no nvidia.com/gpu: the engine would fall back to CPU or fail to start"]
    assert says("tgi-serving-probes", tgi()) == []
    assert says("tgi-serving-probes", tgi(startupProbe=None)) == ["container 'tgi' has no startupProbe"]
    assert says("tgi-serving-probes", tgi(startupProbe=None, readinessProbe={})) == [
        "container 'tgi' has no startupProbe and no readinessProbe"]


def pdb(namespace: str = "llm-serving", **selector: Any) -> Resource:
    return res(PDB, "pdb", metadata={"namespace": namespace}, spec={"selector": selector})


@pytest.mark.parametrize(("budget", "covered"), [
    (pdb(matchLabels={"model": "llama"}), True),
    (pdb(matchLabels=COMPUTED), True),
    (pdb(matchExpressions=[{"key": "model", "operator": "In", "values": ["llama"]}]), True),
    (pdb(matchLabels={"model": "mistral"}), False),
    (pdb(matchLabels={}), False),
    (pdb(namespace="other", matchLabels={"model": "llama"}), False),
], ids=["selects", "computed", "expressions", "other-model", "selects-nothing", "other-namespace"])
def test_a_serving_deployment_needs_a_pdb_selecting_its_pods(budget, covered):
    expected = [] if covered else [
        "serving Deployment 'tgi-llama' has no PodDisruptionBudget selecting its pods"]
    assert says("tgi-serving-has-pdb", tgi(), budget) == expected


@pytest.mark.parametrize(("version", "chart", "expected"), [
    ("9.47.0", "cluster-autoscaler", []),
    (COMPUTED, "cluster-autoscaler", []),
    (None, "./charts/local", []),
    (None, "https://example.com/c-1.0.0.tgz", []),
    ("^9.47.0", "cluster-autoscaler", ["chart 'cluster-autoscaler' has version '^9.47.0': each "
                                        "install may get a different chart"]),
    ("9.x", "cluster-autoscaler", ["chart 'cluster-autoscaler' has version '9.x': each install may "
                                    "get a different chart"]),
    (None, "cluster-autoscaler", ["chart 'cluster-autoscaler' has no version: each install may get "
                                   "a different chart"]),
], ids=["pinned", "computed", "local", "archive", "caret", "x-range", "none"])
def test_helm_charts_pin_an_exact_version(version, chart, expected):
    assert says("helm-release-chart-version-pinned", res(HELM, chart=chart, version=version)) == expected


# -- GPU cost -----------------------------------------------------------------------------------

def node_group(name: str, types: list[str], capacity: Any = "SPOT", max_size: Any = 1) -> Resource:
    return res(NODE_GROUP, name, instanceTypes=types, capacityType=capacity,
               scalingConfig={"maxSize": max_size, "minSize": 0, "desiredSize": 0})


def test_the_budget_is_met_at_exactly_the_worst_case_bill_and_missed_a_cent_below():
    # g5.xlarge spot 0.40 $/h x 730 h x 2 nodes = 584 $/month
    group = node_group("gpu", ["g5.xlarge"], max_size=2)
    assert says("gpu-fleet-monthly-budget", group, config={"monthlyBudgetUsd": 584}) == []
    assert says("gpu-fleet-monthly-budget", group, config={"monthlyBudgetUsd": 583.99}) == [
        "the largest GPU fleet the node groups and NodePools allow costs $584/month, over the $584 budget "
        "(gpu: 2 x g5.xlarge SPOT at $0.40/h = $584)"]


def test_the_budget_uses_the_priciest_type_and_on_demand_when_capacity_is_unset():
    groups = [node_group("a", ["g5.xlarge", "g5.2xlarge"], max_size=1),
              node_group("b", ["g5.xlarge"], capacity=None, max_size=1),
              res(NODE_GROUP, "system", instanceTypes=["m6i.large"], scalingConfig={"maxSize": 50})]
    assert says("gpu-fleet-monthly-budget", *groups, config={"monthlyBudgetUsd": 1}) == [
        "the largest GPU fleet the node groups and NodePools allow costs $1,085/month, over the $1 budget "
        "(a: 1 x g5.2xlarge SPOT at $0.48/h = $350; b: 1 x g5.xlarge ON_DEMAND at $1.01/h = $734)"]


def test_gpu_pools_run_on_the_configured_capacity_type():
    assert says("gpu-pool-spot-capacity", node_group("spot", ["g5.xlarge"])) == []
    assert says("gpu-pool-spot-capacity", node_group("od", ["g5.xlarge"], capacity=None)) == [
        "GPU node group 'od' uses ON_DEMAND capacity; this environment runs GPU pools on SPOT"]
    assert says("gpu-pool-spot-capacity", node_group("cpu", ["m6i.large"], capacity="ON_DEMAND")) == []


@pytest.mark.parametrize(("types", "expected"), [
    (["g5.xlarge", "m6i.large"], []),
    (["g5.xlarge", "p5.48xlarge", "gr6.4xlarge"],
     ["GPU instance type(s) p5.48xlarge, gr6.4xlarge not allowed here (allowed: g5.xlarge)"]),
])
def test_only_allowed_gpu_types_launch(types, expected):
    assert says("gpu-instance-type-allowed", node_group("g", types),
                config={"allowedInstanceTypes": ["g5.xlarge"]}) == expected
    assert says("gpu-instance-type-allowed", res(LAUNCH_TEMPLATE, instanceType="p4d.24xlarge"),
                config={"allowedInstanceTypes": []}) == [
        "GPU instance type(s) p4d.24xlarge not allowed here (allowed: none)"]


def test_every_statement_is_judged_after_a_not_action_one():
    allow = {"Effect": "Allow", "Resource": BUCKET_ARN}
    policy = iam({**allow, "Sid": "Not", "NotAction": "iam:*"}, {**allow, "Sid": "All", "Action": "*"})
    assert says("iam-no-wildcard-actions", policy) == [
        "policy statement Not allows NotAction, which grants every other action",
        "policy statement All allows every action ('*')"]


def test_the_tls_deny_is_found_after_other_statements_and_a_non_json_policy_is_no_policy():
    allow = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/reader"},
             "Action": "s3:GetObject", "Resource": f"{BUCKET_ARN}/*"}
    document = json.dumps({"Version": "2012-10-17", "Statement": [allow, TLS_DENY]})
    assert says("s3-bucket-tls-only", *bucket_with((POLICY, {"policy": document}))) == []
    assert says("s3-bucket-tls-only", *bucket_with((POLICY, {"policy": "{not json"}))) == NO_TLS


def test_only_gpu_containers_of_a_serving_pod_need_probes():
    deployment = tgi()
    spec = deployment.props["spec"]["template"]["spec"]
    spec["containers"].append({"name": "log-shipper", "image": "fluent-bit:3.0"})
    assert says("tgi-serving-probes", deployment) == []


def test_a_gpu_quantity_that_is_not_a_number_still_asks_for_a_gpu():
    pod = gpu_pod([], resources={"limits": {"nvidia.com/gpu": "one"}})
    assert says("k8s-gpu-workload-tolerates-gpu-taint", pod) == UNTOLERATED


def test_the_budget_counts_every_priced_group_after_an_unpriced_or_unknown_one():
    groups = [node_group("a-unpriced", ["p3.2xlarge"]),
              node_group("b-unknown", ["g5.xlarge"], max_size=COMPUTED),
              node_group("c", ["g5.xlarge"], max_size=10)]
    assert says("gpu-fleet-monthly-budget", *groups, config={"monthlyBudgetUsd": 100}) == [
        "node group 'a-unpriced': no price for p3.2xlarge; add it to vocabulary/data/gpu_instances.yaml "
        "so the budget can be checked",
        "the largest GPU fleet the node groups and NodePools allow costs $2,920/month, over the $100 budget "
        "(c: 10 x g5.xlarge SPOT at $0.40/h = $2,920)"]


def test_the_default_budget_is_10000_usd_a_month():
    fleet = node_group("big", ["g5.xlarge"], capacity="ON_DEMAND", max_size=14)  # 14 x 1.006 x 730
    assert says("gpu-fleet-monthly-budget", fleet) == [
        "the largest GPU fleet the node groups and NodePools allow costs $10,281/month, over the "
        "$10,000 budget "
        "(big: 14 x g5.xlarge ON_DEMAND at $1.01/h = $10,281)"]
    assert says("gpu-fleet-monthly-budget", node_group("big", ["g5.xlarge"], capacity="ON_DEMAND",
                                                       max_size=13)) == []


def test_every_ingress_rule_is_judged_after_a_private_one():
    group = res(SG, "sg", ingress=[
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["10.0.0.0/8"]},
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    assert says("security-group-no-public-admin-ports", group) == [
        "ingress tcp 22 from 0.0.0.0/0 opens admin port(s) 22 to the internet"]


def test_every_model_bucket_is_judged_after_a_skipped_one():
    resources = [*bucket_with(name="access-logs"), *bucket_with(name="model-bucket")]
    assert says("s3-bucket-versioning", *resources) == ["model bucket 'model-bucket' is not versioned"]


def test_a_sub_resource_matches_its_bucket_by_physical_name_without_dependencies():
    bucket = res(BUCKET, "model-bucket", bucket="llmops-models")
    block = res(PAB, "block", bucket="llmops-models", **FLAGS)
    other = res(PAB, "other-block", bucket="someone-else", **FLAGS)
    assert says("s3-bucket-public-access-blocked", bucket, block) == []
    assert says("s3-bucket-public-access-blocked", bucket, other) == [
        "bucket 'model-bucket' has no BucketPublicAccessBlock"]
