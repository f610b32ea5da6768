"""GPU node pools: one EKS managed node group per pool, tainted for GPU work only, with the
tags cluster-autoscaler needs to scale a pool up from zero."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.launch_template import node_launch_template
from stacks.config.gpu import GpuPool

GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT = {"key": GPU_TAINT_KEY, "value": "true", "effect": "NO_SCHEDULE"}
POOL_LABEL = "llmops.io/gpu-pool"
CAPACITY_LABEL = "llmops.io/capacity-type"
#: What models select: spot and on-demand pools of one shape share it (stacks.config.gpu).
GPU_SHAPE_LABEL = "llmops.io/gpu-shape"
#: cluster-autoscaler's AWS GPU label: a node carrying it counts as a GPU node that is not
#: ready until the device plugin reports its GPUs, so the autoscaler does not add a second
#: node for the same pending pod while the first one is still starting.
ACCELERATOR_LABEL = "k8s.amazonaws.com/accelerator"
CA_TEMPLATE = "k8s.io/cluster-autoscaler/node-template"


def accelerator(pool: GpuPool) -> str:
    """The accelerator label value: the GPU model(s) of the pool, e.g. nvidia-a10g or
    nvidia-a10g-l4 for a pool that mixes equal-shaped GPUs."""
    return "nvidia-" + "-".join(m.lower() for m in pool.gpu_models)


def pool_labels(pool: GpuPool) -> dict[str, str]:
    return {POOL_LABEL: pool.name,
            CAPACITY_LABEL: "spot" if pool.capacity_type == "SPOT" else "on-demand",
            GPU_SHAPE_LABEL: pool.shape,
            ACCELERATOR_LABEL: accelerator(pool)}


def scale_from_zero_tags(pool: GpuPool) -> dict[str, str]:
    """What cluster-autoscaler cannot learn from an empty group: GPUs, labels, taints."""
    tags = {f"{CA_TEMPLATE}/resources/nvidia.com/gpu": str(pool.gpus_per_node),
            f"{CA_TEMPLATE}/taint/{GPU_TAINT_KEY}": "true:NoSchedule"}
    tags.update({f"{CA_TEMPLATE}/label/{k}": v for k, v in pool_labels(pool).items()})
    return tags


def node_group_name(cluster_name: str, pool: GpuPool) -> str:
    return f"{cluster_name}-{pool.name}"


@dataclass(frozen=True)
class GpuNodePoolsArgs:
    pools: list[GpuPool]
    cluster_name: str
    cluster: pulumi.Input[str]  # the cluster's name as an output, to order creation
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[list[str]]
    resource_tags: dict[str, str]
    after: list[pulumi.Resource]  # the pod network's add-ons (Cluster.network_addons)


class GpuNodePools(pulumi.ComponentResource):
    """Every GPU pool of the environment."""

    def __init__(self, name: str, args: GpuNodePoolsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:gpu:GpuNodePools", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.node_groups: dict[str, aws.eks.NodeGroup] = {}
        for pool in args.pools:
            template = node_launch_template(
                f"{name}-{pool.name}", root_volume_gib=pool.root_volume,
                local_nvme=pool.has_local_nvme, instance_tags=args.resource_tags, opts=child)
            template_tags = scale_from_zero_tags(pool)
            group = aws.eks.NodeGroup(
                f"{name}-{pool.name}", cluster_name=args.cluster,
                node_group_name=node_group_name(args.cluster_name, pool),
                node_role_arn=args.node_role_arn, subnet_ids=args.subnet_ids,
                instance_types=pool.instance_types, capacity_type=pool.capacity_type,
                ami_type="AL2023_x86_64_NVIDIA",
                scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                    min_size=pool.min_size, max_size=pool.max_size, desired_size=pool.desired_size),
                update_config=aws.eks.NodeGroupUpdateConfigArgs(
                    max_unavailable_percentage=pool.max_unavailable_percentage),
                labels=pool_labels(pool),
                taints=[aws.eks.NodeGroupTaintArgs(**GPU_TAINT)],
                launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                    id=template.id, version=template.latest_version.apply(str)),
                tags=template_tags,
                # replace nodes whose GPUs or kubelet report unhealthy instead of paying for them
                node_repair_config=aws.eks.NodeGroupNodeRepairConfigArgs(enabled=True),
                # the autoscaler owns the size once created; don't fight it on every `up`
                opts=pulumi.ResourceOptions(parent=self, depends_on=args.after,
                                            ignore_changes=["scalingConfig.desiredSize"]))
            # Managed node groups don't copy their tags to the Auto Scaling group, where
            # cluster-autoscaler reads node templates; tag the group directly.
            asg_name = group.resources.apply(lambda r: r[0].autoscaling_groups[0].name)
            for i, (key, value) in enumerate(sorted(template_tags.items())):
                aws.autoscaling.Tag(
                    f"{name}-{pool.name}-template-{i}", autoscaling_group_name=asg_name,
                    tag=aws.autoscaling.TagTagArgs(key=key, value=value, propagate_at_launch=False),
                    opts=child)
            self.node_groups[pool.name] = group
        self.register_outputs({"nodeGroups": {k: g.arn for k, g in self.node_groups.items()}})
