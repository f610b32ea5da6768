"""The model bucket, its log bucket, the gateway repository and the IAM documents for them."""

from __future__ import annotations

import json

import pytest

from components.iam import model_reader_policy, registry_publisher_policy
from tests.conftest import STACKS

BUCKET_ARN = "arn:aws:s3:::models"
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/abc"


def _for(plan, type_token, name):
    return plan.one(type_token, name).inputs


@pytest.mark.parametrize("stack", STACKS)
def test_model_bucket_is_kms_encrypted_with_a_rotating_key(plans, stack):
    plan = plans[stack]
    sse = _for(plan, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
               "storage-models")["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    assert sse["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"] == plan.outputs["modelKeyArn"]
    assert sse["bucketKeyEnabled"] is True
    assert _for(plan, "aws:kms/key:Key", "storage-models")["enableKeyRotation"] is True


def test_model_bucket_is_versioned_private_and_owner_enforced(plans):
    plan = plans["prod"]
    assert _for(plan, "aws:s3/bucketVersioning:BucketVersioning", "storage-models")[
        "versioningConfiguration"] == {"status": "Enabled"}
    for name in ("storage-models", "storage-access-logs"):
        block = _for(plan, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name)
        assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy",
                                              "ignorePublicAcls", "restrictPublicBuckets"))
        ownership = _for(plan, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", name)
        assert ownership["rule"] == {"objectOwnership": "BucketOwnerEnforced"}


def test_both_buckets_deny_requests_without_tls(plans):
    plan = plans["dev"]
    for name in ("storage-models", "storage-access-logs"):
        policy = json.loads(_for(plan, "aws:s3/bucketPolicy:BucketPolicy", name)["policy"])
        deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        assert deny["Action"] == "s3:*" and deny["Principal"] == "*"
        assert len(deny["Resource"]) == 2


def test_lifecycle_expires_old_versions_and_abandoned_uploads(plans):
    rule = _for(plans["dev"], "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
                "storage-models")["rules"][0]
    assert rule["status"] == "Enabled"
    assert rule["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 7}


def test_access_to_models_is_logged_to_the_log_bucket(plans):
    plan = plans["dev"]
    logging = _for(plan, "aws:s3/bucketLogging:BucketLogging", "storage-models")
    log_bucket = plan.one("aws:s3/bucket:Bucket", "storage-access-logs")
    assert logging["targetPrefix"] == "models/"
    assert logging["targetBucket"].startswith("storage-access-logs-")
    assert log_bucket.inputs["forceDestroy"] is False


def test_gateway_repository_scans_on_push_is_immutable_and_kms_encrypted(plans):
    repo = _for(plans["staging"], "aws:ecr/repository:Repository", "storage-gateway")
    assert repo["imageTagMutability"] == "IMMUTABLE"
    assert repo["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo["encryptionConfigurations"][0]["encryptionType"] == "KMS"


def test_model_reader_can_only_read_its_prefix_and_decrypt_via_s3():
    policy = json.loads(model_reader_policy(BUCKET_ARN, "registry/models/llama/", KEY_ARN, "us-east-1"))
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    resources = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    assert resources["ReadModelObjects"] == "arn:aws:s3:::models/registry/models/llama/*"
    assert all(r != "*" for r in resources.values())
    decrypt = next(s for s in policy["Statement"] if s["Sid"] == "DecryptThroughS3")
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}}


def test_registry_publisher_cannot_delete_and_scopes_everything_but_whoami():
    policy = json.loads(registry_publisher_policy(BUCKET_ARN, "registry/", KEY_ARN, "us-east-1"))
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert not any("Delete" in a for a in actions)
    wildcard = [s["Sid"] for s in policy["Statement"] if s["Resource"] == "*"]
    assert wildcard == ["WhoAmI"]  # sts:GetCallerIdentity cannot be scoped


def test_applications_get_bucket_key_and_registry_outputs(plans):
    outputs = plans["prod"].outputs
    assert outputs["modelBucket"].startswith("storage-models-")
    assert outputs["registryPrefix"] == "registry/"
    assert outputs["platformRepositoryUrl"].endswith(".amazonaws.com/llmops-prod/llm-gateway")
