"""The cluster's default StorageClass: encrypted gp3 on the EBS CSI driver.

EKS creates no gp3 class (and, since Kubernetes 1.30, marks no class as default), so a PVC
naming `gp3` (Prometheus, Alertmanager) would stay Pending forever without this one.
WaitForFirstConsumer binds the volume in the zone where its pod was scheduled.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

GP3 = "gp3"
EBS_CSI = "ebs.csi.aws.com"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


class EncryptedGp3(pulumi.ComponentResource):
    """`name` is what PVCs reference; the EBS CSI add-on (platform stack) provisions it."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:storage:EncryptedGp3", name, None, opts)
        self.storage_class = k8s.storage.v1.StorageClass(
            name, metadata=k8s.meta.v1.ObjectMetaArgs(
                name=GP3, annotations={DEFAULT_CLASS_ANNOTATION: "true"}),
            provisioner=EBS_CSI, volume_binding_mode="WaitForFirstConsumer",
            allow_volume_expansion=True, reclaim_policy="Delete",
            # encrypted with the account's EBS key (aws/ebs), which the add-on's managed
            # policy can use; a customer-managed key would need a grant for the driver role
            parameters={"type": "gp3", "encrypted": "true", "fsType": "ext4"},
            opts=pulumi.ResourceOptions(parent=self))
        self.name = GP3
        self.register_outputs({"name": self.name})
