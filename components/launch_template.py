"""Launch templates for EKS managed node groups (the system nodes): IMDSv2 only, encrypted
gp3 root volume. GPU nodes are Karpenter's: their EC2NodeClass does the same and builds the
instance-store RAID0 (components/nodepools.py)."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

ROOT_DEVICE = "/dev/xvda"  # AL2023 EKS AMIs


def node_launch_template(name: str, *, root_volume_gib: int,
                         instance_tags: Mapping[str, str],
                         opts: pulumi.ResourceOptions) -> aws.ec2.LaunchTemplate:
    """A launch template for a managed node group (instance types come from the group)."""
    return aws.ec2.LaunchTemplate(
        name,
        description=f"EKS nodes of {name}: IMDSv2, encrypted gp3 root",
        update_default_version=True,
        metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
            http_endpoint="enabled", http_tokens="required",
            # 1 hop: pods in their own network namespace cannot reach IMDS (and so cannot
            # take the node role); every workload gets credentials through IRSA. Host-network
            # pods (aws-node, kube-proxy) still reach it.
            http_put_response_hop_limit=1),
        block_device_mappings=[aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
            device_name=ROOT_DEVICE,
            ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                volume_size=root_volume_gib, volume_type="gp3", encrypted="true",
                delete_on_termination="true", iops=3000, throughput=125))],
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(instance_tags))
            for kind in ("instance", "volume")],
        opts=opts)
