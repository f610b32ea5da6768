"""Launch templates for EKS managed node groups: IMDSv2 only, encrypted gp3 root volume,
and instance-store NVMe prepared as a RAID0 volume for model weights where present."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws

ROOT_DEVICE = "/dev/xvda"  # AL2023 EKS AMIs

#: nodeadm (AL2023) NodeConfig: put kubelet/containerd state on the instance-store RAID0
#: mounted under /mnt/k8s-disks, so pulled weights land on local NVMe, not EBS.
NVME_NODECONFIG = """MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="LLMOPS"

--LLMOPS
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  instance:
    localStorage:
      strategy: RAID0

--LLMOPS--
"""


def node_user_data(local_nvme: bool) -> str | None:
    """Base64 user data for the node, or None when there is nothing to prepare."""
    return base64.b64encode(NVME_NODECONFIG.encode()).decode() if local_nvme else None


def node_launch_template(name: str, *, root_volume_gib: int, local_nvme: bool,
                         instance_tags: Mapping[str, str],
                         opts: pulumi.ResourceOptions) -> aws.ec2.LaunchTemplate:
    """A launch template for a managed node group (instance types come from the group)."""
    return aws.ec2.LaunchTemplate(
        name,
        description=f"EKS nodes of {name}: IMDSv2, encrypted gp3 root"
                    + (", NVMe RAID0 for weights" if local_nvme else ""),
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
        user_data=node_user_data(local_nvme),
        tag_specifications=[
            aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags=dict(instance_tags))
            for kind in ("instance", "volume")],
        opts=opts)
