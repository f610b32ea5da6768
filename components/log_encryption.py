"""A customer-managed KMS key for the platform's CloudWatch log groups (control-plane audit,
VPC flow logs, container logs), usable by CloudWatch Logs for exactly those groups.

CloudWatch Logs encrypts with a KMS key only if the key policy lets the regional service
principal `logs.<region>.amazonaws.com` use it; the encryption context
`kms:EncryptionContext:aws:logs:arn` carries the log group's ARN, so a condition on it limits
the key to our groups (CloudWatch Logs user guide, "Encrypt log data in CloudWatch Logs using
AWS KMS"). The key must allow this before a log group is associated with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

#: What CloudWatch Logs needs on the key (the user guide's statement).
LOGS_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


def log_group_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:logs:{region}:{account_id}:log-group:{name}"


def key_policy(region: str, account_id: str, log_group_names: Sequence[str]) -> dict[str, Any]:
    """The account administers the key through IAM; CloudWatch Logs in this region may use it
    for the named log groups only."""
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministersThroughIam", "Effect": "Allow",
         "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"}, "Action": "kms:*", "Resource": "*"},
        {"Sid": "CloudWatchLogsForOurLogGroups", "Effect": "Allow",
         "Principal": {"Service": f"logs.{region}.amazonaws.com"}, "Action": LOGS_ACTIONS,
         "Resource": "*",
         "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": [
             log_group_arn(region, account_id, n) for n in log_group_names]}}},
    ]}


@dataclass(frozen=True)
class LogEncryptionKeyArgs:
    cluster_name: str
    region: str
    account_id: str
    log_group_names: Sequence[str]   # every log group that will be encrypted with the key


class LogEncryptionKey(pulumi.ComponentResource):
    """The key (rotated yearly) and its alias; `arn` goes to each log group's kms_key_id."""

    arn: pulumi.Output[str]

    def __init__(self, name: str, args: LogEncryptionKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:security:LogEncryptionKey", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            name, description=f"CloudWatch Logs encryption for {args.cluster_name}",
            enable_key_rotation=True, deletion_window_in_days=30,
            policy=json.dumps(key_policy(args.region, args.account_id, args.log_group_names)),
            opts=child)
        aws.kms.Alias(name, name=f"alias/{args.cluster_name}-logs", target_key_id=key.key_id, opts=child)
        self.arn = key.arn
        self.register_outputs({"arn": self.arn})
