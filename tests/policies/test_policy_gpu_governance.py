"""GPU instance types, spot capacity, the fleet budget and model governance.

HAND-BUILT (see tests/policies/workloads.py): GPU node groups and TGI Deployments are
recorded from the real SDKs; switch to the gpu-nodes and serving components once they land.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from policies.governance import MODEL_REVISION, MODEL_VERSION, REGISTRY_STAGE
from policies.settings import load_config
from tests.policies.helpers import Group, as_plan_json, messages, recorded, violations_of
from tests.policies.workloads import gpu_node_group, tgi_deployment
from vocabulary.gpu_instances import HOURS_PER_MONTH, gpu_instances

DEV = load_config("dev")
STAGING = load_config("staging")
PROD = load_config("prod")


def test_allowed_gpu_types_pass_and_others_are_named():
    resources = recorded(lambda: (
        gpu_node_group(),
        gpu_node_group("big", instance_types=["g5.xlarge", "p5.48xlarge"]),
        gpu_node_group("system", instance_types=["m6i.large"], capacity_type=None),
        aws.ec2.LaunchTemplate("a100", instance_type="p4d.24xlarge")))
    found = {v.resource_name: v.message for v in violations_of("gpu-instance-type-allowed", resources, DEV)}
    allowed = "g4dn.xlarge, g5.2xlarge, g5.xlarge, g6.2xlarge, g6.xlarge"
    assert found == {
        "big": f"GPU instance type(s) p5.48xlarge not allowed here (allowed: {allowed})",
        "a100": f"GPU instance type(s) p4d.24xlarge not allowed here (allowed: {allowed})"}
    assert messages("gpu-instance-type-allowed", resources, PROD) == []


def test_dev_and_staging_gpu_pools_must_be_spot_and_prod_may_be_on_demand():
    resources = recorded(lambda: (
        gpu_node_group("on-demand", capacity_type="ON_DEMAND"),
        gpu_node_group("unset", capacity_type=None),
        gpu_node_group("spot"),
        gpu_node_group("system", instance_types=["m6i.large"], capacity_type="ON_DEMAND")))
    expected = {"on-demand": "GPU node group 'on-demand' uses ON_DEMAND capacity; this environment runs "
                             "GPU pools on SPOT",
                "unset": "GPU node group 'unset' uses ON_DEMAND capacity; this environment runs GPU "
                         "pools on SPOT"}
    for config in (DEV, STAGING):
        found = {v.resource_name: v.message for v in violations_of("gpu-pool-spot-capacity", resources,
                                                                   config)}
        assert found == expected
    assert violations_of("gpu-pool-spot-capacity", resources, PROD) == []  # disabled in prod


def test_a_node_group_launching_gpus_through_its_launch_template_counts():
    def program():
        template = aws.ec2.LaunchTemplate("gpu-lt", instance_type="g5.xlarge")
        gpu_node_group("lt-pool", instance_types=[], capacity_type="ON_DEMAND",
                       launch_template={"id": template.id, "version": "$Latest"})
    assert [v.resource_name for v in violations_of("gpu-pool-spot-capacity", recorded(program), DEV)] == [
        "lt-pool"]


def test_the_budget_counts_max_size_times_the_priciest_type_at_its_capacity_price():
    prices = gpu_instances()
    resources = recorded(lambda: (gpu_node_group("spot", instance_types=["g5.xlarge", "g6.xlarge"],
                                                 max_size=4),))
    spot = 4 * prices["g5.xlarge"].spot_estimate_hourly * HOURS_PER_MONTH  # g5 is the dearer one
    assert spot < 2000 and messages("gpu-fleet-monthly-budget", resources, DEV) == []

    resources = recorded(lambda: (
        gpu_node_group("spot", instance_types=["g5.xlarge", "g6.xlarge"], max_size=4),
        gpu_node_group("fallback", instance_types=["g5.2xlarge"], capacity_type="ON_DEMAND", max_size=2)))
    on_demand = 2 * prices["g5.2xlarge"].on_demand_hourly * HOURS_PER_MONTH
    total = spot + on_demand
    assert total > 2000
    assert messages("gpu-fleet-monthly-budget", resources, DEV) == [
        f"the largest GPU fleet the node groups and NodePools allow costs ${total:,.0f}/month, over "
        "the $2,000 budget "
        f"(fallback: 2 x g5.2xlarge ON_DEMAND at $1.21/h = ${on_demand:,.0f}; spot: 4 x g5.xlarge SPOT "
        f"at $0.40/h = ${spot:,.0f})"]
    assert messages("gpu-fleet-monthly-budget", resources, STAGING) == []


def test_a_gpu_type_without_a_price_cannot_pass_the_budget():
    resources = recorded(lambda: gpu_node_group("new", instance_types=["g7.xlarge"]))
    assert messages("gpu-fleet-monthly-budget", resources, DEV) == [
        "node group 'new': no price for g7.xlarge; add it to vocabulary/data/gpu_instances.yaml so the "
        "budget can be checked"]


def test_launch_templates_are_matched_from_plan_json_through_the_parent_component():
    def program():
        pool = Group("gpu-pool", "llmops:compute:GpuNodePool")
        opts = pulumi.ResourceOptions(parent=pool)
        template = aws.ec2.LaunchTemplate("gpu-lt", instance_type="p5.48xlarge", opts=opts)
        aws.eks.NodeGroup("gpu", cluster_name="c", node_role_arn="r", subnet_ids=["s"], capacity_type="SPOT",
                          scaling_config={"min_size": 0, "max_size": 1, "desired_size": 0},
                          launch_template={"id": template.id, "version": "1"}, opts=opts)
    found = messages("gpu-fleet-monthly-budget", as_plan_json(recorded(program)), DEV)
    assert len(found) == 1 and "1 x p5.48xlarge SPOT at $22.02/h" in found[0]


# -- governance ------------------------------------------------------------------------------

def pinned(version="7", revision="3f2c9e1", stage="production"):
    notes = {MODEL_VERSION: version, MODEL_REVISION: revision, REGISTRY_STAGE: stage}
    return {k: v for k, v in notes.items() if v is not None}


@pytest.mark.parametrize("notes", [pinned(), pinned(stage="pinned")])
def test_prod_accepts_a_production_or_pinned_version_with_a_revision(notes):
    resources = recorded(lambda: tgi_deployment(model_annotations=notes))
    assert messages("model-deployment-registry-pinned", resources, PROD) == []


@pytest.mark.parametrize(("notes", "expected"), [
    (pinned(stage="staging"), ["llmops.io/registry-stage is 'staging'; allowed here: production, pinned"]),
    (pinned(revision=""), ["no llmops.io/model-revision: the version is not pinned to an exact revision"]),
    (pinned(stage="pinned", revision=None),
     ["no llmops.io/model-revision: the version is not pinned to an exact revision"]),
    ({}, ["no llmops.io/model-version annotation: the served model is not a registry version",
          "llmops.io/registry-stage is missing; allowed here: production, pinned",
          "no llmops.io/model-revision: the version is not pinned to an exact revision"]),
])
def test_prod_rejects_unpromoted_or_unpinned_models(notes, expected):
    resources = recorded(lambda: tgi_deployment(model_annotations=notes))
    found = violations_of("model-deployment-registry-pinned", resources, PROD)
    assert [v.message for v in found] == expected
    assert {v.level for v in found} == {"mandatory"}


def test_dev_only_advises_and_accepts_candidates_without_a_revision():
    resources = recorded(lambda: tgi_deployment(model_annotations=pinned(stage="development", revision="")))
    assert violations_of("model-deployment-registry-pinned", resources, DEV) == []
    resources = recorded(lambda: tgi_deployment(model_annotations=pinned(stage="pinned", revision="")))
    found = violations_of("model-deployment-registry-pinned", resources, DEV)
    assert [(v.level, v.message) for v in found] == [
        ("advisory", "no llmops.io/model-revision: the version is not pinned to an exact revision")]
