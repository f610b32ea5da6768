"""The account's EC2 Spot service-linked role (AWSServiceRoleForEC2Spot, spot.amazonaws.com).

Why here, once per account: Karpenter's CreateFleet for spot needs the role; on a fresh account
without it, and without iam:CreateServiceLinkedRole on the controller, EC2 answers
AuthFailure.ServiceLinkedRoleCreationNotPermitted and Karpenter marks the whole spot capacity
type unavailable, so every node runs on-demand (aws/karpenter-provider-aws v1.14.1 (c88abbb),
pkg/providers/instance/instance.go:644-647 and pkg/errors/errors.go). The controller's policy
deliberately lacks that action, so the bootstrap creates the role as an administrator.
An account has the role at most once: where it already exists CreateServiceLinkedRole fails,
so `existing=True` adopts it instead (the preflight `spot-role` check reads it).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

SPOT_SERVICE = "spot.amazonaws.com"
SPOT_ROLE_NAME = "AWSServiceRoleForEC2Spot"


class SpotServiceLinkedRole(pulumi.ComponentResource):
    """Creates the Spot service-linked role, or records that the account already has it."""

    name: pulumi.Output[str]

    def __init__(self, name: str, existing: bool = False, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:bootstrap:SpotServiceLinkedRole", name, None, opts)
        if existing:
            self.name = pulumi.Output.from_input(SPOT_ROLE_NAME)
        else:
            role = aws.iam.ServiceLinkedRole(
                name, aws_service_name=SPOT_SERVICE,
                description="EC2 Spot launches for Karpenter's spot NodePools",
                opts=pulumi.ResourceOptions(parent=self))
            self.name = role.name
        self.register_outputs({"name": self.name})
