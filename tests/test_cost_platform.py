"""The platform part of `llmops cost`: every line comes from a resource in the recorded plan,
priced from components/data/aws_prices.yaml, with each usage figure a named assumption."""

from __future__ import annotations

import re

import pytest

from llmops.commands.cost import render_platform, render_total
from llmops.offline.cost import estimate
from llmops.offline.plan import Plan, run_plan
from llmops.offline.platform_cost import (
    PriceDataError,
    log_group_kind,
    platform_cost,
    price_data,
)
from vocabulary.gpu_instances import HOURS_PER_MONTH


def lines_of(plan: Plan, component: str) -> list:
    return [line for line in platform_cost(plan.config.region, plan.resources).lines
            if line.component == component]


def test_nat_lines_follow_the_plan_one_per_gateway(plans):
    assert len(lines_of(plans["prod"], "NAT gateway")) == 3  # nat: per-az, 3 AZs
    assert len(lines_of(plans["dev"], "NAT gateway")) == 1   # nat: single
    assert len(lines_of(plans["staging"], "NAT gateway")) == 1  # single NAT although 3 AZs
    one = lines_of(plans["dev"], "NAT gateway")[0]
    assert one.monthly == pytest.approx((0.045 * HOURS_PER_MONTH,) * 3)


def test_interface_endpoints_are_priced_per_az_from_the_plan_subnets(plans):
    prod = lines_of(plans["prod"], "interface VPC endpoint")
    dev = lines_of(plans["dev"], "interface VPC endpoint")
    assert len(prod) == 7 and len(dev) == 4
    assert prod[0].monthly[1] == pytest.approx(0.01 * 3 * HOURS_PER_MONTH)  # 3 AZs
    assert dev[0].monthly[1] == pytest.approx(0.01 * 2 * HOURS_PER_MONTH)   # 2 AZs
    # the S3 gateway endpoint is named, at no charge
    assert [line.monthly for line in lines_of(plans["prod"], "gateway VPC endpoint")] == [(0.0, 0.0, 0.0)]


def test_removing_interface_endpoints_from_the_config_removes_their_cost(plans):
    full = platform_cost("us-east-1", plans["prod"].resources)
    fewer = run_plan("prod", overrides={"llmops:network.interfaceEndpoints": ["ecr.api", "ecr.dkr"]})
    cut = platform_cost("us-east-1", fewer.resources)
    assert [line.resource.split()[0] for line in cut.lines if line.component == "interface VPC endpoint"] == [
        "network-ecr-api", "network-ecr-dkr"]
    assert full.total[1] - cut.total[1] == pytest.approx(5 * 0.01 * 3 * HOURS_PER_MONTH)


def test_an_internet_facing_alb_pays_a_public_ipv4_per_az_an_internal_one_none(plans):
    prod = [line for line in lines_of(plans["prod"], "public IPv4 address") if "ALB" in line.resource]
    assert [line.resource for line in prod] == ["gateway-ingress's ALB in 3 AZ"]
    assert prod[0].monthly[1] == pytest.approx(3 * 0.005 * HOURS_PER_MONTH)
    assert [line.resource for line in lines_of(plans["dev"], "Application Load Balancer")] == [
        "gateway-ingress (Ingress class alb, internal)"]
    assert not [line for line in lines_of(plans["dev"], "public IPv4 address") if "ALB" in line.resource]


def test_extended_support_is_only_in_the_max_when_the_config_allows_it(plans):
    standard = lines_of(plans["prod"], "EKS control plane")[0]
    assert standard.monthly == pytest.approx((73.0, 73.0, 73.0))
    extended = run_plan("dev", overrides={"llmops:cluster.supportType": "EXTENDED"})
    line = lines_of(extended, "EKS control plane")[0]
    assert line.monthly == pytest.approx((73.0, 73.0, 0.60 * HOURS_PER_MONTH))
    assert "EXTENDED allows extended support" in line.basis


def test_system_nodes_are_priced_from_scaling_config_at_the_priciest_type(plans):
    line = lines_of(plans["prod"], "system node group")[0]
    assert "m6i.xlarge $0.192/h" in line.basis  # m6i.xlarge over m6a.xlarge
    assert line.monthly == pytest.approx(tuple(n * 0.192 * HOURS_PER_MONTH for n in (3, 3, 6)))


