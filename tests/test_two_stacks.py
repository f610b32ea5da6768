"""An environment is two stacks: the platform (AWS API, runs anywhere) and the workloads
(Kubernetes API, runs on the in-VPC runner), joined by the platform's outputs."""

from __future__ import annotations

import json

import pulumi
import pytest

from llmops.offline.plan import run_plan
from stacks.workloads_stack import check_platform_digest
from tests.conftest import STACKS
from vocabulary.config import ConfigError
from vocabulary.contract import PLATFORM_OUTPUTS, config_digest

K8S, AWS = "kubernetes:", "aws:"


@pytest.mark.parametrize("stack", STACKS)
def test_aws_resources_are_platform_and_kubernetes_objects_are_workloads(plans, stack):
    plan = plans[stack]
    for resource in plan.custom_resources:
        if resource.type.startswith(K8S):
            assert resource.stack == "workloads", resource.name
        elif resource.type.startswith(AWS) and resource.type != "aws:ssm/parameter:Parameter":
            assert resource.stack == "platform", resource.name
    # the workloads publish their own outputs to SSM, beside the platform's
    parameters = {p.stack for p in plan.of_type("aws:ssm/parameter:Parameter")}
    assert parameters == {"platform", "workloads"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_platform_exports_everything_the_workloads_read(plans, stack):
    platform = plans[stack].stack_outputs["platform"]
    assert set(PLATFORM_OUTPUTS) <= set(platform)
    assert platform["configDigest"] == config_digest(plans[stack].config)
    assert set(platform["workloadRoleArns"]["models"]) == {m.name for m in plans[stack].config.models}


def test_a_platform_behind_its_configuration_stops_the_workloads():
    with pytest.raises(pulumi.RunError) as caught:
        check_platform_digest("0123456789abcdef", "fedcba9876543210", "org/llmops/prod")
    assert str(caught.value) == (
        "the platform stack org/llmops/prod was deployed from different configuration "
        "(configDigest 0123456789abcdef, this environment file gives fedcba9876543210): "
        "run `pulumi up` on the platform stack first, then this one")
    assert check_platform_digest("fedcba9876543210", "fedcba9876543210", "x") == "fedcba9876543210"


def test_a_new_model_changes_the_digest_so_its_role_is_created_first(plans):
    plan = plans["dev"]
    more = run_plan("dev", overrides={"llmops:models.1": {
        **plan.config.models[0].model_dump(mode="json", by_alias=True, exclude_none=True),
        "name": "mistral-7b", "registry": {"stage": "production"}}})
    assert config_digest(more.config) != config_digest(plan.config)
    assert "mistral-7b" in more.stack_outputs["platform"]["workloadRoleArns"]["models"]


def test_the_workloads_talk_to_the_cluster_through_a_provider_built_from_platform_outputs(plans):
    plan = plans["prod"]
    provider = plan.one("pulumi:providers:kubernetes", "cluster")
    assert provider.stack == "workloads"
    assert provider.inputs["enableServerSideApply"] in (True, "true")
    assert json.loads(provider.inputs["kubeconfig"])["users"][0]["user"]["exec"]["args"][:2] == [
        "eks", "get-token"]
    assert "kubeconfig" in provider.secret_paths


def test_the_in_vpc_runner_reaches_the_private_api_and_is_a_cluster_admin(plans):
    plan = plans["prod"]
    project = plan.one("aws:codebuild/project:Project").inputs
    assert project["name"] == "llmops-prod-workloads"
    assert project["vpcConfig"]["subnets"] == plan.stack_outputs["platform"]["privateSubnetIds"]
    assert project["source"]["auth"]["type"] == "CODECONNECTIONS"
    assert project["buildTimeout"] == 120
    webhook = plan.one("aws:codebuild/webhook:Webhook").inputs
    assert webhook["filterGroups"] == [{"filters": [{"type": "EVENT",
                                                     "pattern": "WORKFLOW_JOB_QUEUED"}]}]
    ingress = plan.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").inputs
    assert (ingress["fromPort"], ingress["toPort"], ingress["ipProtocol"]) == (443, 443, "tcp")
    runner_role = plan.stack_outputs["platform"]["ciRunnerRoleArn"]
    entry = plan.one("aws:eks/accessEntry:AccessEntry", "ci-runner-admin").inputs
    association = plan.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
                           "ci-runner-admin")
    assert entry["principalArn"] == runner_role
    assert association.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy")
    assert plan.stack_outputs["platform"]["ciRunsOn"] == (
        "codebuild-llmops-prod-workloads-${{ github.run_id }}-${{ github.run_attempt }}")


