"""external-dns: keeps the gateway's host (`llmops:gateway.host`) pointed at the load balancer
the AWS Load Balancer Controller made for the gateway's Ingress, in one Route53 zone
(`llmops:gateway.hostedZoneId`).

Chosen over a Route53 alias record in the stack: the controller creates the ALB after the
Ingress, asynchronously, and replaces it when its annotations change; external-dns follows
the Ingress's status and updates the record whenever that happens, while a record written at
`up` time goes stale until the next `up`. It also keeps DNS writes off the in-VPC runner's
role: only external-dns's IRSA role may change records, in that zone, for that host
(components/iam.external_dns_policy).

Values are checked against kubernetes-sigs/external-dns tag external-dns-helm-chart-1.21.1
(commit 9f26451346774099a8b3e3e5cc46a53bf2fd1461), charts/external-dns/values.yaml and
templates/: `namespaced` + `sourceNamespace` render `--namespace` and a Role in that
namespace only (clusterrole.yaml), so it watches the gateway's Ingress and nothing else;
`extraArgs` renders `--zone-id-filter` (flag of v0.21.0 pkg/apis/externaldns/types.go).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import SYSTEM_NODES
from components.workload_roles import EXTERNAL_DNS_ACCOUNT
from vocabulary.config.cluster import HelmPin

REPO = "https://kubernetes-sigs.github.io/external-dns/"  # charts/external-dns/README.md
NAME = "external-dns"


@dataclass(frozen=True)
class ExternalDnsArgs:
    pin: HelmPin
    hosted_zone_id: str
    source_namespace: str              # where the gateway's Ingress lives
    owner_id: str                      # the TXT registry's owner: this cluster
    region: str
    role_arn: pulumi.Input[str]        # IRSA role from the platform stack (WorkloadRoles)
    after: Sequence[pulumi.Resource] = field(default_factory=tuple)  # the source namespace


def external_dns_values(args: ExternalDnsArgs) -> dict[str, Any]:
    """Ingresses of one namespace -> records in one zone; upsert-only (it never deletes a
    record), TXT ownership records so it changes only what it created."""
    account = EXTERNAL_DNS_ACCOUNT[1]
    return {
        "image": {"tag": args.pin.image_tag},
        "serviceAccount": {"create": True, "name": account, "annotations": {
            "eks.amazonaws.com/role-arn": args.role_arn}},
        "provider": {"name": "aws"},
        "sources": ["ingress"],
        "namespaced": True, "sourceNamespace": args.source_namespace,
        "policy": "upsert-only",
        "registry": "txt", "txtOwnerId": args.owner_id,
        "extraArgs": {"zone-id-filter": args.hosted_zone_id},
        # Route53 is global, the STS endpoint for the IRSA token exchange is regional
        "env": [{"name": "AWS_DEFAULT_REGION", "value": args.region}],
        "nodeSelector": dict(SYSTEM_NODES),
        "priorityClassName": "system-cluster-critical",
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"memory": "128Mi"}},
    }


class ExternalDns(pulumi.ComponentResource):
    """The pinned external-dns release, after the namespace whose Ingress it watches (its
    Role is created there)."""

    def __init__(self, name: str, args: ExternalDnsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gateway:ExternalDns", name, None, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-release", name=NAME, namespace=EXTERNAL_DNS_ACCOUNT[0], chart=NAME,
            version=args.pin.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPO),
            values=external_dns_values(args),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({})
