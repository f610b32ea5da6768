"""The EC2 Spot service-linked role, when any GPU NodePool may buy spot.

Without AWSServiceRoleForEC2Spot, Karpenter's spot CreateFleet fails with
AuthFailure.ServiceLinkedRoleCreationNotPermitted and Karpenter marks the spot capacity type
unavailable: every node then runs on-demand, silently (aws/karpenter-provider-aws v1.14.1,
pkg/providers/instance/instance.go:644-647). The bootstrap creates it (components/spot_role.py).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from components.spot_role import SPOT_ROLE_NAME, SPOT_SERVICE
from llmops.preflight.context import Context
from llmops.preflight.result import Check, failed, passed

CHECK = "spot-role"


def spot_pools(context: Context) -> list[str]:
    """GPU pools with a NodePool that may buy spot."""
    return [pool.name for pool in context.config.gpu_pools
            if any("spot" in capacity for capacity, _ in pool.node_pools)]


def spot_service_linked_role(context: Context) -> list[Check]:
    pools = spot_pools(context)
    if not pools:
        return [passed(CHECK, "no GPU NodePool buys spot")]
    try:
        context.client("iam").get_role(RoleName=SPOT_ROLE_NAME)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchEntity":
            raise
        return [failed(CHECK, f"{SPOT_ROLE_NAME} is missing; pools {', '.join(pools)} would get no "
                       "spot nodes (Karpenter marks spot unavailable)",
                       "run the bootstrap stack (stacks/bootstrap) or "
                       f"`aws iam create-service-linked-role --aws-service-name {SPOT_SERVICE}`")]
    return [passed(CHECK, f"{SPOT_ROLE_NAME} exists (pools {', '.join(pools)} buy spot)")]
