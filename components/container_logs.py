"""Where container logs (and so the gateway's audit lines) go: CloudWatch Logs through the
EKS add-on `amazon-cloudwatch-observability` (CloudWatch agent + Fluent Bit).

Fluent Bit ships every file of /var/log/containers to `/aws/containerinsights/<cluster>/
application` and creates its log groups only if they do not exist; they are created here
first so they carry our KMS key and a retention period (Fluent Bit's would never expire).
The add-on itself is installed only when its version is pinned in config
(`llmops:cluster.addons.amazonCloudwatchObservability`): pick one with
`aws eks describe-addon-versions --addon-name amazon-cloudwatch-observability
--kubernetes-version <v>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import IrsaRole, IrsaRoleArgs

ADDON = "amazon-cloudwatch-observability"
#: The add-on's agent service account (namespace, name).
AGENT_ACCOUNT = ("amazon-cloudwatch", "cloudwatch-agent")
AGENT_POLICY = "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy"
#: Log groups Container Insights writes: application (container stdout, incl. gateway audit),
#: host, dataplane (kubelet, kube-proxy, containerd) and performance (metrics as logs).
LOG_KINDS = ("application", "host", "dataplane", "performance")


def container_log_group_names(cluster_name: str) -> list[str]:
    return [f"/aws/containerinsights/{cluster_name}/{kind}" for kind in LOG_KINDS]


@dataclass(frozen=True)
class ContainerLogsArgs:
    cluster_name: str
    cluster: pulumi.Input[str]          # the cluster's name output (orders after the cluster)
    retention_days: int
    kms_key_arn: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    addon_version: str | None           # None: groups only, no collector (see module doc)
    after: list[pulumi.Resource]        # the nodes the add-on's pods run on


class ContainerLogs(pulumi.ComponentResource):
    """Encrypted, retained log groups for container logs, and the collector that fills them."""

    def __init__(self, name: str, args: ContainerLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:observability:ContainerLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        groups = [aws.cloudwatch.LogGroup(
            f"{name}-{kind}", name=group, retention_in_days=args.retention_days,
            kms_key_id=args.kms_key_arn, opts=child)
            for kind, group in zip(LOG_KINDS, container_log_group_names(args.cluster_name), strict=True)]
        self.application_log_group = groups[0].name
        if args.addon_version:
            role = IrsaRole(f"{name}-agent", IrsaRoleArgs(
                args.oidc_provider_arn, args.oidc_issuer_url, *AGENT_ACCOUNT,
                managed_policy_arns=[AGENT_POLICY]), opts=child)
            aws.eks.Addon(
                f"{name}-{ADDON}", cluster_name=args.cluster, addon_name=ADDON,
                addon_version=args.addon_version, service_account_role_arn=role.arn,
                resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
                opts=pulumi.ResourceOptions(parent=self, depends_on=[*groups, *args.after]))
        self.register_outputs({"applicationLogGroup": self.application_log_group})
