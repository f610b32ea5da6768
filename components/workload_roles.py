"""IRSA roles for everything the workloads stack runs, created by the platform stack.

IAM is AWS API work, so it belongs to the platform stack (which runs anywhere); the
workloads stack only annotates service accounts with these ARNs. The namespaces and
service-account names here are the contract both stacks share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from components.iam import (
    IrsaRole,
    IrsaRoleArgs,
    external_dns_policy,
    karpenter_controller_policy,
    load_balancer_controller_policy,
    log_writer_policy,
    model_reader_policy,
)
from components.monitoring import NODE_AGENTS_NAMESPACE
from vocabulary.config.serving import ModelConfig

#: Karpenter's controller (components/gpu_nodes.py): kube-system, as upstream installs it.
KARPENTER_ACCOUNT = ("kube-system", "karpenter")
LOAD_BALANCER_CONTROLLER_ACCOUNT = ("kube-system", "aws-load-balancer-controller")
#: Fluent Bit (components/log_shipping.py): a node agent, it reads the host's /var/log.
LOG_SHIPPER_ACCOUNT = (NODE_AGENTS_NAMESPACE, "aws-for-fluent-bit")
#: external-dns (components/external_dns.py): keeps the gateway's host in its Route53 zone.
EXTERNAL_DNS_ACCOUNT = ("kube-system", "external-dns")


def model_reader_account(model: str) -> str:
    """The service account TGI pods of `model` run as."""
    return f"tgi-{model}"


@dataclass(frozen=True)
class WorkloadRolesArgs:
    cluster_name: str
    region: str
    account_id: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    serving_namespace: str
    models: list[ModelConfig]
    bucket_arn: pulumi.Input[str]
    key_arn: pulumi.Input[str]
    registry_prefix: str
    log_groups: Sequence[str]   # the groups the log shipper writes (they exist, encrypted)
    gpu_node_role_arn: pulumi.Input[str]     # the role Karpenter passes to GPU nodes
    interruption_queue_arn: pulumi.Input[str]  # the queue Karpenter reads
    hosted_zone_id: str = ""    # the gateway host's Route53 zone (external-dns writes only there)
    gateway_host: str = ""


class WorkloadRoles(pulumi.ComponentResource):
    """`arns` is what the workloads stack reads: karpenter, loadBalancerController,
    logShipper, models, and externalDns when a hosted zone is given."""

    def __init__(self, name: str, args: WorkloadRolesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:iam:WorkloadRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def role(suffix: str, namespace: str, account: str, policy) -> IrsaRole:
            return IrsaRole(f"{name}-{suffix}", IrsaRoleArgs(
                args.oidc_provider_arn, args.oidc_issuer_url, namespace, account, policy=policy),
                opts=child)

        karpenter = role("karpenter", *KARPENTER_ACCOUNT, pulumi.Output.all(
            args.gpu_node_role_arn, args.interruption_queue_arn).apply(
            lambda v: karpenter_controller_policy(args.cluster_name, args.region, args.account_id,
                                                  node_role_arn=v[0], queue_arn=v[1])))
        controller = role("lbc", *LOAD_BALANCER_CONTROLLER_ACCOUNT,
                          load_balancer_controller_policy(args.cluster_name, args.region,
                                                          args.account_id))
        shipper = role("log-shipper", *LOG_SHIPPER_ACCOUNT,
                       log_writer_policy(args.region, args.account_id, args.log_groups))
        readers = {}
        for model in args.models:
            prefix = f"{args.registry_prefix}models/{model.name}/"
            readers[model.name] = role(
                f"reader-{model.name}", args.serving_namespace, model_reader_account(model.name),
                pulumi.Output.all(args.bucket_arn, args.key_arn).apply(
                    lambda v, p=prefix: model_reader_policy(v[0], p, v[1], args.region))).arn
        self.arns = {"karpenter": karpenter.arn, "loadBalancerController": controller.arn,
                     "logShipper": shipper.arn, "models": readers}
        if args.hosted_zone_id:
            self.arns["externalDns"] = role("external-dns", *EXTERNAL_DNS_ACCOUNT, external_dns_policy(
                args.hosted_zone_id, args.gateway_host)).arn
        self.register_outputs({"arns": self.arns})
