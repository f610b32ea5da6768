"""Deploy checks that compare numbers, at their boundaries: exactly at the limit passes, one
over (or under) fails, and minutes, seconds and Go durations are not confused. Small recorded
graphs, no stack program: each test reads a handful of resources."""

from __future__ import annotations

import pytest

from components.nodepools import REGISTRATION_TIMEOUT_S
from llmops.offline.deploy_checks import core, node_lifecycle, render
from llmops.offline.deploy_checks.base import DEFAULT_AWAIT_S, Finding
from llmops.offline.deploy_checks.ci import runner_image_findings
from llmops.offline.deploy_checks.keda_and_order import scaled_object_problems
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource
from tests.test_deploy_checks_ci import UBUNTU, _workflow

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def resource(type_: str, name: str, *, stack: str = "workloads", inputs: dict | None = None,
             timeout: str | None = None, depends_on: tuple[str, ...] = (),
             parent: str | None = None) -> RecordedResource:
    options = {"customTimeouts": {"create": timeout}} if timeout else {}
    return RecordedResource(urn=f"urn:{name}", type=type_, name=name, parent=parent, custom=True,
                            inputs=inputs or {}, dependencies=depends_on, options=options,
                            stack=stack)


def deployment(name: str = "model", *, probe: dict | None = None, gpu: bool = False,
               annotations: dict | None = None, **kwargs) -> RecordedResource:
    container = {"name": "engine", **({"startupProbe": probe} if probe is not None else {})}
    pod = {"containers": [container], **({"tolerations": [GPU_TOLERATION]} if gpu else {})}
    return resource(DEPLOYMENT, name, inputs={"metadata": {"annotations": annotations or {}},
                                              "spec": {"template": {"spec": pod}}}, **kwargs)


def node_pool(grace: str | None) -> RecordedResource:
    spec = {"template": {"spec": {"requirements": [],
                                  **({"terminationGracePeriod": grace} if grace else {})}}}
    return resource(NODE_POOL, "pool", stack="platform",
                    inputs={"metadata": {"name": "general"}, "spec": spec})


def findings(rule, *resources: RecordedResource) -> list[Finding]:
    plan = Plan(stack="boundaries", config=None, resources=list(resources), outputs={})
    return list(rule(plan))


PROBE_300_S = {"periodSeconds": 10, "failureThreshold": 30}


# -- the engine's await covers the pod's start ----------------------------------------------
@pytest.mark.parametrize(("timeout", "found"), [("5m", False), ("300s", False), ("299s", True),
                                                ("4m59s", True)])
def test_an_await_exactly_as_long_as_the_startup_budget_is_enough_one_second_less_is_not(
        timeout, found):
    result = findings(core.await_covers_start, deployment(probe=PROBE_300_S, timeout=timeout))
    assert bool(result) is found
    if found:
        assert "waits 299 s but the pod may take 300 s to start (startup probe 300 s)" in \
            result[0].message


def test_the_startup_budget_counts_the_initial_delay_and_kubernetes_probe_defaults():
    # initialDelaySeconds 5 + the defaults periodSeconds 10 x failureThreshold 3 = 35 s
    probe = {"initialDelaySeconds": 5}
    assert findings(core.await_covers_start, deployment(probe=probe, timeout="35s")) == []
    [finding] = findings(core.await_covers_start, deployment(probe=probe, timeout="34s"))
    assert "the pod may take 35 s to start" in finding.message


def test_a_pod_on_gpu_nodes_also_waits_for_a_node_to_register():
    pool = node_pool("2h")
    needed = 300 + REGISTRATION_TIMEOUT_S
    enough = deployment(probe=PROBE_300_S, gpu=True, timeout=f"{needed}s")
    assert findings(core.await_covers_start, enough, pool) == []
    short = deployment(probe=PROBE_300_S, gpu=True, timeout=f"{needed - 1}s")
    [finding] = findings(core.await_covers_start, short, pool)
    assert f"may take {needed} s to start (startup probe 300 s + node provisioning " \
           f"{REGISTRATION_TIMEOUT_S} s)" in finding.message
    # without NodePools there is no node to wait for; without the toleration, no GPU node
    assert findings(core.await_covers_start, short) == []
    cpu = deployment(probe=PROBE_300_S, timeout=f"{needed - 1}s")
    assert findings(core.await_covers_start, cpu, pool) == []


def test_a_pod_without_a_startup_probe_has_no_start_budget_to_cover():
    no_probe = deployment(gpu=True, timeout="1s")
    assert findings(core.await_covers_start, no_probe, node_pool("2h")) == []


def test_the_timeout_annotation_is_read_as_seconds_and_skip_await_never_waits():
    at_limit = deployment(probe=PROBE_300_S, annotations={"pulumi.com/timeoutSeconds": "300"})
    assert findings(core.await_covers_start, at_limit) == []
    under = deployment(probe=PROBE_300_S, annotations={"pulumi.com/timeoutSeconds": "299"})
    assert len(findings(core.await_covers_start, under)) == 1
    skipped = deployment(probe=PROBE_300_S, annotations={"pulumi.com/skipAwait": "true"})
    assert findings(core.await_covers_start, skipped) == []


