"""The EKS cluster, GPU pools and autoscaling each environment gets."""

from __future__ import annotations

import json

import pytest

from llmops.offline.plan import run_plan
from stacks.config import ConfigError
from tests.conftest import STACKS

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"


def _gpu_groups(plan):
    return [g for g in plan.of_type(NODE_GROUP) if g.inputs["amiType"] == "AL2023_x86_64_NVIDIA"]


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_logs_the_control_plane_and_encrypts_secrets_with_a_rotating_key(plans, stack):
    plan = plans[stack]
    cluster = plan.one("aws:eks/cluster:Cluster").inputs
    assert {"api", "audit", "authenticator"} <= set(cluster["enabledClusterLogTypes"])
    key = plan.one("aws:kms/key:Key", "cluster-secrets").inputs
    assert key["enableKeyRotation"] is True
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    assert cluster["encryptionConfig"]["provider"]["keyArn"].startswith("arn:aws:kms:")
    assert cluster["version"] == "1.33"
    assert cluster["accessConfig"] == {"authenticationMode": "API",
                                       "bootstrapClusterCreatorAdminPermissions": False}


def test_control_plane_log_group_has_retention_and_the_eks_name(plans):
    group = plans["prod"].one("aws:cloudwatch/logGroup:LogGroup", "cluster-control-plane").inputs
    assert group == {**group, "name": "/aws/eks/llmops-prod/cluster", "retentionInDays": 365}


def test_prod_endpoint_is_private_only(plans):
    vpc = plans["prod"].one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc


