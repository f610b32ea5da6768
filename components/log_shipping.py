"""Container logs to CloudWatch: Fluent Bit (chart aws-for-fluent-bit) on every node.

Why this collector: its version is verified (components/data/verified_pins.yaml), so it
ships by default; the EKS add-on it replaces could not be pinned offline and stayed off.
Every container's stdout, the gateway's JSON audit lines among it, is tailed from
/var/log/containers on each node and written to the platform's application log group, which
the platform created with our KMS key and a retention period: the chart never creates a
group and never sets retention. It authenticates through an IRSA role that may only write
streams into that group (components/iam.log_writer_policy).

Values use only keys of the chart's values.yaml at its pinned version (aws/eks-charts commit
2942cdce0d98bd257822c64520779a05c25df2c2, stable/aws-for-fluent-bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_nodes import GPU_TAINT_KEY
from components.nodepools import TRAFFIC_TAINT
from components.workload_roles import LOG_SHIPPER_ACCOUNT

CHART, CHART_VERSION = "aws-for-fluent-bit", "0.2.0"  # appVersion 3.2.1
REPO = "https://aws.github.io/eks-charts"
#: The chart's default image, pinned here so a values change cannot float it. Public ECR:
#: the pull-through cache (components/image_cache.py) mirrors ghcr.io only.
IMAGE, IMAGE_TAG = "public.ecr.aws/aws-observability/aws-for-fluent-bit", "3.2.1"
RELEASE = "aws-for-fluent-bit"
#: Every container's log file on a node (symlinks into /var/log/pods): the gateway's too.
CONTAINER_LOGS = "/var/log/containers/*.log"
#: Stream = prefix + tag, and the tag is kube.var.log.containers.<pod>_<namespace>_<container>-<id>.log:
#: one stream per container of each pod.
STREAM_PREFIX = "fluentbit-"
#: Outputs the chart can also render; none of them may ship logs elsewhere.
OTHER_OUTPUTS = ("cloudWatch", "firehose", "kinesis", "kinesis_streams", "elasticsearch", "s3",
                 "opensearch")
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


def fluent_bit_values(region: str, log_group: pulumi.Input[str],
                      role_arn: pulumi.Input[str]) -> dict[str, Any]:
    """Chart values: tail all container logs, enrich with pod metadata, write one group."""
    return {
        "image": {"repository": IMAGE, "tag": IMAGE_TAG, "pullPolicy": "IfNotPresent"},
        "input": {"enabled": True, "path": CONTAINER_LOGS},
        # kube metadata from the API server; no pod may opt out of shipping by annotation
        # (fluentbit.io/exclude), or a workload could hide its own audit trail
        "filter": {"enabled": True, "k8sLoggingExclude": "Off"},
        "cloudWatchLogs": {
            "enabled": True, "region": region, "logGroupName": log_group,
            "logStreamPrefix": STREAM_PREFIX,
            # the group exists (KMS key, retention): never create one, never set retention
            "autoCreateGroup": False,
        },
        **{output: {"enabled": False} for output in OTHER_OUTPUTS},
        "serviceAccount": {"create": True, "name": LOG_SHIPPER_ACCOUNT[1],
                           "annotations": {ROLE_ANNOTATION: role_arn}},
        # every node: system nodes carry no taint, GPU nodes (TGI) the first, traffic nodes
        # (the gateway, the routers) the second
        "tolerations": [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"},
                        {"key": TRAFFIC_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-node-critical",
        "containerSecurityContext": {"allowPrivilegeEscalation": False,
                                     "seccompProfile": {"type": "RuntimeDefault"}},
        # only the host path it reads (and keeps its offsets DB in); containerd needs no
        # /var/lib/docker/containers, the chart's other default mount
        "volumes": [{"name": "varlog", "hostPath": {"path": "/var/log"}}],
        "volumeMounts": [{"name": "varlog", "mountPath": "/var/log"}],
        "resources": {"requests": {"cpu": "50m", "memory": "100Mi"},
                      "limits": {"cpu": "500m", "memory": "250Mi"}},
    }


@dataclass(frozen=True)
class LogShippingArgs:
    region: str
    log_group: pulumi.Input[str]      # platform output applicationLogGroup
    role_arn: pulumi.Input[str]       # platform output workloadRoleArns.logShipper
    #: the node agents' namespace (PSA privileged: hostPath), which its role trusts
    after: Sequence[pulumi.Resource] = ()


class LogShipping(pulumi.ComponentResource):
    """Fluent Bit as a DaemonSet, shipping container logs to the application log group."""

    def __init__(self, name: str, args: LogShippingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:observability:LogShipping", name, None, opts)
        k8s.helm.v3.Release(
            f"{name}-{RELEASE}", name=RELEASE, namespace=LOG_SHIPPER_ACCOUNT[0], chart=CHART,
            version=CHART_VERSION, repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=REPO),
            values=fluent_bit_values(args.region, args.log_group, args.role_arn),
            timeout=600, cleanup_on_fail=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        self.register_outputs({})