def test_without_timeouts_the_engine_waits_its_default_ten_minutes():
    assert findings(core.await_covers_start,
                    deployment(probe={"periodSeconds": 10, "failureThreshold": 60})) == []
    [finding] = findings(core.await_covers_start,
                         deployment(probe={"periodSeconds": 1, "failureThreshold": 601}))
    assert f"waits {DEFAULT_AWAIT_S} s but the pod may take 601 s" in finding.message


# -- what only needs to exist does not wait behind a long rollout ---------------------------
def scaler(*depends_on: str, parent: str | None = None) -> RecordedResource:
    return resource("kubernetes:keda.sh/v1alpha1:ScaledObject", "scaler",
                    inputs={"kind": "ScaledObject"}, depends_on=depends_on, parent=parent)


@pytest.mark.parametrize(("timeout", "found"), [(None, False), ("600s", False), ("10m", False),
                                                ("601s", True), ("10m1s", True)])
def test_a_scaler_may_follow_a_default_length_rollout_but_not_a_longer_one(timeout, found):
    rollout = deployment(timeout=timeout)
    result = findings(core.exist_only_resources_do_not_wait, rollout, scaler(rollout.urn))
    assert bool(result) is found
    if found:
        assert result[0].resource == "scaler"
        assert "waits for the rollout of model (up to 601 s)" in result[0].message


def test_waiting_on_a_component_waits_on_the_rollouts_inside_it():
    component = resource("llmops:serving:ModelServer", "server")
    rollout = deployment(timeout="1h", parent=component.urn)
    [finding] = findings(core.exist_only_resources_do_not_wait, component, rollout,
                         scaler(component.urn))
    assert "(up to 3600 s)" in finding.message


# -- the CI runner outlasts the workloads stack's longest await (minutes vs seconds) --------
def runner(minutes: int | None) -> RecordedResource:
    return resource("aws:codebuild/project:Project", "runner", stack="platform",
                    inputs={} if minutes is None else {"buildTimeout": minutes})


@pytest.mark.parametrize(("minutes", "timeout", "found"), [
    (10, "600s", False), (10, "601s", True), (10, "10m", False), (20, "1200s", False),
    (20, "20m1s", True), (None, "1h", False), (None, "3601s", True)])
def test_a_runner_build_timeout_in_minutes_covers_an_await_in_seconds_up_to_equality(
        minutes, timeout, found):
    result = findings(core.runner_outlasts_awaits, runner(minutes), deployment(timeout=timeout))
    assert bool(result) is found
    if found:
        assert f"build timeout {minutes or 60} min is shorter than the " in result[0].message


def test_the_runner_compares_with_the_longest_workloads_await_only():
    short, long_ = deployment("a", timeout="5m"), deployment("b", timeout="11m")
    [finding] = findings(core.runner_outlasts_awaits, runner(10), short, long_)
    assert "the 660 s the workloads `up` may wait for b" in finding.message
    platform = deployment("c", timeout="2h", stack="platform")
    assert findings(core.runner_outlasts_awaits, runner(10), short, platform) == []


# -- a node's grace period exceeds the await of the pods it runs -----------------------------
@pytest.mark.parametrize(("grace", "found"), [("601s", False), ("10m1s", False), ("600s", True),
                                              ("10m", True), ("599s", True)])
def test_a_node_grace_period_must_exceed_the_await_strictly(grace, found):
    result = findings(node_lifecycle.node_grace_covers_await, node_pool(grace),
                      deployment(timeout="10m"))
    assert bool(result) is found
    if found:
        assert result[0].resource == "general"
        assert "does not exceed the 600 s model may take" in result[0].message


def test_a_node_pool_without_a_grace_period_is_found_and_the_longest_await_is_named():
    [finding] = findings(node_lifecycle.node_grace_covers_await, node_pool(None),
                         deployment("quick", timeout="5m"))
    assert "has no terminationGracePeriod: a drain blocked by quick's PDB" in finding.message
    [finding] = findings(node_lifecycle.node_grace_covers_await, node_pool("15m"),
                         deployment("quick", timeout="5m"), deployment("slow", timeout="20m"),
                         deployment("mid", timeout="10m"))
    assert "the 1200 s slow may take" in finding.message


