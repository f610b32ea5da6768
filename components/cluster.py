"""The EKS cluster: encrypted secrets, control-plane logs, private endpoint, API access
entries, an OIDC provider for IRSA, pinned add-ons and a system node group.

Creation order on a fresh account: cluster -> OIDC provider -> vpc-cni and kube-proxy
(DaemonSet add-ons, created before any node so a node's first pod network comes from the
pinned CNI running with its own IRSA role) -> the system node group -> coredns and the EBS
CSI driver (Deployments, which need nodes). GPU nodes are Karpenter's (components/gpu_nodes.py):
they join with their own role, admitted by an EC2_LINUX access entry, and find their
subnets and security group by the `karpenter.sh/discovery` tag."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import IrsaRole, IrsaRoleArgs, service_trust_policy
from components.launch_template import node_launch_template
from vocabulary.config.cluster import ClusterConfig

MANAGED = "arn:aws:iam::aws:policy/"
CLUSTER_ADMIN_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
#: The VPC CNI enforces NetworkPolicies (its node agent, eBPF) only when asked: the add-on's
#: `enableNetworkPolicy` (a string, as in the add-on's configuration schema; v1.14.0-eksbuild.3+).
VPC_CNI_CONFIGURATION = {"enableNetworkPolicy": "true"}
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly",
                 "AmazonSSMManagedInstanceCore")
#: The system node group's labels: what controllers (Karpenter, KEDA, metrics-server...) select.
SYSTEM_NODES = {"llmops.io/node-role": "system"}
#: The tag Karpenter's EC2NodeClass selects subnets and security groups by.
DISCOVERY_TAG = "karpenter.sh/discovery"


@dataclass(frozen=True)
class ClusterArgs:
    config: ClusterConfig
    cluster_name: str
    region: str
    account_id: str
    private_subnet_ids: pulumi.Input[list[str]]
    resource_tags: dict[str, str]
    log_key_arn: pulumi.Input[str] | None = None  # KMS key for the control-plane log group


def control_plane_log_group_name(cluster_name: str) -> str:
    """The group EKS writes control-plane logs to (it creates it if absent, unencrypted)."""
    return f"/aws/eks/{cluster_name}/cluster"


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with `aws eks get-token` (no static credentials)."""
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": name,
        "clusters": [{"name": name, "cluster": {"server": endpoint,
                                                "certificate-authority-data": ca_data}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "users": [{"name": name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region]}}}],
    })


