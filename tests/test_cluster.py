"""The EKS cluster, its GPU capacity (Karpenter) and the AWS side of Karpenter each environment gets."""

from __future__ import annotations

import json

import pytest
import yaml

from llmops.offline.crd_schema import CRD_DIR
from llmops.offline.plan import run_plan
from tests.conftest import STACKS
from vocabulary.config import ConfigError

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"


NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"


def _pools(plan):
    """The GPU NodePools (tests/test_system_pods.py covers the traffic pool)."""
    return {p.inputs["metadata"]["name"]: p.inputs["spec"] for p in plan.of_type(NODE_POOL)
            if "llmops.io/gpu-pool" in p.inputs["spec"]["template"]["metadata"]["labels"]}


def _requirement(spec, key):
    return next(r["values"] for r in spec["template"]["spec"]["requirements"] if r["key"] == key)


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
    ("dev", {"gpu24-x1": ["spot"]}),
    ("staging", {"gpu24-x1": ["spot"], "gpu24-x4": ["spot"]}),
    ("prod", {"gpu24-x1": ["spot", "on-demand"], "gpu24-x1-floor": ["on-demand"],
              "gpu24-x4": ["spot", "on-demand"], "gpu24-x4-floor": ["on-demand"]})])
def test_gpu_nodepools_buy_the_capacity_their_environment_asks_for(plans, stack, capacity):
    pools = _pools(plans[stack])
    assert {name: _requirement(spec, "karpenter.sh/capacity-type")
            for name, spec in pools.items()} == capacity
    assert not [g for g in plans[stack].of_type(NODE_GROUP) if "gpu" in g.name]


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_nodepools_are_tainted_limited_diversified_and_consolidate(plans, stack):
    # 20 min provisioning + 2 x the longest await of the pool's models (1800 s on x1, 1860 s on x4)
    grace = {"gpu24-x1": "80m", "gpu24-x1-floor": "80m", "gpu24-x4": "90m", "gpu24-x4-floor": "90m"}
    for name, spec in _pools(plans[stack]).items():
        node = spec["template"]["spec"]
        assert node["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
        assert len(_requirement(spec, "node.kubernetes.io/instance-type")) >= 2
        assert set(spec["limits"]) == {"nvidia.com/gpu", "cpu"}
        assert spec["disruption"]["consolidationPolicy"] == "WhenEmptyOrUnderutilized"
        # 10% for every reason; nodes still running pods are replaced only 04:00-08:00 UTC
        assert spec["disruption"]["budgets"] == [
            {"nodes": "10%"},
            {"nodes": "0", "reasons": ["Underutilized"], "schedule": "0 8 * * *", "duration": "20h"}]
        # the drain outlasts a replacement's start (node_termination_grace); no forceful expiry:
        # AMIs roll by drift (karpenter-provider-aws v1.14.1 concepts/disruption.md)
        assert node["terminationGracePeriod"] == grace[name] and node["expireAfter"] == "Never"
        assert spec["template"]["metadata"]["labels"]["llmops.io/gpu-shape"] in {"24gib-x1", "24gib-x4"}


def test_prod_limits_are_the_configured_nodes_in_gpus_and_vcpus(plans):
    pools = _pools(plans["prod"])
    assert pools["gpu24-x4"]["limits"] == {"nvidia.com/gpu": "16", "cpu": "192"}  # 4 x g5.12xlarge
    assert pools["gpu24-x4-floor"]["limits"] == {"nvidia.com/gpu": "8", "cpu": "96"}
    assert pools["gpu24-x1"]["limits"] == {"nvidia.com/gpu": "12", "cpu": "96"}  # 12 x g5.2xlarge


@pytest.mark.parametrize("stack", STACKS)
def test_gpu_node_classes_pin_the_ami_use_imdsv2_one_hop_and_raid_the_nvme(plans, stack):
    gpu_classes = {spec["template"]["spec"]["nodeClassRef"]["name"] for spec in _pools(plans[stack]).values()}
    for node_class in plans[stack].of_type(NODE_CLASS):
        if node_class.inputs["metadata"]["name"] not in gpu_classes:
            continue
        spec = node_class.inputs["spec"]
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@v20260724"}]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert spec["instanceStorePolicy"] == "RAID0"  # the weights cache lives on it
        assert spec["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": f"llmops-{stack}"}}]
        assert spec["securityGroupSelectorTerms"] == spec["subnetSelectorTerms"]
        assert spec["role"] == plans[stack].outputs["karpenter"]["nodeRoleName"]
        assert spec["blockDeviceMappings"][0]["ebs"]["encrypted"] is True


def test_what_the_node_classes_select_by_tag_is_tagged(plans):
    plan = plans["dev"]
    private = [s for s in plan.of_type("aws:ec2/subnet:Subnet") if "private" in s.name]
    assert private and all(s.inputs["tags"]["karpenter.sh/discovery"] == "llmops-dev" for s in private)
    tag = plan.one("aws:ec2/tag:Tag", "cluster-discovery").inputs
    assert (tag["key"], tag["value"]) == ("karpenter.sh/discovery", "llmops-dev")


def test_gpu_nodes_join_with_their_own_role_through_an_ec2_linux_access_entry(plans):
    plan = plans["dev"]
    entry = plan.one("aws:eks/accessEntry:AccessEntry", "cluster-gpu-node").inputs
    assert entry["type"] == "EC2_LINUX"
    role = plan.one("aws:iam/role:Role", "cluster-gpu-node")
    assert entry["principalArn"] == role.outputs["arn"]
    system = plan.one(NODE_GROUP, "cluster-system").inputs
    assert system["nodeRoleArn"] != role.outputs["arn"]
    assert system["nodeRepairConfig"] == {"enabled": True}


