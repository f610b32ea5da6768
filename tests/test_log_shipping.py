"""The gateway's audit lines leave the node by default: Fluent Bit (a verified chart pin) tails
every container's log on every node and writes the platform's encrypted application log
group, through an IRSA role that may write streams there and nothing else."""

from __future__ import annotations

import ipaddress
import json

import pytest
import yaml

from components.iam import log_writer_policy
from components.log_shipping import CHART, CHART_VERSION, fluent_bit_values
from llmops.offline.deploy_checks import verified_charts
from llmops.offline.plan import run_plan
from policies.network_reachability import External, Pod, allowed, policies_from
from tests.conftest import STACKS
from vocabulary.config import ConfigError

RELEASE = "kubernetes:helm.sh/v3:Release"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE = "aws:iam/role:Role"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
WRITE_ACTIONS = {"logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"}
OTHER_DESTINATIONS = ("cloudWatch", "firehose", "kinesis", "kinesis_streams", "elasticsearch",
                      "s3", "opensearch")
TAINT_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute",
                 "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


def _release(plan):
    [release] = [r for r in plan.of_type(RELEASE) if r.inputs["chart"] == CHART]
    return release


def _application_group(plan) -> dict:
    name = f"/aws/containerinsights/{plan.config.cluster_name}/application"
    [group] = [g.inputs for g in plan.of_type(LOG_GROUP) if g.inputs["name"] == name]
    return group


def _shipper_policy(plan) -> dict:
    [policy] = [p for p in plan.of_type(ROLE_POLICY) if p.name == "workload-roles-log-shipper"]
    return json.loads(policy.inputs["policy"])


# -- the values, without a plan ------------------------------------------------------------

def test_values_write_the_given_group_in_the_region_and_never_create_one():
    values = fluent_bit_values("eu-west-1", "/aws/containerinsights/c/application",
                               "arn:aws:iam::111122223333:role/shipper")
    out = values["cloudWatchLogs"]
    assert out["enabled"] is True
    assert out["region"] == "eu-west-1"
    assert out["logGroupName"] == "/aws/containerinsights/c/application"
    assert out["autoCreateGroup"] is False
    assert "logRetentionDays" not in out  # the group's own retention rules
    assert out["logStreamPrefix"]  # stream = prefix + tag (pod_namespace_container): per pod
    assert values["serviceAccount"]["annotations"] == {
        ROLE_ANNOTATION: "arn:aws:iam::111122223333:role/shipper"}


def test_values_turn_every_other_destination_off():
    values = fluent_bit_values("eu-west-1", "g", "r")
    for output in OTHER_DESTINATIONS:
        assert values[output] == {"enabled": False}, output
    enabled = {k for k, v in values.items() if isinstance(v, dict) and v.get("enabled") is True}
    assert enabled == {"input", "filter", "cloudWatchLogs"}
    assert not any(k.startswith("additional") for k in values)  # no extra [OUTPUT] either


def test_values_tail_every_container_log_and_let_no_pod_opt_out():
    values = fluent_bit_values("eu-west-1", "g", "r")
    assert values["input"]["path"] == "/var/log/containers/*.log"
    assert "extraInputs" not in values["input"]  # no Exclude_Path
    assert "extraFilters" not in values["filter"] and "additionalFilters" not in values
    assert values["filter"]["k8sLoggingExclude"] == "Off"  # fluentbit.io/exclude is ignored
    assert values["volumeMounts"] == [{"name": "varlog", "mountPath": "/var/log"}]
    assert values["volumes"] == [{"name": "varlog", "hostPath": {"path": "/var/log"}}]


def test_values_tolerate_the_gpu_taint_and_set_limits():
    values = fluent_bit_values("eu-west-1", "g", "r")
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    assert values["resources"]["limits"]["memory"] and values["resources"]["requests"]["cpu"]


def test_the_writer_policy_names_only_its_groups_and_their_streams():
    policy = json.loads(log_writer_policy("eu-west-1", "111122223333", ["/a", "/b"]))
    [statement] = policy["Statement"]
    assert set(statement["Action"]) == WRITE_ACTIONS
    base = "arn:aws:logs:eu-west-1:111122223333:log-group:"
    assert sorted(statement["Resource"]) == [f"{base}/a", f"{base}/a:*", f"{base}/b", f"{base}/b:*"]


# -- each environment's plan ---------------------------------------------------------------

@pytest.mark.parametrize("stack", STACKS)
def test_every_environment_installs_the_verified_fluent_bit_pin(plans, stack):
    release = _release(plans[stack])
    assert release.stack == "workloads"
    assert (release.inputs["chart"], release.inputs["version"]) == ("aws-for-fluent-bit", "0.2.0")
    assert release.inputs["repositoryOpts"]["repo"] == "https://aws.github.io/eks-charts"
    assert CHART_VERSION in verified_charts()[CHART]
    image = release.inputs["values"]["image"]
    assert (image["repository"], image["tag"]) == (
        "public.ecr.aws/aws-observability/aws-for-fluent-bit", "3.2.1")