class Cluster(pulumi.ComponentResource):
    """An EKS cluster ready for GPU node pools and IRSA workloads."""

    name: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:cluster:Cluster", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        secrets_key = aws.kms.Key(
            f"{name}-secrets", description=f"EKS secrets envelope encryption for {args.cluster_name}",
            enable_key_rotation=True, deletion_window_in_days=30, opts=child)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{args.cluster_name}-eks-secrets",
                      target_key_id=secrets_key.key_id, opts=child)
        # Created before the cluster so EKS writes into a group with a retention period.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-control-plane", name=control_plane_log_group_name(args.cluster_name),
            retention_in_days=cfg.log_retention_days, kms_key_id=args.log_key_arn, opts=child)
        role = aws.iam.Role(f"{name}-cluster",
                            assume_role_policy=service_trust_policy("eks.amazonaws.com",
                                                                    args.account_id),
                            opts=child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=role.name, policy_arn=MANAGED + "AmazonEKSClusterPolicy",
            opts=child)

        cluster = aws.eks.Cluster(
            name, name=args.cluster_name, version=cfg.version, role_arn=role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.private_subnet_ids, endpoint_private_access=True,
                endpoint_public_access=cfg.endpoint_public_access,
                public_access_cidrs=cfg.public_access_cidrs or None),
            enabled_cluster_log_types=list(cfg.log_types),
            encryption_config=aws.eks.ClusterEncryptionConfigArgs(
                provider=aws.eks.ClusterEncryptionConfigProviderArgs(key_arn=secrets_key.arn),
                resources=["secrets"]),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=False),
            upgrade_policy=aws.eks.ClusterUpgradePolicyArgs(support_type=cfg.support_type),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, attachment]))

        for i, principal in enumerate(cfg.admin_role_arns):
            grant_cluster_admin(f"{name}-admin-{i}", cluster.name, principal, parent=self)

        issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer,
                                             client_id_lists=["sts.amazonaws.com"], opts=child)

        node_role = aws.iam.Role(f"{name}-node",
                                 assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
                                 opts=child)
        for policy in NODE_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=node_role.name,
                                         policy_arn=MANAGED + policy, opts=child)

        # GPU nodes (Karpenter's) get a role of their own: a managed node group already holds
        # an access entry for its role, and an entry per principal is all EKS allows
        gpu_node_role = aws.iam.Role(f"{name}-gpu-node",
                                     assume_role_policy=service_trust_policy("ec2.amazonaws.com"),
                                     opts=child)
        for policy in NODE_POLICIES:
            aws.iam.RolePolicyAttachment(f"{name}-gpu-node-{policy}", role=gpu_node_role.name,
                                         policy_arn=MANAGED + policy, opts=child)
        gpu_node_access = aws.eks.AccessEntry(
            f"{name}-gpu-node", cluster_name=cluster.name, principal_arn=gpu_node_role.arn,
            type="EC2_LINUX", opts=child)
        aws.ec2.Tag(f"{name}-discovery", resource_id=cluster.vpc_config.apply(
            lambda v: v.cluster_security_group_id), key=DISCOVERY_TAG, value=args.cluster_name,
            opts=child)

        system_lt = node_launch_template(
            f"{name}-system", root_volume_gib=cfg.system_nodes.root_volume_gib,
            instance_tags=args.resource_tags, opts=child)
        network_addons = self._network_addons(name, args, cluster, oidc, issuer)
        system = aws.eks.NodeGroup(
            f"{name}-system", cluster_name=cluster.name, node_group_name=f"{args.cluster_name}-system",
            node_role_arn=node_role.arn, subnet_ids=args.private_subnet_ids,
            instance_types=cfg.system_nodes.instance_types, capacity_type="ON_DEMAND",
            ami_type="AL2023_x86_64_STANDARD",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=cfg.system_nodes.min_size, max_size=cfg.system_nodes.max_size,
                desired_size=cfg.system_nodes.desired_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=system_lt.id, version=system_lt.latest_version.apply(str)),
            labels=dict(SYSTEM_NODES),
            node_repair_config=aws.eks.NodeGroupNodeRepairConfigArgs(enabled=True),
            opts=pulumi.ResourceOptions(parent=self, depends_on=network_addons))
        self._workload_addons(name, args, cluster, oidc, issuer, system)

        self.name = cluster.name
        self.endpoint = cluster.endpoint
        self.security_group_id = cluster.vpc_config.apply(lambda v: v.cluster_security_group_id)
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer_url = issuer
        self.node_role_arn = node_role.arn
        self.node_role_name = node_role.name
        #: what Karpenter's nodes run as (EC2NodeClass `role`), admitted by its access entry
        self.gpu_node_role_arn = gpu_node_role.arn
        self.gpu_node_role_name = gpu_node_role.name
        self.gpu_node_access = gpu_node_access
        self.secrets_key_arn = secrets_key.arn
        self.network_addons = network_addons
        #: what node-hosted add-ons must be created after
        self.system_nodes = system
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.certificate_authority.apply(lambda c: c.data),
        ).apply(lambda v: kubeconfig(v[0], v[1], v[2], args.region)))
        self.register_outputs({"name": self.name, "endpoint": self.endpoint,
                               "oidcProviderArn": self.oidc_provider_arn,
                               "kubeconfig": self.kubeconfig})

    def _network_addons(self, name, args: ClusterArgs, cluster, oidc, issuer) -> list[aws.eks.Addon]:
        """vpc-cni (with its IRSA role) and kube-proxy: DaemonSets every node needs at boot."""
        pins = args.config.addons
        cni_role = IrsaRole(f"{name}-vpc-cni", IrsaRoleArgs(
            oidc.arn, issuer, "kube-system", "aws-node",
            managed_policy_arns=[MANAGED + "AmazonEKS_CNI_Policy"]),
            opts=pulumi.ResourceOptions(parent=self))
        return [self._addon(name, cluster, "vpc-cni", pins.vpc_cni, cni_role.arn, [],
                            configuration=VPC_CNI_CONFIGURATION),
                self._addon(name, cluster, "kube-proxy", pins.kube_proxy, None, [])]

    def _workload_addons(self, name, args: ClusterArgs, cluster, oidc, issuer, system) -> None:
        """coredns and the EBS CSI driver: Deployments, so they need nodes to schedule on."""
        pins = args.config.addons
        ebs_role = IrsaRole(f"{name}-ebs-csi", IrsaRoleArgs(
            oidc.arn, issuer, "kube-system", "ebs-csi-controller-sa",
            managed_policy_arns=[MANAGED + "service-role/AmazonEBSCSIDriverPolicy"]),
            opts=pulumi.ResourceOptions(parent=self))
        self._addon(name, cluster, "coredns", pins.coredns, None, [system])
        self._addon(name, cluster, "aws-ebs-csi-driver", pins.aws_ebs_csi_driver, ebs_role.arn,
                    [system])

    def _addon(self, name, cluster, addon: str, version: str, role_arn, after,
               configuration: dict | None = None) -> aws.eks.Addon:
        return aws.eks.Addon(
            f"{name}-{addon}", cluster_name=cluster.name, addon_name=addon, addon_version=version,
            service_account_role_arn=role_arn,
            configuration_values=json.dumps(configuration) if configuration else None,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            opts=pulumi.ResourceOptions(parent=self, depends_on=after))


def grant_cluster_admin(name: str, cluster_name: pulumi.Input[str], principal_arn: pulumi.Input[str],
                        parent: pulumi.Resource) -> aws.eks.AccessPolicyAssociation:
    """An API access entry with the cluster-admin access policy (creator admin is off)."""
    entry = aws.eks.AccessEntry(name, cluster_name=cluster_name, principal_arn=principal_arn,
                                type="STANDARD", opts=pulumi.ResourceOptions(parent=parent))
    return aws.eks.AccessPolicyAssociation(
        name, cluster_name=cluster_name, principal_arn=principal_arn,
        policy_arn=CLUSTER_ADMIN_POLICY,
        access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(type="cluster"),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[entry]))
