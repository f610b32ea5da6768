"""A self-managed Pulumi backend: a private, versioned, KMS-encrypted, TLS-only S3 bucket
for the state (`pulumi login s3://<bucket>`) and a KMS key for the stacks' secrets
(`--secrets-provider awskms://alias/<name>`), with what each GitHub role may do on them.

Deploy roles read and write the state and encrypt secrets; preview roles read the state,
decrypt secrets, and write only lock files: the diy backend takes a lock for every
operation under `.pulumi/locks/<stack>/` (pulumi/pulumi pkg/backend/diy/lock.go,
`lockDir` = BookkeepingDir/LockDir).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.iam import document
from components.storage import ModelStorage

LOCKS_PREFIX = ".pulumi/locks/"


def state_policy(bucket_arn: str, key_arn: str, *, write: bool) -> str:
    """What a deploy (write) or preview (read, locks) role may do on the state and its key."""
    objects = [f"{bucket_arn}/*"] if write else [f"{bucket_arn}/{LOCKS_PREFIX}*"]
    key_actions = ["kms:Decrypt", "kms:GenerateDataKey"] + (["kms:Encrypt"] if write else [])
    return document([
        {"Sid": "ListState", "Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": bucket_arn},
        {"Sid": "ReadState", "Effect": "Allow", "Action": "s3:GetObject", "Resource": f"{bucket_arn}/*"},
        {"Sid": "WriteState" if write else "WriteLocks", "Effect": "Allow",
         "Action": ["s3:PutObject", "s3:DeleteObject"], "Resource": objects},
        {"Sid": "StateKey", "Effect": "Allow", "Action": key_actions, "Resource": key_arn},
    ])


class StateBackend(pulumi.ComponentResource):
    """`bucket_name` for `pulumi login`, `secrets_provider` for `pulumi stack init`; `grant`
    gives a role its access (the roles are made after the bucket: previews exempt its objects
    from their content-read deny)."""

    def __init__(self, name: str, name_prefix: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:StateBackend", name, None, opts)
        self._name = name
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(f"{name}-secrets", description=f"{name_prefix}: Pulumi state and secrets",
                          enable_key_rotation=True, deletion_window_in_days=30, opts=child)
        alias = aws.kms.Alias(f"{name}-secrets", name=f"alias/{name_prefix}-pulumi-secrets",
                              target_key_id=key.key_id, opts=child)
        bucket = ModelStorage.versioned_private_bucket(f"{name}-state", sse_key_arn=key.arn, child=child)
        self.key_arn = key.arn
        self.bucket_name = bucket.bucket
        self.bucket_arn = bucket.arn
        self.secrets_provider = alias.name.apply(lambda a: f"awskms://{a}")
        self.register_outputs({"bucketName": self.bucket_name, "secretsProvider": self.secrets_provider})

    def grant(self, label: str, role: pulumi.Input[str], *, write: bool) -> aws.iam.RolePolicy:
        """Give a role (by name) the deploy (`write`) or preview access to the state."""
        return aws.iam.RolePolicy(
            f"{self._name}-{label}", role=role, policy=pulumi.Output.all(self.bucket_arn, self.key_arn).apply(
                lambda v: state_policy(v[0], v[1], write=write)),
            opts=pulumi.ResourceOptions(parent=self))
