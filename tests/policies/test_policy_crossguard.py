"""The CrossGuard path: the pack's policies driven through pulumi_policy's own analyzer
servicer (what `pulumi preview --policy-pack` talks to), in-process and over gRPC from the
real policies/__main__.py, must report exactly what the offline runner reports."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import proto
from pulumi.runtime.proto import analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from llmops.offline.recorder import COMPUTED
from policies.catalog import ALL_RULES
from policies.pack import ALL_POLICIES, PACK_LEVEL, PACK_NAME, initial_config, plain
from policies.runner import evaluate, to_resource
from policies.settings import PackConfig, load_config, parse_config
from tests.policies.helpers import recorded, replace_inputs, without
from tests.policies.workloads import gpu_node_group, tgi_container, tgi_deployment

ROOT = Path(__file__).resolve().parents[2]
LEVELS = {"advisory": proto.ADVISORY, "mandatory": proto.MANDATORY, "disabled": proto.DISABLED}
LEVEL_NAMES = {v: k for k, v in LEVELS.items()}


def wire(value: Any) -> Any:
    """Recorded inputs as the engine sends them: unknowns as the engine's sentinel."""
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [wire(v) for v in value]
    return UNKNOWN_STRING_VALUE if value == COMPUTED else value


def struct(inputs: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(wire(inputs))
    return out


def configure_request(config: PackConfig) -> proto.ConfigureAnalyzerRequest:
    """What the CLI sends after reconciling the JSON config with the policies' defaults."""
    request = proto.ConfigureAnalyzerRequest()
    for rule in ALL_RULES:
        entry = proto.PolicyConfig(enforcementLevel=LEVELS[config.level(rule)])
        entry.properties.update({**rule.defaults(), **config.properties(rule)})
        request.policyConfig[rule.name].CopyFrom(entry)
    return request


def analyze(stub: Any, resources: Iterable[Any]) -> set[tuple[str, str, str, str]]:
    """Run Analyze per custom resource and AnalyzeStack once, like a preview does."""
    custom = [r for r in resources if r.custom]
    diagnostics = []  # (urn, diagnostic): the engine attributes Analyze results to the request's URN
    for r in custom:
        response = stub.Analyze(proto.AnalyzeRequest(
            type=r.type, urn=r.urn, name=r.name, properties=struct(r.inputs)), None)
        diagnostics += [(d.urn or r.urn, d) for d in response.diagnostics]
    stack = proto.AnalyzeStackRequest(resources=[proto.AnalyzerResource(
        type=r.type, urn=r.urn, name=r.name, properties=struct(r.inputs), parent=r.parent or "",
        dependencies=list(r.dependencies)) for r in custom])
    diagnostics += [(d.urn, d) for d in stub.AnalyzeStack(stack, None).diagnostics]
    urn_of = {r.urn for r in custom} | {""}  # "": a finding about the whole stack (budget)
    found = set()
    for urn, d in diagnostics:
        assert urn in urn_of, d  # every violation names its resource
        description, _, message = d.message.partition("\n")
        assert description == d.description
        found.add((d.policyName, LEVEL_NAMES[d.enforcementLevel], urn, message))
    return found


def offline(resources: Iterable[Any], config: PackConfig) -> set[tuple[str, str, str, str]]:
    return {(v.policy, v.level, v.urn or "", v.message) for v in evaluate(list(resources), config=config)}


def servicer(config: PackConfig) -> _PolicyAnalyzerServicer:
    analyzer = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", ALL_POLICIES, PACK_LEVEL)
    analyzer.Configure(configure_request(config), None)
    return analyzer


@pytest.fixture(scope="module")
def bad_resources(plans):
    """A plan breaking many policies at once: the real dev plan mutated, plus hand-built
    resources of components not in the plan yet (HAND-BUILT: move to real components)."""
    dev = plans["dev"].resources
    dev = replace_inputs(dev, "aws:ec2/securityGroup:SecurityGroup", "network-endpoints", ingress=[
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    dev = replace_inputs(dev, "aws:iam/rolePolicy:RolePolicy", "network-flow-logs",
                         policy='{"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}')
    dev = without(dev, "aws:ec2/flowLog:FlowLog")
    extra = recorded(lambda: (
        tgi_deployment(container=tgi_container(image="tgi:latest", readiness_probe=None),
                       tolerations=[], model_annotations={}),
        k8s.helm.v3.Release("monitoring", chart="kube-prometheus-stack"),
        gpu_node_group("on-demand", instance_types=["p5.48xlarge"], capacity_type="ON_DEMAND", max_size=3),
        aws.s3.Bucket("models", tags={"Owner": "ml"}),
        aws.kms.Key("weights"),
        aws.eks.Cluster("gpu", role_arn="arn:aws:iam::123456789012:role/eks",
                        vpc_config={"subnet_ids": ["subnet-1"]}),
        aws.ec2.LaunchTemplate("gpu-nodes", instance_type="p5.48xlarge",
                               metadata_options={"http_tokens": "optional"})))
    return dev + extra


def test_the_pack_and_the_runner_report_the_same_violations(bad_resources):
    config = load_config("dev")
    through_crossguard = analyze(servicer(config), bad_resources)
    assert through_crossguard == offline(bad_resources, config)
    policies = {p for p, *_ in through_crossguard}
    assert len(policies) >= 20, policies
    assert ("gpu-fleet-monthly-budget", "mandatory") in {(p, lvl) for p, lvl, *_ in through_crossguard}


def test_levels_from_the_config_reach_both_paths(bad_resources):
    config = parse_config({"required-cost-tags": "advisory", "vpc-flow-logs-enabled": "disabled",
                           "kms-key-rotation": {"enforcementLevel": "advisory"}}, "test")
    found = analyze(servicer(config), bad_resources)
    assert found == offline(bad_resources, config)
    levels = {policy: level for policy, level, *_ in found}
    assert levels["required-cost-tags"] == levels["kms-key-rotation"] == "advisory"
    assert "vpc-flow-logs-enabled" not in levels
    assert levels["iam-no-wildcard-actions"] == "mandatory"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_plans_pass_through_crossguard(plans, stack):
    config = load_config(stack)
    found = analyze(servicer(config), plans[stack].resources)
    assert {f for f in found if f[1] == "mandatory"} == set()


def test_unknown_values_in_preview_do_not_abort_a_policy():
    """The SDK's proxy raises on unknowns (the whole policy is then skipped with a warning);
    the pack reads them as COMPUTED, exactly like the offline recorder writes them."""
    raw = {"ingress": [{"protocol": "tcp", "fromPort": 22.0, "toPort": UNKNOWN_STRING_VALUE,
                        "cidrBlocks": ["0.0.0.0/0"]}], "vpcId": UNKNOWN_STRING_VALUE}
    from pulumi_policy.proxy import unknown_checking_proxy

    assert plain(unknown_checking_proxy(raw)) == {
        "ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": COMPUTED, "cidrBlocks": ["0.0.0.0/0"]}],
        "vpcId": COMPUTED}


def test_every_policy_says_how_to_fix_it_and_declares_its_settings():
    info = _PolicyAnalyzerServicer(PACK_NAME, "0.1.0", ALL_POLICIES, PACK_LEVEL).GetAnalyzerInfo(None, None)
    assert [p.name for p in info.policies] == [r.name for r in ALL_RULES]
    for policy, rule in zip(info.policies, ALL_RULES, strict=True):
        assert policy.remediation_steps and policy.description
        assert set(policy.configSchema.properties) == set(rule.config_schema)


def test_initial_config_converts_levels_to_the_sdk_enum():
    config = initial_config(parse_config({"kms-key-rotation": "advisory", "required-cost-tags": {
        "enforcementLevel": "disabled", "requiredTags": ["Owner"]}}, "test"))
    assert config == {"kms-key-rotation": EnforcementLevel.ADVISORY,
                      "required-cost-tags": {"enforcementLevel": EnforcementLevel.DISABLED,
                                             "requiredTags": ["Owner"]}}


def test_the_real_entry_point_serves_the_pack_over_grpc(bad_resources):
    """policies/__main__.py as the CLI starts it: it prints its port and serves the analyzer."""
    env = {**os.environ, "PULUMI_STACK": "prod", "PYTHONPATH": ""}
    process = subprocess.Popen([sys.executable, str(ROOT / "policies" / "__main__.py")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT / "policies")
    try:
        port = int(process.stdout.readline().decode().strip())
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
            assert info.name == PACK_NAME
            assert {p.name for p in info.policies} == {r.name for r in ALL_RULES}
            assert set(info.initialConfig) == {r.name for r in ALL_RULES}  # from config/prod.yaml
            stub.Configure(configure_request(load_config("prod")), timeout=30)
            grpc_found = analyze(_Unary(stub), bad_resources)
        assert grpc_found == offline(bad_resources, load_config("prod"))
    finally:
        process.terminate()
        process.wait(timeout=30)


class _Unary:
    """Adapts a gRPC stub to the servicer's (request, context) call shape used by analyze()."""

    def __init__(self, stub: Any):
        self.stub = stub

    def Analyze(self, request, _context):
        return self.stub.Analyze(request, timeout=30)

    def AnalyzeStack(self, request, _context):
        return self.stub.AnalyzeStack(request, timeout=30)


def test_offline_resources_round_trip_to_the_rules_view(plans):
    vpc = next(r for r in plans["dev"].resources if r.type == "aws:ec2/vpc:Vpc")
    resource = to_resource(vpc)
    assert resource.props == vpc.inputs and resource.parent == vpc.parent
    assert to_resource(next(r for r in plans["dev"].resources if not r.custom)) is None