def test_dev_public_endpoint_is_limited_to_configured_cidrs(plans):
    vpc = plans["dev"].one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_admin_roles_get_access_entries_with_cluster_admin(plans):
    plan = plans["prod"]
    entry = plan.one("aws:eks/accessEntry:AccessEntry", "cluster-admin-0").inputs
    association = plan.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
                           "cluster-admin-0").inputs
    assert entry["principalArn"] == "arn:aws:iam::123456789012:role/platform-admin"
    assert association["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert association["accessScope"] == {"type": "cluster"}


def test_pinned_addons_with_irsa_for_cni_and_ebs(plans):
    plan = plans["staging"]
    addons = {a.inputs["addonName"]: a.inputs for a in plan.of_type("aws:eks/addon:Addon")}
    assert set(addons) == {"vpc-cni", "coredns", "kube-proxy", "aws-ebs-csi-driver"}
    assert all(a["addonVersion"].startswith("v") and "eksbuild" in a["addonVersion"]
               for a in addons.values())
    assert addons["aws-ebs-csi-driver"]["serviceAccountRoleArn"].startswith("arn:aws:iam::")
    assert addons["vpc-cni"]["serviceAccountRoleArn"].startswith("arn:aws:iam::")
    assert "serviceAccountRoleArn" not in addons["coredns"]


def test_irsa_trust_is_bound_to_one_service_account_and_audience(plans):
    plan = plans["dev"]
    role = next(r for r in plan.of_type("aws:iam/role:Role") if r.name == "cluster-ebs-csi")
    statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    issuer = plan.outputs["oidcProviderArn"].split("oidc-provider/")[1]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": plan.outputs["oidcProviderArn"]}
    assert statement["Condition"] == {"StringEquals": {
        f"{issuer}:sub": "system:serviceaccount:kube-system:ebs-csi-controller-sa",
        f"{issuer}:aud": "sts.amazonaws.com"}}


def test_system_node_group_is_small_and_on_demand(plans):
    system = plans["prod"].one(NODE_GROUP, "cluster-system").inputs
    assert system["capacityType"] == "ON_DEMAND"
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert system["scalingConfig"] == {"minSize": 3, "maxSize": 6, "desiredSize": 3}


@pytest.mark.parametrize(("stack", "capacity"), [
    ("dev", {"gpu24-x1-spot": "SPOT"}),
    ("staging", {"gpu24-x1-spot": "SPOT", "gpu24-x4-spot": "SPOT"}),
    ("prod", {"gpu24-x4-ondemand": "ON_DEMAND", "gpu24-x4-spot": "SPOT"})])
def test_gpu_pools_use_the_capacity_their_environment_asks_for(plans, stack, capacity):
    groups = {g.inputs["labels"]["llmops.io/gpu-pool"]: g.inputs["capacityType"]
              for g in _gpu_groups(plans[stack])}
    assert groups == capacity


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_nodes_are_tainted_labelled_and_spot_pools_diversified(plans, stack):
    for group in _gpu_groups(plans[stack]):
        inputs = group.inputs
        assert inputs["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
        assert inputs["labels"]["llmops.io/gpu-pool"] in inputs["nodeGroupName"]
        assert inputs["labels"]["llmops.io/capacity-type"] == (
            "spot" if inputs["capacityType"] == "SPOT" else "on-demand")
        if inputs["capacityType"] == "SPOT":
            assert len(inputs["instanceTypes"]) >= 2


@pytest.mark.parametrize("stack", STACKS)
def test_every_launch_template_requires_imdsv2_and_encrypts_the_root_volume(plans, stack):
    for template in plans[stack].of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.inputs["metadataOptions"]["httpTokens"] == "required"
        ebs = template.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true"
        assert ebs["volumeType"] == "gp3"


def test_gpu_nodes_with_instance_nvme_prepare_it_for_weights(plans):
    import base64

    template = plans["prod"].one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-gpu24-x4-spot")
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert "strategy: RAID0" in user_data
    # images, pods and weights live on the NVMe RAID0: the EBS root only holds the OS
    assert template.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 50
    system = plans["prod"].one("aws:ec2/launchTemplate:LaunchTemplate", "cluster-system")
    assert "userData" not in system.inputs


def test_empty_gpu_groups_carry_scale_from_zero_templates_on_their_asg(plans):
    plan = plans["prod"]
    tags = {t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
            for t in plan.of_type("aws:autoscaling/tag:Tag")
            if "gpu24-x4-spot" in t.inputs["autoscalingGroupName"]}
    template = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{template}/resources/nvidia.com/gpu"] == "4"
    assert tags[f"{template}/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[f"{template}/label/llmops.io/gpu-pool"] == "gpu24-x4-spot"
    assert tags[f"{template}/label/llmops.io/capacity-type"] == "spot"
    assert tags[f"{template}/label/llmops.io/gpu-shape"] == "24gib-x4"
    # the autoscaler treats a node with this label as a GPU node still starting until the
    # device plugin reports its GPUs (no second node for the same pending pod)
    assert tags[f"{template}/label/k8s.amazonaws.com/accelerator"] == "nvidia-a10g-l4"


def test_autoscaler_prefers_spot_pools_over_on_demand(plans):
    release = plans["prod"].one(RELEASE, "scaling-cluster-autoscaler").inputs
    values = release["values"]
    assert release["version"] == "9.47.0"
    assert values["extraArgs"]["expander"] == "priority"
    assert values["expanderPriorities"] == {
        "50": ["^eks-llmops-prod-gpu24-x4-spot-.*"],
        "10": ["^eks-llmops-prod-gpu24-x4-ondemand-.*"],
        "1": [".*"]}
    assert values["image"]["tag"] == "v1.33.0"
    assert values["rbac"]["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::123456789012:role/")


def test_autoscaler_may_only_scale_groups_of_its_own_cluster(plans):
    plan = plans["prod"]
    role = plan.one("aws:iam/rolePolicy:RolePolicy", "workload-roles-autoscaler")
    policy = json.loads(role.inputs["policy"])
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnGroups")
    assert scale["Condition"] == {"StringEquals": {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/llmops-prod": "owned"}}
    assert scale["Resource"] != "*"


def test_device_plugin_tolerates_the_gpu_taint_and_is_pinned(plans):
    release = plans["dev"].one(RELEASE, "scaling-nvidia-device-plugin").inputs
    assert release["version"] == "0.17.4"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        release["values"]["tolerations"])


def test_kubeconfig_is_a_secret_output_that_uses_aws_eks_get_token(plans):
    plan = plans["dev"]
    assert "kubeconfig" in plan.secret_outputs
    user = json.loads(plan.outputs["kubeconfig"])["users"][0]["user"]["exec"]
    assert user["command"] == "aws"
    assert user["args"][:2] == ["eks", "get-token"]


IMPOSSIBLE_POOLS = [
    ({"llmops:gpuPools.0.instanceTypes": ["g9.huge", "g5.xlarge"]},
     "llmops:gpuPools[0].instanceTypes: unknown GPU instance types ['g9.huge']"),
    ({"llmops:gpuPools.0.minSize": 5},
     "llmops:gpuPools[0]: sizes must satisfy minSize <= desiredSize <= maxSize; got 5 <= 1 <= 3"),
    ({"llmops:gpuPools.0.instanceTypes": ["g6.xlarge"]},
     "llmops:gpuPools[0]: spot pool 'gpu24-x1-spot' lists one instance type; list at least 2"),
    ({"llmops:gpuPools.0.instanceTypes": ["g5.xlarge", "g5.12xlarge"]},
     "llmops:gpuPools[0]: pool 'gpu24-x1-spot' mixes node shapes (g5.xlarge=1x24GiB/4vCPU/16GiB, "
     "g5.12xlarge=4x24GiB/48vCPU/192GiB)"),
    # pods are sized to one node: a bigger type in the pool would be paid for and left idle
    ({"llmops:gpuPools.0.instanceTypes": ["g6.xlarge", "g6.2xlarge"]},
     "llmops:gpuPools[0]: pool 'gpu24-x1-spot' mixes node shapes (g6.xlarge=1x24GiB/4vCPU/16GiB, "
     "g6.2xlarge=1x24GiB/8vCPU/32GiB)"),
    ({"llmops:gpuPools.0.capacityType": "RESERVED"},
     "llmops:gpuPools[0].capacityType: Input should be 'SPOT' or 'ON_DEMAND' (got 'RESERVED')"),
    ({"llmops:gpuPools": []}, "llmops:gpuPools: List should have at least 1 item"),
    ({"llmops:cluster.version": "1.27"},
     "llmops:cluster.version: '1.27' is not a supported EKS version; allowed: 1.32, 1.33, 1.34"),
    ({"llmops:cluster.publicAccessCidrs": ["0.0.0.0/0"]},
     "llmops:cluster.publicAccessCidrs: [0] 0.0.0.0/0 opens the API endpoint"),
    ({"llmops:cluster.addons.kubeProxy": "v1.31.3-eksbuild.2"},
     "llmops:cluster: addons.kubeProxy v1.31.3-eksbuild.2 does not match Kubernetes 1.33"),
    ({"llmops:cluster.logTypes": ["api"]},
     "llmops:cluster.logTypes: audit, authenticator logging cannot be turned off"),
    ({"llmops:cluster.addons.coredns": "latest"},
     "llmops:cluster.addons.coredns: 'latest' is not a pinned add-on version"),
]


@pytest.mark.parametrize(("overrides", "expected"), IMPOSSIBLE_POOLS,
                         ids=[e.split(":")[1][:40] for _, e in IMPOSSIBLE_POOLS])
def test_impossible_cluster_and_pool_settings_fail_clearly(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides=overrides)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