def test_karpenter_controller_and_crds_come_from_one_pinned_release_and_read_the_queue(plans):
    plan = plans["prod"]
    crds = plan.one(RELEASE, "gpu-karpenter-crd").inputs
    controller = plan.one(RELEASE, "gpu-karpenter")
    assert crds["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert controller.inputs["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert crds["version"] == controller.inputs["version"] == "1.14.1"
    assert controller.inputs["skipCrds"] is True
    assert plan.one(RELEASE, "gpu-karpenter-crd").urn in controller.dependencies
    settings = controller.inputs["values"]["settings"]
    assert settings["interruptionQueue"] == "llmops-prod-karpenter"
    assert settings["clusterName"] == "llmops-prod"
    assert controller.inputs["values"]["nodeSelector"]["llmops.io/node-role"] == "system"


def _keys(values, prefix=""):
    for key, value in values.items():
        yield prefix + key
        if isinstance(value, dict) and value and key not in ("annotations", "nodeSelector", "resources"):
            yield from _keys(value, prefix + key + ".")


def test_every_karpenter_value_the_platform_sets_exists_in_the_pinned_chart(plans):
    """charts/karpenter/values.yaml at v1.14.1 (components/data/crds/): a misspelt key such as
    the old settings.interruptionQueueName is silently ignored by Helm."""
    upstream = yaml.safe_load((CRD_DIR / "karpenter-values-1.14.1.yaml").read_text())
    known = set(_keys(upstream))
    values = plans["prod"].one(RELEASE, "gpu-karpenter").inputs["values"]
    assert set(_keys(values)) <= known
    assert "settings.interruptionQueueName" not in known


def test_interruption_queue_gets_all_five_upstream_events_and_only_eventbridge_may_send(plans):
    plan = plans["dev"]
    queue = plan.one("aws:sqs/queue:Queue").inputs
    assert queue["sqsManagedSseEnabled"] is True and queue["messageRetentionSeconds"] == 300
    patterns = sorted((json.loads(r.inputs["eventPattern"])["source"][0],
                       json.loads(r.inputs["eventPattern"])["detail-type"][0])
                      for r in plan.of_type("aws:cloudwatch/eventRule:EventRule"))
    assert patterns == [
        ("aws.ec2", "EC2 Capacity Reservation Instance Interruption Warning"),
        ("aws.ec2", "EC2 Instance Rebalance Recommendation"),
        ("aws.ec2", "EC2 Instance State-change Notification"),
        ("aws.ec2", "EC2 Spot Instance Interruption Warning"),
        ("aws.health", "AWS Health Event")]
    queue_arn = plan.one("aws:sqs/queue:Queue").outputs["arn"]
    targets = plan.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert {t.inputs["arn"] for t in targets} == {queue_arn}
    allow, deny = json.loads(plan.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])["Statement"]
    assert allow["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == queue_arn
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_karpenter_may_only_launch_terminate_and_pass_what_is_this_clusters(plans):
    plan = plans["dev"]
    policy = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy",
                                 "workload-roles-karpenter").inputs["policy"])
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    actions = [a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list)
                                                        else [s["Action"]])]
    assert not [a for a in actions if "*" in a]
    owned = {"aws:ResourceTag/kubernetes.io/cluster/llmops-dev": "owned"}
    assert by_sid["AllowScopedDeletion"]["Condition"]["StringEquals"] == owned
    assert by_sid["AllowScopedEC2InstanceActionsWithTags"]["Condition"]["StringEquals"][
        "aws:RequestTag/kubernetes.io/cluster/llmops-dev"] == "owned"
    node_role = plan.one("aws:iam/role:Role", "cluster-gpu-node").outputs["arn"]
    assert by_sid["AllowPassingInstanceRole"]["Resource"] == node_role
    queue = plan.one("aws:sqs/queue:Queue").outputs["arn"]
    assert by_sid["AllowInterruptionQueueActions"]["Resource"] == queue
    trust = json.loads(plan.one("aws:iam/role:Role", "workload-roles-karpenter").inputs["assumeRolePolicy"])
    assert "system:serviceaccount:kube-system:karpenter" in trust["Statement"][0]["Condition"][
        "StringEquals"].values()


def test_device_plugin_tolerates_the_gpu_taint_and_is_pinned(plans):
    release = plans["dev"].one(RELEASE, "gpu-nvidia-device-plugin").inputs
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
    ({"llmops:gpuPools.0.instanceTypes": ["g6.xlarge"]},
     "llmops:gpuPools[0].instanceTypes: List should have at least 2 items"),
    ({"llmops:gpuPools.0.instanceTypes": ["g5.xlarge", "g5.12xlarge"]},
     "llmops:gpuPools[0]: pool 'gpu24-x1' mixes GPU shapes (g5.xlarge=1x24GiB, g5.12xlarge=4x24GiB)"),
    ({"llmops:gpuPools.0.capacityTypes": ["preemptible"]},
     "llmops:gpuPools[0].capacityTypes[0]: Input should be 'spot' or 'on-demand'"),
    ({"llmops:gpuPools.0.capacityReservations": ["r-123"]},
     "llmops:gpuPools[0].capacityReservations: not capacity reservation ids"),
    ({"llmops:gpuPools.0.onDemandFloor": {"maxNodes": 1}, "llmops:gpuPools.0.capacityTypes": ["on-demand"]},
     "llmops:gpuPools[0]: pool 'gpu24-x1' has an onDemandFloor but buys no spot"),
    ({"llmops:gpuPools.0.maxNodes": 0},
     "llmops:gpuPools[0].maxNodes: Input should be greater than or equal to 1"),
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
