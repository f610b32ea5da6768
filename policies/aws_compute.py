"""EKS control plane and the launch templates GPU nodes boot from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules import COMPUTED, Rule, RuleContext, as_list, computed, get, internet_wide, known, truthy

CLUSTER = "aws:eks/cluster:Cluster"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"


def check_control_plane_logging(_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    enabled = props.get("enabledClusterLogTypes")
    if computed(enabled):
        return []
    missing = [t for t in ctx["requiredLogTypes"] if t not in as_list(enabled)]
    if missing:
        return [f"control-plane log types not enabled: {', '.join(missing)}"]
    return []


def check_secrets_encryption(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    configs = as_list(props.get("encryptionConfig"))  # an object in v7; a list in older SDKs
    for config in configs:
        if not known(config):
            return []
        if "secrets" in as_list(config.get("resources")) and get(config, "provider.keyArn"):
            return []
    return ["Kubernetes secrets are not envelope-encrypted with a KMS key (encryptionConfig)"]


def check_public_endpoint(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    vpc = props.get("vpcConfig")
    if not isinstance(vpc, Mapping):
        return []
    public = vpc.get("endpointPublicAccess")
    public = True if public is None else public  # AWS default: the endpoint is public
    if public is False or not known(public):
        return []
    cidrs = vpc.get("publicAccessCidrs")
    if cidrs == COMPUTED:
        return []
    if not cidrs:
        return ["the API endpoint is public and publicAccessCidrs is unset, which AWS opens "
                "to 0.0.0.0/0"]
    open_to = internet_wide(as_list(cidrs))
    if open_to:
        return [f"the public API endpoint is open to {', '.join(open_to)}"]
    return []


def check_imdsv2(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    tokens = get(props, "metadataOptions.httpTokens")
    if tokens == "required" or (tokens is not None and not known(tokens)):
        return []
    if get(props, "metadataOptions.httpEndpoint") == "disabled":
        return []
    return [f"instance metadata allows IMDSv1 (metadataOptions.httpTokens is {tokens or 'unset'}, "
            "not 'required')"]


def check_encrypted_volumes(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    mappings = as_list(props.get("blockDeviceMappings"))
    if not mappings:
        return ["no blockDeviceMappings: the root volume inherits the AMI's (possibly "
                "unencrypted) settings"]
    problems = []
    for mapping in mappings:
        ebs = mapping.get("ebs") if isinstance(mapping, Mapping) else None
        if ebs is None:
            continue  # instance-store (NVMe) mappings carry no EBS settings
        encrypted = ebs.get("encrypted")
        if not computed(encrypted) and not truthy(encrypted):
            problems.append(f"EBS volume {mapping.get('deviceName', '?')} is not encrypted")
    return problems


RULES = [
    Rule(
        name="eks-control-plane-logging",
        description="The EKS control plane ships api, audit and authenticator logs to CloudWatch.",
        remediation="Set enabled_cluster_log_types=['api', 'audit', 'authenticator'] (or more) "
        "on aws.eks.Cluster.",
        resource_types=(CLUSTER,),
        check=check_control_plane_logging,
        config_schema={"requiredLogTypes": {
            "type": "array", "items": {"type": "string"},
            "default": ["api", "audit", "authenticator"]}},
    ),
    Rule(
        name="eks-secrets-encryption",
        description="EKS envelope-encrypts Kubernetes secrets with a customer-managed KMS key.",
        remediation="Set encryption_config={'resources': ['secrets'], 'provider': {'key_arn': key.arn}} "
        "on aws.eks.Cluster.",
        resource_types=(CLUSTER,),
        check=check_secrets_encryption,
    ),
    Rule(
        name="eks-endpoint-not-public",
        description="The EKS API endpoint is private, or public only to listed CIDRs, never 0.0.0.0/0 "
        "(nor CIDRs that together cover more than a /8 of the internet).",
        remediation="Set vpc_config endpoint_public_access=False and endpoint_private_access=True, or "
        "restrict public_access_cidrs to your office/VPN ranges.",
        resource_types=(CLUSTER,),
        check=check_public_endpoint,
    ),
    Rule(
        name="launch-template-imdsv2",
        description="Launch templates require IMDSv2 session tokens, which blocks SSRF credential theft.",
        remediation="Set metadata_options={'http_tokens': 'required', 'http_put_response_hop_limit': 2} "
        "on aws.ec2.LaunchTemplate (hop limit 2 lets pods reach IMDS only if you need it).",
        resource_types=(LAUNCH_TEMPLATE,),
        check=check_imdsv2,
    ),
    Rule(
        name="launch-template-encrypted-volumes",
        description="Launch templates declare their EBS volumes, all encrypted.",
        remediation="Add block_device_mappings for the root volume with ebs={'encrypted': 'true', "
        "'kms_key_id': key.arn, ...}.",
        resource_types=(LAUNCH_TEMPLATE,),
        check=check_encrypted_volumes,
    ),
]
