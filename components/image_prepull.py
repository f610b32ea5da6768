"""Pull model-server images onto GPU nodes as they join, before a model pod needs them.

A DaemonSet on every GPU node whose init containers are the images (each runs `true` and
exits); its main container is a pause container that holds the pod, so the images stay
referenced and the kubelet's image garbage collection keeps them. A node that joins for
one model is then warm for the next, and a rollout to a new TGI tag pulls on every GPU node
at once instead of node by node.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.gpu_nodes import GPU_SHAPE_LABEL, GPU_TAINT_KEY

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


class ImagePrepull(pulumi.ComponentResource):
    def __init__(self, name: str, *, namespace: str, images: list[pulumi.Input[str]],
                 after: list[pulumi.Resource] | None = None, opts: pulumi.ResourceOptions | None = None):
        """`after`: what the DaemonSet itself waits for (its Namespace): a component's own
        dependsOn does not hold its children back."""
        super().__init__("llmops:images:ImagePrepull", name, None, opts)
        labels = {"app.kubernetes.io/name": "image-prepull", "app.kubernetes.io/part-of": "llmops"}
        restricted = k8s.core.v1.SecurityContextArgs(
            allow_privilege_escalation=False, run_as_non_root=True, run_as_user=65532,
            read_only_root_filesystem=True, capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))
        tiny = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
        pulls = [k8s.core.v1.ContainerArgs(name=f"pull-{i}", image=image, command=["true"],
                                           resources=tiny, security_context=restricted)
                 for i, image in enumerate(images)]
        k8s.apps.v1.DaemonSet(
            name, metadata=k8s.meta.v1.ObjectMetaArgs(
                name="image-prepull", namespace=namespace, labels=labels,
                # it only needs to exist: the engine must not wait for 10 GB pulls on every node
                annotations={"pulumi.com/skipAwait": "true"}),
            spec=k8s.apps.v1.DaemonSetSpecArgs(
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
                    spec=k8s.core.v1.PodSpecArgs(
                        automount_service_account_token=False,
                        init_containers=pulls,
                        containers=[k8s.core.v1.ContainerArgs(
                            name="hold", image=PAUSE_IMAGE, resources=tiny,
                            security_context=restricted)],
                        tolerations=[k8s.core.v1.TolerationArgs(
                            key=GPU_TAINT_KEY, operator="Exists", effect="NoSchedule")],
                        affinity=k8s.core.v1.AffinityArgs(node_affinity=k8s.core.v1.NodeAffinityArgs(
                            required_during_scheduling_ignored_during_execution=k8s.core.v1.NodeSelectorArgs(
                                node_selector_terms=[k8s.core.v1.NodeSelectorTermArgs(match_expressions=[
                                    k8s.core.v1.NodeSelectorRequirementArgs(
                                        key=GPU_SHAPE_LABEL, operator="Exists")])])))))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=after or []))
        self.register_outputs({})