def test_pods_that_do_not_wait_or_cannot_run_on_the_pool_do_not_count():
    skipped = deployment(timeout="1h", annotations={"pulumi.com/skipAwait": "true"})
    assert findings(node_lifecycle.node_grace_covers_await, node_pool("10m"), skipped) == []
    elsewhere = deployment(timeout="1h")
    elsewhere.inputs["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "other"}
    assert findings(node_lifecycle.node_grace_covers_await, node_pool("10m"), elsewhere) == []


# -- KEDA's webhook: replica bounds at equality ----------------------------------------------
TRIGGER = {"type": "prometheus", "metricType": "AverageValue"}
NEGATIVE_FALLBACK = "fallback failureThreshold and replicas must both be >= 0"


def keda(**spec) -> list[str]:
    return scaled_object_problems({"triggers": [TRIGGER], **spec}, "2.18.0")


@pytest.mark.parametrize(("spec", "problem"), [
    ({"minReplicaCount": 3, "maxReplicaCount": 3}, None),
    ({"minReplicaCount": 4, "maxReplicaCount": 3}, "MinReplicaCount=4 must be less than MaxReplicaCount=3"),
    # a min of 0 counts as the HPA's 1 only for the bounds check, and only when set
    ({"minReplicaCount": 0, "maxReplicaCount": 1}, None),
    ({"minReplicaCount": 0, "maxReplicaCount": 0}, "MinReplicaCount=1 must be less than MaxReplicaCount=0"),
    ({"maxReplicaCount": 0}, None),
    ({"minReplicaCount": 101}, "MinReplicaCount=101 must be less than MaxReplicaCount=100"),
    ({"minReplicaCount": 100}, None),
    ({"minReplicaCount": 2, "idleReplicaCount": 1}, None),
    ({"minReplicaCount": 2, "idleReplicaCount": 2}, "IdleReplicaCount=2 must be less than MinReplicaCount=2"),
    ({"idleReplicaCount": 0}, "IdleReplicaCount=0 must be less than MinReplicaCount=0"),
    ({"fallback": {"failureThreshold": 0, "replicas": 0}}, None),
    ({"fallback": {"failureThreshold": -1, "replicas": 1}}, NEGATIVE_FALLBACK),
    ({"fallback": {"failureThreshold": 3, "replicas": -1}}, NEGATIVE_FALLBACK),
])
def test_keda_replica_bounds_are_refused_one_past_equality(spec, problem):
    assert keda(**spec) == ([problem] if problem else [])


def test_keda_refuses_a_duplicate_trigger_name_and_cached_metrics_on_cpu_and_cron():
    named = {**TRIGGER, "name": "queue"}
    assert scaled_object_problems({"triggers": [named, named, {**TRIGGER, "name": "other"}]}, "2.18.0") == [
        "triggerName 'queue' is defined multiple times, but it must be unique"]
    for kind in ("cpu", "cron"):
        assert scaled_object_problems({"triggers": [TRIGGER, {"type": kind, "useCachedMetrics": True}]},
                                      "2.18.0") == [f"property \"useCachedMetrics\" is not supported for "
                                                    f"'{kind}' scaler"]
    assert scaled_object_problems({"triggers": [{**TRIGGER, "useCachedMetrics": True}]}, "2.18.0") == []
    assert scaled_object_problems({"triggers": []}, "2.18.0") == [
        "no triggers defined in the ScaledObject/ScaledJob"]


def test_the_explicit_average_value_rule_ends_exactly_at_keda_2_18():
    spec = {"triggers": [{"type": "prometheus"}], "fallback": {"failureThreshold": 3, "replicas": 1}}
    assert scaled_object_problems(spec, "v2.17.9")
    assert scaled_object_problems(spec, "2.18.0") == []
    assert scaled_object_problems(spec, "2.18.0-rc1") == []
    modifiers = {**spec, "advanced": {"scalingModifiers": {"metricType": "Value"}}}
    assert scaled_object_problems(modifiers, "2.18.0") == [
        "with scalingModifiers, their metricType must be AverageValue for a fallback"]
    modifiers["advanced"]["scalingModifiers"]["metricType"] = "AverageValue"
    assert scaled_object_problems(modifiers, "2.17.0") == []


# -- the CI runner's Python against pyproject.toml's requires-python -------------------------
def setup_findings(tmp_path, requires: str, python: str) -> list[Finding]:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nrequires-python = "{requires}"\n')
    workflow = _workflow({"run": f"make setup PYTHON=python{python}"})
    return runner_image_findings(workflow, UBUNTU, "dev", root=tmp_path)


@pytest.mark.parametrize(("requires", "python", "found"), [
    (">=3.11", "3.11", False), (">=3.12", "3.11", True), (">=3.12", "3.12", False),
    (">= 3.10", "3.10", False), (">=3.10,<4", "3.11", False),
    ("<4", "3.10", False),  # no lower bound: any Python 3 the image ships
])
def test_the_runner_python_is_refused_only_below_the_lowest_version_pyproject_accepts(
        tmp_path, requires, python, found):
    findings = setup_findings(tmp_path, requires, python)
    assert bool(findings) is found
    if found:
        assert f"uses Python {python}; pyproject.toml requires >=3.12" in findings[0].message


def test_the_plan_prints_how_many_checks_passed_or_every_problem():
    assert render([], rules=22) == "Deploy checks: nothing blocks the first `up` (22 checks)."
    problem = Finding("await-covers-start", "workloads", "model", "waits 1 s")
    assert render([problem, problem]).splitlines() == [
        "Deploy checks: 2 problem(s) would stop or break the first `up`:",
        "  - [await-covers-start] workloads/model: waits 1 s",
        "  - [await-covers-start] workloads/model: waits 1 s"]