def test_extra_deploy_roles_get_cluster_admin_access():
    role = "arn:aws:iam::123456789012:role/vpn-deployer"
    plan = run_plan("dev", overrides={"llmops:ci.deployRoleArns": [role]})
    entry = plan.one("aws:eks/accessEntry:AccessEntry", "ci-runner-deployer-0").inputs
    assert entry["principalArn"] == role


def test_node_and_cluster_settings_a_first_up_and_production_need(plans):
    plan = plans["prod"]
    cluster = plan.one("aws:eks/cluster:Cluster").inputs
    assert cluster["upgradePolicy"] == {"supportType": "STANDARD"}
    for group in plan.of_type("aws:eks/nodeGroup:NodeGroup"):
        assert group.inputs["nodeRepairConfig"] == {"enabled": True}, group.name
    for template in plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        # pods cannot reach IMDS (and the node role); IRSA is the only way to AWS credentials
        assert template.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 1


def test_prometheus_volumes_bind_to_an_encrypted_gp3_class_created_before_them(plans):
    plan = plans["prod"]
    storage_class = plan.one("kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["parameters"]["encrypted"] == "true"
    values = plan.one("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack").inputs
    claim = values["values"]["prometheus"]["prometheusSpec"]["storageSpec"]["volumeClaimTemplate"]
    assert claim["spec"]["storageClassName"] == storage_class["metadata"]["name"] == "gp3"
    assert values["version"] == "81.4.3"


def test_gateway_rollouts_do_not_drop_connections(plans):
    plan = plans["prod"]
    namespace = next(n for n in plan.of_type("kubernetes:core/v1:Namespace")
                     if n.inputs["metadata"]["name"] == "llm-gateway")
    assert namespace.inputs["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    pod = plan.one("kubernetes:apps/v1:Deployment", "gateway-deployment").inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 15}}
    annotations = plan.one("kubernetes:networking.k8s.io/v1:Ingress").inputs["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/target-group-attributes"] == (
        "deregistration_delay.timeout_seconds=300")
    # preStop + the longest stream the ALB allows + margin, and the gateway drains that long
    assert pod["terminationGracePeriodSeconds"] >= 15 + 300
    command = container["command"]
    assert command[command.index("--drain-seconds") + 1] == "300"
    from llmops.cli import build_parser

    parsed = build_parser().parse_args(command[1:])
    assert parsed.drain_seconds == 300


PLACEMENT_ERRORS = [
    ({"llmops:gpuPools.0.capacityTypes": ["spot"], "llmops:gpuPools.0.onDemandFloor": None},
     "llmops:models[0] (llama-3-8b).gpuShape: llmops:serving.onDemandFallback is on but pool "
     "'gpu24-x1' of shape '24gib-x1' buys no on-demand"),
    ({"llmops:gpuPools.0.onDemandFloor": None},
     "llmops:models[0] (llama-3-8b).replicas.min: 2 replicas could all sit on spot"),
    ({"llmops:models.1.replicas.min": 1},
     "llmops:models[1] (qwen-2-5-32b).replicas.min: 1 is below llmops:serving.minReplicas (2)"),
]


@pytest.mark.parametrize(("overrides", "expected"), PLACEMENT_ERRORS, ids=["fallback", "spread", "floor"])
def test_prod_placement_promises_are_enforced_by_config(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        run_plan("prod", overrides=overrides)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
