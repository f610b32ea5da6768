"""Security group, flow log, IAM and tag policies against the REAL program's plan: the
compliant case is the shipped stack, the non-compliant case is the same plan with one
setting changed (config override) or one recorded resource's inputs mutated."""

from __future__ import annotations

import json

import pulumi_aws as aws
import pytest

from llmops.offline.plan import run_plan
from policies.aws_network import FLOW_LOG, SECURITY_GROUP
from tests.policies.helpers import (
    as_plan_json,
    doc,
    messages,
    recorded,
    replace_inputs,
    violations_of,
    without,
)

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(scope="module")
def dev(plans):
    return plans["dev"].resources


# -- security groups -------------------------------------------------------------------------

def test_the_endpoint_security_group_opens_no_admin_port(dev):
    assert messages("security-group-no-public-admin-ports", dev) == []


def test_ssh_from_the_internet_on_the_endpoint_group_is_a_violation(dev):
    bad = replace_inputs(dev, SECURITY_GROUP, "network-endpoints", ingress=[
        {"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]},
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    assert messages("security-group-no-public-admin-ports", bad) == [
        "ingress tcp 22 from 0.0.0.0/0 opens admin port(s) 22 to the internet"]


def test_standalone_rules_and_ipv6_and_all_protocols_are_checked():
    # HAND-BUILT: no component creates standalone rules yet (cluster/node SGs will).
    resources = recorded(lambda: (
        aws.ec2.SecurityGroupRule("rdp", type="ingress", protocol="tcp", from_port=3389,
                                  to_port=3389, ipv6_cidr_blocks=["::/0"], security_group_id="sg-1"),
        aws.vpc.SecurityGroupIngressRule("everything", ip_protocol="-1", cidr_ipv4="0.0.0.0/0",
                                         security_group_id="sg-1"),
        aws.vpc.SecurityGroupIngressRule("kubelet-from-vpc", ip_protocol="tcp", from_port=10250,
                                         to_port=10250, cidr_ipv4="10.20.0.0/16", security_group_id="sg-1"),
        aws.ec2.SecurityGroupRule("egress", type="egress", protocol="-1", from_port=0, to_port=0,
                                  cidr_blocks=["0.0.0.0/0"], security_group_id="sg-1")))
    found = {v.resource_name: v.message for v in violations_of("security-group-no-public-admin-ports",
                                                                resources)}
    assert found == {
        "rdp": "ingress tcp 3389 from ::/0 opens admin port(s) 3389 to the internet",
        "everything": "ingress of all traffic from 0.0.0.0/0 opens admin port(s) 22, 3389, 6443, 10250 "
                      "to the internet"}


# -- flow logs -------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_shipped_vpc_has_a_flow_log(plans, stack):
    assert messages("vpc-flow-logs-enabled", plans[stack].resources) == []


def test_a_vpc_without_its_flow_log_is_a_violation(dev):
    found = violations_of("vpc-flow-logs-enabled", without(dev, FLOW_LOG))
    assert [(v.resource_name, v.message) for v in found] == [
        ("network-vpc", "VPC 'network-vpc' has no flow log")]


def test_flow_logs_match_their_vpc_from_plan_json_too(dev):
    assert messages("vpc-flow-logs-enabled", as_plan_json(dev)) == []
    assert messages("vpc-flow-logs-enabled", as_plan_json(without(dev, FLOW_LOG))) == [
        "VPC 'network-vpc' has no flow log"]


# -- IAM -------------------------------------------------------------------------------------

IAM_POLICIES = ("iam-no-wildcard-actions", "iam-no-wildcard-resources", "iam-trust-policy-not-public")


@pytest.mark.parametrize("policy", IAM_POLICIES)
def test_the_flow_log_role_is_least_privilege(dev, policy):
    assert messages(policy, dev) == []


def test_a_star_action_on_the_flow_log_role_is_a_violation(dev):
    bad = replace_inputs(dev, ROLE_POLICY, "network-flow-logs", policy=doc(
        {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:logs:us-west-2:123456789012:*"},
        {"Sid": "Logs", "Effect": "Allow", "Action": "logs:*", "Resource": "*"}))
    assert messages("iam-no-wildcard-actions", bad) == [
        "policy statement 0 allows every action ('*')",
        "policy statement Logs allows every action of a service ('logs:*')"]
    assert messages("iam-no-wildcard-resources", bad) == [
        "policy statement Logs grants logs:* on Resource '*'; scope it to ARNs (only actions without "
        "resource-level permissions may use '*')"]


def test_resource_star_is_fine_for_actions_without_resource_scoping(dev):
    ok = replace_inputs(dev, ROLE_POLICY, "network-flow-logs", policy=doc(
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:Describe*",
                                       "sts:GetCallerIdentity"], "Resource": "*"},
        {"Effect": "Deny", "Action": "*", "Resource": "*"}))
    assert messages("iam-no-wildcard-resources", ok) == []
    bad = replace_inputs(dev, ROLE_POLICY, "network-flow-logs", policy=doc(
        {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "s3:GetObject"], "Resource": ["*"]}))
    assert messages("iam-no-wildcard-resources", bad) == [
        "policy statement 0 grants s3:GetObject on Resource '*'; scope it to ARNs (only actions without "
        "resource-level permissions may use '*')"]


def test_inline_policies_on_a_role_are_checked(dev):
    bad = replace_inputs(dev, ROLE, "network-flow-logs", inlinePolicies=[
        {"name": "admin", "policy": doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})}])
    assert messages("iam-no-wildcard-actions", bad) == [
        "inline policy admin statement 0 allows NotAction, which grants every other action"]


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["arn:aws:iam::1:root", "*"]}])
def test_a_trust_policy_anyone_can_assume_is_a_violation(dev, principal):
    bad = replace_inputs(dev, ROLE, "network-flow-logs", assumeRolePolicy=doc(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": principal}))
    assert messages("iam-trust-policy-not-public", bad) == [
        "trust policy statement 0 lets any AWS principal assume the role (Principal '*' without a "
        "Condition)"]


def test_a_conditioned_wildcard_principal_is_allowed(dev):
    trust = json.loads(next(r for r in dev if r.type == ROLE).inputs["assumeRolePolicy"])
    trust["Statement"][0]["Principal"] = {"AWS": "*"}  # still has its aws:SourceAccount condition
    ok = replace_inputs(dev, ROLE, "network-flow-logs", assumeRolePolicy=json.dumps(trust))
    assert messages("iam-trust-policy-not-public", ok) == []


# -- tags ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_shipped_resource_carries_the_cost_tags(plans, stack):
    assert messages("required-cost-tags", plans[stack].resources) == []


def test_blanking_a_cost_tag_in_config_flags_every_taggable_resource(dev):
    bad = run_plan("dev", overrides={"llmops:tags.extra": {"CostCentre": " "}}).resources
    found = violations_of("required-cost-tags", bad)
    taggable = [r for r in bad if r.custom and "tags" in r.inputs]
    assert len(found) == len(taggable) >= 20
    assert {v.message for v in found} == {"missing or empty cost-allocation tag(s): CostCentre"}


def test_resources_without_a_tags_input_are_not_taggable(dev):
    associations = [r for r in dev if r.type == "aws:ec2/routeTableAssociation:RouteTableAssociation"]
    assert associations and messages("required-cost-tags", associations) == []