@pytest.mark.parametrize("stack", STACKS)
def test_fluent_bit_writes_the_encrypted_retained_application_group(plans, stack):
    plan = plans[stack]
    platform = plan.stack_outputs["platform"]
    group = _application_group(plan)
    assert group["kmsKeyId"] and group["retentionInDays"] == plan.config.cluster.log_retention_days
    assert platform["applicationLogGroup"] == group["name"]
    values = _release(plan).inputs["values"]
    assert values["cloudWatchLogs"]["logGroupName"] == group["name"]
    assert values["cloudWatchLogs"]["region"] == plan.config.region
    assert values["cloudWatchLogs"]["autoCreateGroup"] is False


@pytest.mark.parametrize("stack", STACKS)
def test_fluent_bit_runs_as_the_account_its_role_trusts(plans, stack):
    plan = plans[stack]
    release = _release(plan)
    values = release.inputs["values"]
    arn = plan.stack_outputs["platform"]["workloadRoleArns"]["logShipper"]
    assert values["serviceAccount"]["annotations"][ROLE_ANNOTATION] == arn
    [role] = [r for r in plan.of_type(ROLE) if r.name == "workload-roles-log-shipper"]
    subjects = [v for s in json.loads(role.inputs["assumeRolePolicy"])["Statement"]
                for k, v in s["Condition"]["StringEquals"].items() if k.endswith(":sub")]
    assert subjects == [f"system:serviceaccount:{release.inputs['namespace']}:"
                        f"{values['serviceAccount']['name']}"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_shipper_role_may_only_write_streams_of_the_application_group(plans, stack):
    plan = plans[stack]
    [statement] = _shipper_policy(plan)["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == WRITE_ACTIONS  # no CreateLogGroup, no retention
    group = (f"arn:aws:logs:{plan.config.region}:123456789012:log-group:"
             f"{_application_group(plan)['name']}")
    assert sorted(statement["Resource"]) == [group, f"{group}:*"]


@pytest.mark.parametrize("stack", STACKS)
def test_fluent_bit_tolerates_every_node_group_taint(plans, stack):
    """The gateway runs on Karpenter's traffic nodes, TGI on its GPU nodes: the DaemonSet must too."""
    plan = plans[stack]
    tolerated = {(t["key"], t["effect"]) for t in _release(plan).inputs["values"]["tolerations"]
                 if t["operator"] == "Exists"}
    taints = [(g.name, t["key"], TAINT_EFFECTS[t["effect"]]) for g in plan.of_type(NODE_GROUP)
              for t in g.inputs.get("taints", [])]
    taints += [(p.name, t["key"], t["effect"]) for p in plan.of_type(NODE_POOL)
               for t in p.inputs["spec"]["template"]["spec"].get("taints", [])]
    assert taints  # the GPU NodePools are tainted
    for owner, key, effect in taints:
        assert (key, effect) in tolerated, owner


@pytest.mark.parametrize("stack", STACKS)
def test_the_gateways_logs_are_not_excluded(plans, stack):
    plan = plans[stack]
    values = _release(plan).inputs["values"]
    assert values["input"]["path"] == "/var/log/containers/*.log"
    rendered = yaml.safe_dump(values).lower()
    assert "exclude_path" not in rendered and "grep" not in rendered  # no file or record filter
    assert "llm-gateway" not in rendered
    assert values["filter"]["k8sLoggingExclude"] == "Off"
    [gateway] = [d for d in plan.of_type("kubernetes:apps/v1:Deployment")
                 if d.inputs["metadata"].get("namespace") == "llm-gateway"]
    annotations = gateway.inputs["spec"]["template"]["metadata"].get("annotations", {})
    assert not any(k.startswith("fluentbit.io/") for k in annotations)


@pytest.mark.parametrize("stack", STACKS)
def test_fluent_bit_lands_in_the_privileged_node_agents_namespace_after_it_exists(plans, stack):
    plan = plans[stack]
    release = _release(plan)
    [namespace] = [n for n in plan.of_type("kubernetes:core/v1:Namespace")
                   if n.inputs["metadata"]["name"] == release.inputs["namespace"]]
    assert namespace.inputs["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespace.urn in release.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_fluent_bit_reaches_the_api_server_sts_and_cloudwatch_logs(plans, stack):
    """Kube metadata (API server), IRSA credentials (STS) and the logs endpoint sit on ENIs
    in the private subnets; DNS in kube-system. No policy in its namespace may block them."""
    plan = plans[stack]
    policies, private = policies_from(plan.resources), plan.config.network.layout()[0].private
    host = lambda n: str(ipaddress.ip_network(private)[n])  # noqa: E731
    shipper = Pod("node-agents", {"app.kubernetes.io/name": CHART,
                                  "app.kubernetes.io/instance": CHART}, ip=host(10))
    for eni in (External(host(20)), External(host(21))):
        assert allowed(policies, shipper, eni, 443)
    dns = Pod("kube-system", {"k8s-app": "kube-dns"}, ip=host(30))
    assert allowed(policies, shipper, dns, 53, "UDP")
    endpoints = {e.inputs["serviceName"] for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    region = plan.config.region
    assert {f"com.amazonaws.{region}.logs", f"com.amazonaws.{region}.sts"} <= endpoints  # in the VPC


def test_the_removed_add_on_key_is_rejected_by_name():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={
            "llmops:cluster.addons.amazonCloudwatchObservability": "v4.1.0-eksbuild.1"})
    assert any(p.startswith("llmops:cluster.addons.amazonCloudwatchObservability: unknown key")
               for p in caught.value.problems), caught.value.problems