def test_every_log_group_in_the_plan_is_priced_with_its_retention(plans):
    plan = plans["prod"]
    groups = [r for r in plan.resources if r.type == "aws:cloudwatch/logGroup:LogGroup"]
    lines = lines_of(plan, "CloudWatch Logs")
    assert sorted(line.resource for line in lines) == sorted(r.inputs["name"] for r in groups)
    app = next(line for line in lines if line.resource.endswith("/application"))
    assert app.assumption == "logsIngestGb[container-application]"
    months = 365 / 30
    assert app.monthly[1] == pytest.approx(20 * (0.50 + 0.03 * months))  # typical 20 GB/month
    assert "kept 365 d" in app.basis


@pytest.mark.parametrize(("name", "kind"), [
    ("/aws/eks/llmops-prod/cluster", "control-plane"),
    ("/aws/containerinsights/llmops-prod/host", "container-host"),
    ("/llmops/network/vpc-flow-logs", "flow-logs"),
    ("/aws/codebuild/llmops-prod-workloads", "ci"),
    ("/something/else", "other"),
])
def test_log_group_kind_from_its_name(name, kind):
    assert log_group_kind(name) == kind


def test_sqs_and_eventbridge_are_named_at_zero_with_why(plans):
    cost = platform_cost("us-east-1", plans["prod"].resources)
    free = {line.component: line for line in cost.lines
            if line.component in ("SQS queue", "EventBridge rules")}
    assert set(free) == {"SQS queue", "EventBridge rules"}
    assert all(line.monthly == (0.0, 0.0, 0.0) and line.basis.startswith("$0: ") for line in free.values())


def test_every_assumption_a_line_uses_is_printed_with_its_figures_and_why(plans):
    cost = platform_cost("us-east-1", plans["prod"].resources)
    text = "\n".join(render_platform(cost))
    used = {line.assumption for line in cost.lines if line.assumption}
    assert used == {a.name for a in cost.assumptions}
    assert {"natProcessedGb", "albLcu", "buildMinutes", "modelWeightsGb", "ecrImagesGb",
            "endpointProcessedGb", "logsIngestGb[flow-logs]"} <= used
    figures = price_data()["assumptions"]["natProcessedGb"]
    assert (f"natProcessedGb: {figures['min']:g} / {figures['typical']:g} / {figures['max']:g} GB/month - "
            f"{figures['why']}") in text


def test_an_unknown_region_is_reported_unpriced_not_priced_as_another(plans):
    cost = platform_cost("eu-west-1", plans["prod"].resources)
    assert cost.lines == [] and cost.total == (0, 0, 0)
    assert cost.unpriced.startswith(
        "aws_prices.yaml has no prices for 'eu-west-1' (priced regions: us-east-1, ")
    text = "\n".join(render_platform(cost) + render_total(estimate(plans["prod"].config), cost))
    assert "NOT PRICED: aws_prices.yaml has no prices for 'eu-west-1'" in text
    assert "Total: GPU only" in text and "the platform in eu-west-1 is not priced" in text


def test_an_instance_type_missing_from_the_price_file_is_named(plans):
    plan = run_plan("dev", overrides={"llmops:cluster.systemNodes.instanceTypes": ["c7i.large"]})
    with pytest.raises(PriceDataError, match=r"aws_prices.yaml: no ec2OnDemandHourly price for 'c7i.large' "
                       r"in us-west-2 \(needed by cluster-system\); listed: m6a.2xlarge"):
        platform_cost(plan.config.region, plan.resources)


def test_every_priced_region_has_every_price_and_every_source_is_an_aws_pricing_page():
    data = price_data()
    keys = set(data["regions"]["us-east-1"])
    assert {"us-east-1", "us-west-2"} <= set(data["regions"])
    assert all(set(prices) == keys for prices in data["regions"].values())
    assert all(re.fullmatch(r"https://aws\.amazon\.com/[a-z0-9]+/pricing/(on-demand/)?", url)
               for url in data["sources"].values()), data["sources"]
