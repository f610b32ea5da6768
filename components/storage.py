"""Model storage: a KMS-encrypted, versioned, private, TLS-only bucket with lifecycle and
access logging, and an ECR repository for the gateway image."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import registry_publisher_policy
from vocabulary.config.storage import StorageConfig


def deny_insecure_transport(bucket_arn: str) -> dict:
    return {"Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
            "Action": "s3:*", "Resource": [bucket_arn, f"{bucket_arn}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}


@dataclass(frozen=True)
class ModelStorageArgs:
    config: StorageConfig
    name_prefix: str  # e.g. llmops-prod; buckets get a unique suffix from Pulumi
    account_id: str
    region: str


class ModelStorage(pulumi.ComponentResource):
    """Where model weights and the registry live."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    gateway_repository_url: pulumi.Output[str]

    def __init__(self, name: str, args: ModelStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:storage:ModelStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cfg = args.config

        key = aws.kms.Key(f"{name}-models", description=f"{args.name_prefix} model weights and registry",
                          enable_key_rotation=True, deletion_window_in_days=30, opts=child)
        aws.kms.Alias(f"{name}-models", name=f"alias/{args.name_prefix}-models",
                      target_key_id=key.key_id, opts=child)

        logs = self._private_bucket(f"{name}-access-logs", sse_key_arn=None, child=child)
        aws.s3.BucketPolicy(f"{name}-access-logs", bucket=logs.id, policy=logs.arn.apply(
            lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [
                deny_insecure_transport(arn),
                {"Sid": "S3ServerAccessLogs", "Effect": "Allow",
                 "Principal": {"Service": "logging.s3.amazonaws.com"}, "Action": "s3:PutObject",
                 "Resource": f"{arn}/*",
                 "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}}}]})),
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs", bucket=logs.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-access-logs", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    days=cfg.access_log_days))],
            opts=child)

        models = self.versioned_private_bucket(f"{name}-models", sse_key_arn=key.arn, child=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-models", bucket=models.id,
            rules=[aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-noncurrent-and-abandoned-uploads", status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=cfg.noncurrent_version_days),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=cfg.abort_multipart_days))],
            opts=child)
        aws.s3.BucketLogging(f"{name}-models", bucket=models.id, target_bucket=logs.id,
                             target_prefix="models/", opts=child)

        repository = aws.ecr.Repository(
            f"{name}-gateway", name=f"{args.name_prefix}/llm-gateway",
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(
                encryption_type="KMS", kms_key=key.arn)],
            opts=child)

        # CI attaches this to its deploy role to register and promote models.
        publisher = aws.iam.Policy(
            f"{name}-registry-publisher", description="Register and promote models in the registry",
            policy=pulumi.Output.all(models.arn, key.arn).apply(
                lambda v: registry_publisher_policy(v[0], cfg.registry_prefix, v[1], args.region)),
            opts=child)

        self.registry_publisher_policy_arn = publisher.arn
        self.bucket_name = models.bucket
        self.bucket_arn = models.arn
        self.key_arn = key.arn
        self.log_bucket_name = logs.bucket
        self.gateway_repository_url = repository.repository_url
        self.register_outputs({"bucketName": self.bucket_name, "keyArn": self.key_arn,
                               "gatewayRepositoryUrl": self.gateway_repository_url})


    @staticmethod
    def versioned_private_bucket(name: str, sse_key_arn, child) -> aws.s3.Bucket:
        """A private bucket (below) that keeps every version and refuses plain HTTP: the
        model registry's and the Pulumi state's."""
        bucket = ModelStorage._private_bucket(name, sse_key_arn=sse_key_arn, child=child)
        aws.s3.BucketVersioning(
            name, bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"), opts=child)
        aws.s3.BucketPolicy(name, bucket=bucket.id, policy=bucket.arn.apply(
            lambda arn: json.dumps({"Version": "2012-10-17",
                                    "Statement": [deny_insecure_transport(arn)]})), opts=child)
        return bucket
    @staticmethod
    def _private_bucket(name: str, sse_key_arn, child) -> aws.s3.Bucket:
        """A bucket with public access blocked, ACLs disabled and default encryption.

        S3 server access logs can only be delivered to SSE-S3 buckets, so the log bucket
        passes no key; every other bucket uses the customer-managed key.
        """
        bucket = aws.s3.Bucket(name, force_destroy=False, opts=child)
        aws.s3.BucketPublicAccessBlock(name, bucket=bucket.id, block_public_acls=True,
                                       block_public_policy=True, ignore_public_acls=True,
                                       restrict_public_buckets=True, opts=child)
        aws.s3.BucketOwnershipControls(name, bucket=bucket.id,
                                       rule=aws.s3.BucketOwnershipControlsRuleArgs(
                                           object_ownership="BucketOwnerEnforced"), opts=child)
        default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
            sse_algorithm="aws:kms" if sse_key_arn is not None else "AES256",
            kms_master_key_id=sse_key_arn)
        aws.s3.BucketServerSideEncryptionConfiguration(
            name, bucket=bucket.id,
            rules=[aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=default,
                bucket_key_enabled=sse_key_arn is not None)],
            opts=child)
        return bucket
