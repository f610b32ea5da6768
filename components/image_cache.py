"""Images near the nodes: an ECR pull-through cache for ghcr.io in the cluster's region.

Nodes then pull TGI from `<account>.dkr.ecr.<region>.amazonaws.com/ghcr/...` through the
VPC's ECR endpoints and the S3 gateway endpoint (no NAT traffic); the first pull of a tag
imports it from ghcr.io, later pulls are regional. The node role may import and create
repositories only under the cache's prefix.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components.iam import document

GHCR, CACHE_PREFIX = "ghcr.io", "ghcr"


def mirrored(image: str, mirrors: dict[str, str]) -> str:
    """`image` pulled through its registry's mirror when there is one."""
    registry, _, rest = image.partition("/")
    return f"{mirrors[registry]}/{rest}" if registry in mirrors else image


def pull_through_policy(region: str, account_id: str) -> str:
    return document([{
        "Sid": "PullThroughCache", "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"],
        "Resource": f"arn:aws:ecr:{region}:{account_id}:repository/{CACHE_PREFIX}/*"}])


class ImageCache(pulumi.ComponentResource):
    """`mirrors` maps an upstream registry to its regional prefix (empty when off)."""

    def __init__(self, name: str, *, credential_arn: str | None, region: str, account_id: str,
                 node_role_name: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:images:ImageCache", name, None, opts)
        self.mirrors: dict[str, str] = {}
        if credential_arn:
            child = pulumi.ResourceOptions(parent=self)
            aws.ecr.PullThroughCacheRule(
                f"{name}-ghcr", ecr_repository_prefix=CACHE_PREFIX, upstream_registry_url=GHCR,
                credential_arn=credential_arn, opts=child)
            aws.iam.RolePolicy(f"{name}-nodes", role=node_role_name,
                               policy=pull_through_policy(region, account_id), opts=child)
            self.mirrors[GHCR] = f"{account_id}.dkr.ecr.{region}.amazonaws.com/{CACHE_PREFIX}"
        self.register_outputs({"mirrors": self.mirrors})
