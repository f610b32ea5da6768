"""GPU NodePools replace nodes that still run model servers only in a quiet window (a replaced
node's replica pays a cold start), bound every disruption reason, and a model does not sit on a
node whose GPUs it mostly leaves idle (prod's 1-shard model has a 1-GPU pool)."""

from __future__ import annotations

import dataclasses

import pytest

from components.nodepools import disruption_budgets
from llmops.offline.crd_schema import problems
from llmops.offline.deploy_checks import check
from llmops.offline.deploy_checks.disruption import unbounded_reasons
from llmops.offline.plan import run_plan
from tests.conftest import STACKS
from vocabulary.config.base import ConfigError
from vocabulary.config.gpu import GpuPool

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"


def _pool(**extra) -> GpuPool:
    return GpuPool.model_validate({"name": "gpu24-x1", "instanceTypes": ["g5.2xlarge", "g6.2xlarge"],
                                   "maxNodes": 4, **extra})


def _blocked(budgets: list[dict], reason: str, hour_utc: int) -> bool:
    """Karpenter's rule for a daily `0 H * * *` schedule: a budget is active `duration` hours
    after each hit; the reason's allowance is the minimum over active budgets naming it or none."""
    def active(budget: dict) -> bool:
        if "schedule" not in budget:
            return True
        start = int(budget["schedule"].split()[1])
        return (hour_utc - start) % 24 < int(budget["duration"].rstrip("h"))
    return any(active(b) and b["nodes"] == "0" and reason in b.get("reasons", [reason]) for b in budgets)


def test_a_node_running_models_is_replaced_only_inside_the_window_while_empty_and_drifted_ones_go_any_hour():
    budgets = disruption_budgets(_pool())
    assert budgets == [{"nodes": "10%"}, {"nodes": "0", "reasons": ["Underutilized"],
                                          "schedule": "0 8 * * *", "duration": "20h"}]
    assert [h for h in range(24) if not _blocked(budgets, "Underutilized", h)] == [4, 5, 6, 7]
    assert not any(_blocked(budgets, reason, h) for reason in ("Empty", "Drifted") for h in range(24))


def test_a_window_may_pass_midnight_and_null_allows_consolidation_at_any_hour():
    late = disruption_budgets(_pool(underutilizedWindow={"startHourUtc": 22, "hours": 6}))
    assert late[1] == {"nodes": "0", "reasons": ["Underutilized"], "schedule": "0 4 * * *",
                            "duration": "18h"}
    assert [h for h in range(24) if not _blocked(late, "Underutilized", h)] == [0, 1, 2, 3, 22, 23]
    assert disruption_budgets(_pool(underutilizedWindow=None)) == [{"nodes": "10%"}]


@pytest.mark.parametrize("stack", STACKS)
def test_every_shipped_nodepool_renders_budgets_the_pinned_crd_accepts(plans, stack):
    for pool in plans[stack].of_type(NODE_POOL):
        manifest = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
                    "metadata": pool.inputs["metadata"], "spec": pool.inputs["spec"]}
        assert problems(manifest) == []
        budgets = pool.inputs["spec"]["disruption"]["budgets"]
        if pool.inputs["metadata"]["name"] == "traffic":  # stateless pods that start in seconds
            assert budgets == [{"nodes": "10%"}]
        else:
            assert budgets[1]["reasons"] == ["Underutilized"]
    assert not [f for f in check(plans[stack])
                if f.rule in ("disruption-budgets-bound-every-reason", "gpu-node-mostly-idle")]


def test_a_window_longer_than_a_day_is_refused_with_the_key_named():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:gpuPools.0.underutilizedWindow": {"startHourUtc": 4, "hours": 24}})
    assert any(p.startswith("llmops:gpuPools[0].underutilizedWindow.hours: Input should be less than "
                            "or equal to 23") for p in caught.value.problems), caught.value.problems


def test_budgets_scoped_only_by_reason_leave_the_others_unbounded_and_the_check_says_which(plans):
    assert unbounded_reasons(None) == []  # the CRD's default: one 10% budget
    assert unbounded_reasons([{"nodes": "10%", "reasons": ["Empty"]},
                              {"nodes": "1", "schedule": "@daily", "duration": "1h"}]) == [
        "Drifted", "Underutilized"]

    def scoped(resource):
        if resource.type != NODE_POOL:
            return resource
        spec = resource.inputs["spec"]
        budgets = [{"nodes": "10%", "reasons": ["Empty", "Underutilized"]}]
        disruption = {**spec["disruption"], "budgets": budgets}
        return dataclasses.replace(resource, inputs={**resource.inputs,
                                                     "spec": {**spec, "disruption": disruption}})
    plan = dataclasses.replace(plans["dev"], resources=[scoped(r) for r in plans["dev"].resources])
    findings = [f for f in check(plan) if f.rule == "disruption-budgets-bound-every-reason"]
    assert [f.resource for f in findings] == ["gpu24-x1", "traffic"]
    finding = findings[0]
    assert "no always-active budget (one without schedule) covers Drifted" in finding.message
    assert "an amiVersion change drifts them all" in finding.message


def test_a_one_gpu_model_on_four_gpu_nodes_is_found_and_prod_runs_it_on_its_own_shape(plans):
    llama = next(d for d in plans["prod"].of_type("kubernetes:apps/v1:Deployment")
                 if d.inputs["metadata"]["name"] == "tgi-llama-3-8b")
    affinity = llama.inputs["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == ["24gib-x1"]
    before = run_plan("prod", overrides={"llmops:models.0.gpuShape": "24gib-x4"})
    findings = [f for f in check(before) if f.rule == "gpu-node-mostly-idle"]
    assert {(f.resource, f.message.split("NodePool ")[1].split(",")[0]) for f in findings} == {
        (track, pool) for track in ("llama-3-8b-stable", "llama-3-8b-canary")
        for pool in ("gpu24-x4", "gpu24-x4-floor")}
    assert ("uses 1 GPU per replica (2 at least) on NodePool gpu24-x4, whose smallest node (g5.12xlarge) "
            "has 4: at most 2 of them in use, the rest paid for and idle; add a pool of shape 24gib-x1"
            ) in " ".join(f.message for f in findings)
