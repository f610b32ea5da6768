"""The network shape each environment gets, from the recorded offline plans."""

from __future__ import annotations

import json

import pytest

from tests.conftest import STACKS

SUBNET = "aws:ec2/subnet:Subnet"
REQUIRED_TAGS = {"Environment", "Project", "Owner", "CostCentre", "ManagedBy"}


def _subnets(plan, role):
    return [r for r in plan.of_type(SUBNET) if f"kubernetes.io/role/{role}" in r.inputs["tags"]]


@pytest.mark.parametrize(("stack", "zones"), [("dev", 2), ("staging", 3), ("prod", 3)])
def test_public_and_private_subnet_in_each_zone(plans, stack, zones):
    plan = plans[stack]
    public, private = _subnets(plan, "elb"), _subnets(plan, "internal-elb")
    assert len(public) == len(private) == zones
    assert len({s.inputs["availabilityZone"] for s in private}) == zones
    assert all(not s.inputs.get("mapPublicIpOnLaunch", False) for s in public)


def test_private_subnets_are_sized_for_many_pods(plans):
    for plan in plans.values():
        for subnet in _subnets(plan, "internal-elb"):
            assert int(subnet.inputs["cidrBlock"].split("/")[1]) <= 19


def test_subnets_carry_the_cluster_ownership_tag(plans):
    plan = plans["prod"]
    for subnet in plan.of_type(SUBNET):
        assert subnet.inputs["tags"]["kubernetes.io/cluster/llmops-prod"] == "shared"


@pytest.mark.parametrize(("stack", "nat_count"), [("dev", 1), ("staging", 1), ("prod", 3)])
def test_nat_gateways_follow_the_environment(plans, stack, nat_count):
    assert len(plans[stack].of_type("aws:ec2/natGateway:NatGateway")) == nat_count


def test_prod_routes_each_private_subnet_through_its_own_zone_nat(plans):
    plan = plans["prod"]
    nat_routes = {json.dumps(rt.inputs["routes"]) for rt in plan.of_type("aws:ec2/routeTable:RouteTable")
                  if "natGatewayId" in rt.inputs["routes"][0]}
    assert len(nat_routes) == 3


def test_dev_private_subnets_share_the_single_nat(plans):
    plan = plans["dev"]
    nat_ids = {rt.inputs["routes"][0]["natGatewayId"]
               for rt in plan.of_type("aws:ec2/routeTable:RouteTable")
               if "natGatewayId" in rt.inputs["routes"][0]}
    assert len(nat_ids) == 1


def test_vpc_has_dns_support_and_hostnames(plans):
    vpc = plans["dev"].one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["enableDnsSupport"] is True
    assert vpc.inputs["enableDnsHostnames"] is True
    assert vpc.inputs["cidrBlock"] == "10.20.0.0/16"


@pytest.mark.parametrize("stack", STACKS)
def test_weight_and_image_pulls_skip_the_nat(plans, stack):
    plan = plans[stack]
    region = plan.config.region
    endpoints = {e.inputs["serviceName"]: e.inputs for e in plan.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert endpoints[f"com.amazonaws.{region}.s3"]["vpcEndpointType"] == "Gateway"
    assert len(endpoints[f"com.amazonaws.{region}.s3"]["routeTableIds"]) == plan.config.network.az_count
    for service in ("ecr.api", "ecr.dkr", "sts", "logs"):
        endpoint = endpoints[f"com.amazonaws.{region}.{service}"]
        assert endpoint["vpcEndpointType"] == "Interface"
        assert endpoint["privateDnsEnabled"] is True
        assert len(endpoint["subnetIds"]) == plan.config.network.az_count


def test_interface_endpoints_accept_only_https_from_the_vpc(plans):
    sg = plans["dev"].one("aws:ec2/securityGroup:SecurityGroup", "network-endpoints")
    assert sg.inputs["ingress"] == [{"protocol": "tcp", "fromPort": 443, "toPort": 443,
                                     "cidrBlocks": ["10.20.0.0/16"],
                                     "description": "HTTPS from the VPC"}]
    assert "egress" not in sg.inputs


@pytest.mark.parametrize(("stack", "days"), [("dev", 14), ("staging", 30), ("prod", 365)])
def test_flow_logs_go_to_cloudwatch_with_retention(plans, stack, days):
    plan = plans[stack]
    flow_log = plan.one("aws:ec2/flowLog:FlowLog")
    log_group = plan.one("aws:cloudwatch/logGroup:LogGroup", "network-flow-logs")
    assert flow_log.inputs["trafficType"] == "ALL"
    assert flow_log.inputs["logDestinationType"] == "cloud-watch-logs"
    assert flow_log.inputs["logDestination"].endswith(log_group.inputs["name"])
    assert log_group.inputs["retentionInDays"] == days


def test_flow_log_role_trusts_only_this_accounts_flow_logs(plans):
    role = plans["dev"].one("aws:iam/role:Role", "network-flow-logs")
    statement = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}


@pytest.mark.parametrize("stack", STACKS)
def test_every_taggable_aws_resource_carries_the_cost_tags(plans, stack):
    plan = plans[stack]
    taggable = [r for r in plan.custom_resources if r.type.startswith("aws:") and "tags" in r.inputs]
    assert len(taggable) >= 20
    for resource in taggable:
        assert set(resource.inputs["tags"]) >= REQUIRED_TAGS, resource.name
        assert resource.inputs["tags"]["Environment"] == stack


def test_own_tags_win_over_defaults_and_extra_tags_are_added(plans):
    vpc = plans["prod"].one("aws:ec2/vpc:Vpc")
    assert vpc.inputs["tags"]["Name"] == "network-vpc"
    assert vpc.inputs["tags"]["DataClassification"] == "internal"


def test_every_resource_belongs_to_a_component(plans):
    plan = plans["dev"]
    network = plan.one("llmops:network:Network")
    # the workloads stack's own providers (cluster, aws) are the only top-level resources
    assert all(r.parent for r in plan.custom_resources if not r.type.startswith("pulumi:providers:"))
    assert all(r.parent == network.urn for r in plan.of_type(SUBNET))


def test_stack_outputs_for_applications(plans):
    outputs = plans["prod"].outputs
    assert outputs["vpcId"].startswith("vpc-")
    assert len(outputs["privateSubnetIds"]) == 3
    assert all(s.startswith("subnet-") for s in outputs["privateSubnetIds"])
