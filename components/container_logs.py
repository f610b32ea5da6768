"""Where container logs (and so the gateway's audit lines) land: CloudWatch log groups that
carry our KMS key and a retention period.

The collector that fills the application group is Fluent Bit, installed by the workloads
stack (components/log_shipping.py) with an IRSA role that may write streams into that group
only (components/workload_roles.py). A collector that creates a missing group creates it
unencrypted and never expiring, so the groups are created here first and the collector's
`autoCreateGroup` stays off.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

#: Log groups under the Container Insights naming: application (container stdout, incl. the
#: gateway's audit lines; Fluent Bit writes it), host, dataplane (kubelet, kube-proxy,
#: containerd) and performance (metrics as logs), kept ready for Container Insights.
LOG_KINDS = ("application", "host", "dataplane", "performance")


def container_log_group_names(cluster_name: str) -> list[str]:
    return [f"/aws/containerinsights/{cluster_name}/{kind}" for kind in LOG_KINDS]


def application_log_group_name(cluster_name: str) -> str:
    """The group container stdout is shipped to (the gateway's audit lines among it)."""
    return container_log_group_names(cluster_name)[0]


@dataclass(frozen=True)
class ContainerLogsArgs:
    cluster_name: str
    retention_days: int
    kms_key_arn: pulumi.Input[str]


class ContainerLogs(pulumi.ComponentResource):
    """Encrypted, retained log groups for container logs; `application_log_group` is the
    name of the group the collector writes."""

    application_log_group: pulumi.Output[str]

    def __init__(self, name: str, args: ContainerLogsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:observability:ContainerLogs", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        groups = [aws.cloudwatch.LogGroup(
            f"{name}-{kind}", name=group, retention_in_days=args.retention_days,
            kms_key_id=args.kms_key_arn, opts=child)
            for kind, group in zip(LOG_KINDS, container_log_group_names(args.cluster_name), strict=True)]
        self.application_log_group = groups[0].name
        self.register_outputs({"applicationLogGroup": self.application_log_group})
