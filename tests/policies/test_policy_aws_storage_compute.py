"""S3, KMS, EKS and launch-template policies: a compliant and a non-compliant case each.

HAND-BUILT: the storage, cluster and GPU-node components are not in the plan yet, so these
tests record small programs of real pulumi_aws resources (the inputs are exactly what the
provider receives). Switch them to run_plan() once components/storage.py, cluster.py and
gpu_nodes.py land.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from tests.policies.helpers import Group, as_plan_json, doc, messages, recorded


def tls_only(bucket: aws.s3.Bucket) -> pulumi.Output[str]:
    return bucket.arn.apply(lambda arn: doc({
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}))


def model_bucket(name: str = "models", *, sse: str = "aws:kms", versioning: str | None = "Enabled",
                 block: bool = True, policy: bool = True, parent: pulumi.Resource | None = None):
    """A bucket as the storage component should build it, with knobs to break each part."""
    opts = pulumi.ResourceOptions(parent=parent)
    key = aws.kms.Key(f"{name}-key", enable_key_rotation=True, opts=opts)
    bucket = aws.s3.Bucket(name, opts=opts)
    aws.s3.BucketServerSideEncryptionConfiguration(name, bucket=bucket.id, rules=[{
        "apply_server_side_encryption_by_default": {
            "sse_algorithm": sse, "kms_master_key_id": key.arn if sse == "aws:kms" else None},
        "bucket_key_enabled": True}], opts=opts)
    if versioning:
        aws.s3.BucketVersioning(name, bucket=bucket.id,
                                versioning_configuration={"status": versioning}, opts=opts)
    aws.s3.BucketPublicAccessBlock(name, bucket=bucket.id, block_public_acls=True,
                                   block_public_policy=block, ignore_public_acls=True,
                                   restrict_public_buckets=True, opts=opts)
    if policy:
        aws.s3.BucketPolicy(name, bucket=bucket.id, policy=tls_only(bucket), opts=opts)
    return bucket


S3_POLICIES = ("s3-bucket-kms-encryption", "s3-bucket-versioning", "s3-bucket-public-access-blocked",
               "s3-bucket-tls-only")


def test_a_fully_configured_model_bucket_passes_every_s3_policy():
    resources = recorded(lambda: model_bucket())
    for policy in S3_POLICIES:
        assert messages(policy, resources) == [], policy


def test_a_bare_bucket_fails_every_s3_policy():
    resources = recorded(lambda: aws.s3.Bucket("model-weights"))
    assert messages("s3-bucket-kms-encryption", resources) == [
        "bucket 'model-weights' has no BucketServerSideEncryptionConfiguration with a KMS key"]
    assert messages("s3-bucket-versioning", resources) == ["model bucket 'model-weights' is not versioned"]
    assert messages("s3-bucket-public-access-blocked", resources) == [
        "bucket 'model-weights' has no BucketPublicAccessBlock"]
    assert messages("s3-bucket-tls-only", resources) == [
        "bucket 'model-weights' has no policy denying requests without TLS"]


def test_s3_managed_keys_are_not_enough():
    resources = recorded(lambda: model_bucket(sse="AES256"))
    assert messages("s3-bucket-kms-encryption", resources) == [
        "encryption configuration 'models' encrypts with AES256, not a KMS key (aws:kms)"]


def test_suspended_versioning_on_a_model_bucket_is_a_violation():
    resources = recorded(lambda: model_bucket(versioning="Suspended"))
    assert messages("s3-bucket-versioning", resources) == [
        "model bucket 'models' is not versioned (status Suspended)"]


def test_only_buckets_matching_the_model_patterns_must_be_versioned():
    resources = recorded(lambda: model_bucket("access-logs", versioning=None))
    assert messages("s3-bucket-versioning", resources) == []


def test_a_public_access_block_with_a_flag_off_is_a_violation():
    resources = recorded(lambda: model_bucket(block=False))
    assert messages("s3-bucket-public-access-blocked", resources) == [
        "public access block 'models' leaves blockPublicPolicy off"]


def test_a_bucket_policy_without_the_tls_deny_is_a_violation():
    def program():
        bucket = model_bucket(policy=False)
        aws.s3.BucketPolicy("models", bucket=bucket.id, policy=doc(
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
             "Action": "s3:GetObject", "Resource": "*"}))
    assert messages("s3-bucket-tls-only", recorded(program)) == [
        "bucket 'models' has no policy denying requests without TLS"]


def test_sub_resources_of_another_bucket_do_not_count():
    def program():
        model_bucket("models")
        aws.s3.Bucket("model-cache")
    found = messages("s3-bucket-public-access-blocked", recorded(program))
    assert found == ["bucket 'model-cache' has no BucketPublicAccessBlock"]


def test_without_dependency_data_a_components_single_bucket_still_matches():
    """Plan JSON without dependency data (e.g. hand-written): matching falls back to the
    parent component."""
    def program():
        model_bucket(parent=Group("storage"))
    entries = [{k: v for k, v in e.items() if k != "dependencies"}
               for e in as_plan_json(recorded(program))]
    for policy in S3_POLICIES:
        assert messages(policy, entries) == [], policy


def test_kms_keys_must_rotate_but_asymmetric_keys_cannot():
    resources = recorded(lambda: (
        aws.kms.Key("rotating", enable_key_rotation=True),
        aws.kms.Key("static"),
        aws.kms.Key("signing", customer_master_key_spec="RSA_2048", key_usage="SIGN_VERIFY")))
    found = [(v.resource_name, v.message) for v in _violations("kms-key-rotation", resources)]
    assert found == [("static", "KMS key does not rotate (enableKeyRotation is not true)")]


# -- EKS -----------------------------------------------------------------------------------

def cluster(name: str = "gpu", **overrides):
    key = aws.kms.Key(f"{name}-secrets", enable_key_rotation=True)
    args = {
        "role_arn": "arn:aws:iam::123456789012:role/eks-cluster",
        "enabled_cluster_log_types": ["api", "audit", "authenticator"],
        "encryption_config": {"resources": ["secrets"], "provider": {"key_arn": key.arn}},
        "vpc_config": {"subnet_ids": ["subnet-1", "subnet-2"], "endpoint_private_access": True,
                       "endpoint_public_access": False},
    }
    args.update(overrides)
    return aws.eks.Cluster(name, **args)


def test_a_private_logged_encrypted_cluster_passes():
    resources = recorded(lambda: cluster())
    for policy in ("eks-control-plane-logging", "eks-secrets-encryption", "eks-endpoint-not-public"):
        assert messages(policy, resources) == [], policy


def test_cluster_without_audit_logs_is_a_violation():
    resources = recorded(lambda: cluster(enabled_cluster_log_types=["api"]))
    assert messages("eks-control-plane-logging", resources) == [
        "control-plane log types not enabled: audit, authenticator"]


def test_cluster_with_no_log_types_at_all_is_a_violation():
    resources = recorded(lambda: cluster(enabled_cluster_log_types=None))
    assert messages("eks-control-plane-logging", resources) == [
        "control-plane log types not enabled: api, audit, authenticator"]


def test_cluster_without_secrets_encryption_is_a_violation():
    resources = recorded(lambda: cluster(encryption_config=None))
    assert messages("eks-secrets-encryption", resources) == [
        "Kubernetes secrets are not envelope-encrypted with a KMS key (encryptionConfig)"]


def test_public_endpoint_open_to_the_world_is_a_violation():
    resources = recorded(lambda: (
        cluster("open", vpc_config={"subnet_ids": ["s"], "endpoint_public_access": True,
                                    "public_access_cidrs": ["0.0.0.0/0"]}),
        cluster("default", vpc_config={"subnet_ids": ["s"]}),
        cluster("office", vpc_config={"subnet_ids": ["s"], "endpoint_public_access": True,
                                      "public_access_cidrs": ["203.0.113.0/24"]})))
    found = {v.resource_name: v.message for v in _violations("eks-endpoint-not-public", resources)}
    assert found == {
        "open": "the public API endpoint is open to 0.0.0.0/0",
        "default": "the API endpoint is public and publicAccessCidrs is unset, which AWS opens to "
                   "0.0.0.0/0"}


# -- launch templates ------------------------------------------------------------------------

def launch_template(name: str = "gpu-nodes", tokens: str = "required", encrypted: str | None = "true"):
    mappings = None if encrypted is None else [
        {"device_name": "/dev/xvda", "ebs": {"encrypted": encrypted, "volume_size": 200,
                                             "volume_type": "gp3"}}]
    return aws.ec2.LaunchTemplate(name, instance_type="g5.xlarge", block_device_mappings=mappings,
                                  metadata_options={"http_tokens": tokens,
                                                    "http_put_response_hop_limit": 2})


def test_launch_template_with_imdsv2_and_encrypted_root_passes():
    resources = recorded(lambda: launch_template())
    assert messages("launch-template-imdsv2", resources) == []
    assert messages("launch-template-encrypted-volumes", resources) == []


def test_launch_template_allowing_imdsv1_is_a_violation():
    resources = recorded(lambda: launch_template(tokens="optional"))
    assert messages("launch-template-imdsv2", resources) == [
        "instance metadata allows IMDSv1 (metadataOptions.httpTokens is optional, not 'required')"]


def test_launch_template_with_unencrypted_or_undeclared_volumes_is_a_violation():
    assert messages("launch-template-encrypted-volumes", recorded(lambda: launch_template(
        encrypted="false"))) == ["EBS volume /dev/xvda is not encrypted"]
    unset = recorded(lambda: aws.ec2.LaunchTemplate("gpu-nodes", block_device_mappings=[
        {"device_name": "/dev/xvda", "ebs": {"volume_size": 200}}]))
    assert messages("launch-template-encrypted-volumes", unset) == ["EBS volume /dev/xvda is not encrypted"]
    assert messages("launch-template-encrypted-volumes", recorded(lambda: launch_template(
        encrypted=None))) == ["no blockDeviceMappings: the root volume inherits the AMI's (possibly "
                              "unencrypted) settings"]


def _violations(policy, resources):
    from tests.policies.helpers import violations_of

    return violations_of(policy, resources)
