"""S3 and KMS: model weights are the platform's crown jewels; keep them encrypted with our
keys, versioned, private and reachable over TLS only.

Since pulumi-aws v6/v7 a bucket's encryption, versioning, public access block and policy
are separate resources (`BucketServerSideEncryptionConfiguration`, `BucketVersioning`,
`BucketPublicAccessBlock`, `BucketPolicy`), so the bucket rules are stack rules that look
for the sub-resource belonging to each bucket (see `rules.related` for how).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from typing import Any

from policies.rules import (
    Finding,
    Resource,
    Rule,
    RuleContext,
    as_list,
    computed,
    get,
    known,
    of_type,
    policy_document,
    related,
    statements,
    truthy,
)

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"  # deprecated alias of Bucket in v7, still accepted
BUCKETS = (BUCKET, BUCKET_V2)
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
KMS_KEY = "aws:kms/key:Key"

KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def _bucket_ids(bucket: Resource) -> list[Any]:
    """What a sub-resource's `bucket` input can equal: the bucket's explicit physical name."""
    return [bucket.props.get("bucket")]


def _subresources(resources: Sequence[Resource], bucket: Resource, type_token: str) -> list[Resource]:
    buckets = of_type(resources, *BUCKETS)
    return [r for r in of_type(resources, type_token)
            if related(r, bucket, buckets, r.props.get("bucket"), _bucket_ids(bucket))]


def _sse_problem(rules: Any, allowed: Sequence[str] = KMS_ALGORITHMS) -> str | None:
    """None when every rule encrypts with an allowed algorithm; otherwise what is wrong."""
    rules = as_list(rules)
    if not rules:
        return "has no server-side encryption rule"
    for rule in rules:
        algorithm = get(rule, "applyServerSideEncryptionByDefault.sseAlgorithm")
        if known(algorithm) and algorithm not in allowed:
            return f"encrypts with {algorithm}, not a KMS key (aws:kms)"
    return None


def check_bucket_kms(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    log_targets = list(ctx["accessLogBucketNamePatterns"])
    findings = []
    for sse in of_type(resources, SSE):
        if any(fnmatch.fnmatchcase(sse.name, p) for p in log_targets):
            # S3 delivers server access logs only to SSE-S3 buckets; still require encryption
            problem = _sse_problem(sse.props.get("rules"), allowed=("AES256", *KMS_ALGORITHMS))
        else:
            problem = _sse_problem(sse.props.get("rules"))
        if problem:
            findings.append(Finding(f"encryption configuration {sse.name!r} {problem}", sse.urn))
    for bucket in of_type(resources, *BUCKETS):
        inline = get(bucket.props, "serverSideEncryptionConfiguration.rule")
        if inline is not None:
            problem = _sse_problem(inline)
            if problem:
                findings.append(Finding(f"bucket {bucket.name!r} {problem}", bucket.urn))
            continue
        if not _subresources(resources, bucket, SSE):
            findings.append(Finding(
                f"bucket {bucket.name!r} has no BucketServerSideEncryptionConfiguration "
                "with a KMS key", bucket.urn))
    return findings


def check_bucket_versioning(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    patterns = list(ctx["bucketNamePatterns"])
    findings = []
    for bucket in of_type(resources, *BUCKETS):
        if not any(fnmatch.fnmatchcase(bucket.name, p) for p in patterns):
            continue
        if truthy(get(bucket.props, "versioning.enabled")):
            continue
        configs = _subresources(resources, bucket, VERSIONING)
        statuses = [get(c.props, "versioningConfiguration.status") for c in configs]
        if not any(s == "Enabled" or computed(s) for s in statuses):
            shown = f" (status {statuses[0]})" if statuses else ""
            findings.append(Finding(
                f"model bucket {bucket.name!r} is not versioned{shown}", bucket.urn))
    return findings


def check_public_access_blocked(resources: Sequence[Resource], _ctx: RuleContext) -> list[Finding]:
    findings = []
    for block in of_type(resources, PUBLIC_ACCESS_BLOCK):
        values = {f: block.props.get(f) for f in PAB_FLAGS}
        off = [f for f, v in values.items() if v is None or (known(v) and not truthy(v))]
        if off:
            findings.append(Finding(f"public access block {block.name!r} leaves "
                                    f"{', '.join(off)} off", block.urn))
    for bucket in of_type(resources, *BUCKETS):
        if not _subresources(resources, bucket, PUBLIC_ACCESS_BLOCK):
            findings.append(Finding(f"bucket {bucket.name!r} has no BucketPublicAccessBlock",
                                    bucket.urn))
    return findings


def _everyone(principal: Any) -> bool:
    """Principal "*" or {"AWS": "*"}: the statement applies to every caller."""
    if principal == "*":
        return True
    return isinstance(principal, Mapping) and "*" in map(str, as_list(principal.get("AWS")))


def denies_insecure_transport(document: Mapping[str, Any]) -> bool:
    """A Deny of every s3 action, for every principal, when aws:SecureTransport is false."""
    for statement in statements(document):
        if statement.get("Effect") != "Deny" or not _everyone(statement.get("Principal")):
            continue
        condition = statement.get("Condition") or {}
        secure = get(condition, "Bool.aws:SecureTransport")
        if str(secure).lower() != "false":
            continue
        actions = [str(a) for a in as_list(statement.get("Action"))]
        if any(a in ("*", "s3:*") for a in actions):
            return True
    return False


def check_tls_only(resources: Sequence[Resource], _ctx: RuleContext) -> list[Finding]:
    findings = []
    for bucket in of_type(resources, *BUCKETS):
        policies = _subresources(resources, bucket, BUCKET_POLICY)
        inline = bucket.props.get("policy")
        documents = [p.props.get("policy") for p in policies] + ([inline] if inline else [])
        if any(computed(d) for d in documents):
            continue  # built from outputs not known yet: judged at `pulumi up`
        parsed = [policy_document(d) for d in documents]
        if not any(d and denies_insecure_transport(d) for d in parsed):
            findings.append(Finding(
                f"bucket {bucket.name!r} has no policy denying requests without TLS", bucket.urn))
    return findings


def check_kms_rotation(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    spec = props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    usage = props.get("keyUsage") or "ENCRYPT_DECRYPT"
    if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
        return []  # AWS rotates only symmetric encryption keys
    if props.get("enableKeyRotation") is True or computed(props.get("enableKeyRotation")):
        return []
    return ["KMS key does not rotate (enableKeyRotation is not true)"]


RULES = [
    Rule(
        name="s3-bucket-kms-encryption",
        description="S3 buckets are encrypted at rest with a KMS key (SSE-KMS), not S3-managed keys.",
        remediation="Add aws.s3.BucketServerSideEncryptionConfiguration for the bucket with "
        "sse_algorithm='aws:kms' and kms_master_key_id set to the platform key; enable bucket_key_enabled.",
        stack_check=check_bucket_kms,
        config_schema={"accessLogBucketNamePatterns": {
            "type": "array", "items": {"type": "string"}, "default": ["*access-logs"],
            "description": "Logical-name globs of S3 server-access-log target buckets, which S3 "
            "can only deliver to with SSE-S3 (AES256); they must still be encrypted"}},
    ),
    Rule(
        name="s3-bucket-versioning",
        description="Model buckets keep every object version, so a bad upload can be rolled back.",
        remediation="Add aws.s3.BucketVersioning for the bucket with versioning_configuration "
        "status 'Enabled'.",
        stack_check=check_bucket_versioning,
        config_schema={"bucketNamePatterns": {
            "type": "array", "items": {"type": "string"},
            "default": ["*model*", "*registry*", "*weights*"],
            "description": "Logical-name globs of the buckets that must be versioned"}},
    ),
    Rule(
        name="s3-bucket-public-access-blocked",
        description="Every S3 bucket blocks public ACLs and policies (all four public access block flags).",
        remediation="Add aws.s3.BucketPublicAccessBlock for the bucket with block_public_acls, "
        "block_public_policy, ignore_public_acls and restrict_public_buckets all True.",
        stack_check=check_public_access_blocked,
    ),
    Rule(
        name="s3-bucket-tls-only",
        description="Every S3 bucket policy denies requests that do not use TLS (aws:SecureTransport).",
        remediation="Add an aws.s3.BucketPolicy with a statement: Effect Deny, Principal '*', "
        "Action 's3:*', Resource [bucket ARN, bucket ARN/*], Condition Bool aws:SecureTransport 'false'.",
        stack_check=check_tls_only,
    ),
    Rule(
        name="kms-key-rotation",
        description="Symmetric KMS keys rotate their key material every year.",
        remediation="Set enable_key_rotation=True on aws.kms.Key (optionally rotation_period_in_days).",
        resource_types=(KMS_KEY,),
        check=check_kms_rotation,
    ),
]
