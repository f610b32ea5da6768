"""Deploy-time checks: each passes on the shipped environments and fires on a variant that
reintroduces the defect it exists for (the first-up failures found in review)."""

from __future__ import annotations

import dataclasses

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from llmops.offline import deploy_checks
from llmops.offline.deploy_checks import check, parse_duration
from llmops.offline.mocks import OfflineMocks
from llmops.offline.plan import Plan, record, run_plan
from tests.conftest import STACKS

REGISTRY = {"m": {"stages": {"production": "v1"}, "versions": {"v1": {"revision": "abc"}}}}


def _rules(plan: Plan) -> dict[str, list[deploy_checks.Finding]]:
    found: dict[str, list[deploy_checks.Finding]] = {}
    for finding in check(plan):
        found.setdefault(finding.rule, []).append(finding)
    return found


def _replace(plan: Plan, name: str, **changes) -> Plan:
    """The plan with one recorded resource changed: the defect put back into the graph."""
    resources = [dataclasses.replace(r, **changes) if r.name == name else r for r in plan.resources]
    return dataclasses.replace(plan, resources=resources)


def _recorded_plan(program, like: Plan) -> Plan:
    """A small program recorded as one stack, checked like a whole environment."""
    recording = record(program, label="platform", mocks=OfflineMocks("us-west-2", registry=REGISTRY))
    return Plan(stack="variant", config=like.config, resources=recording.resources, outputs={},
                invokes=recording.invokes)


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_environments_have_nothing_that_blocks_the_first_up(plans, stack):
    assert check(plans[stack]) == []


def test_a_storage_class_nobody_creates_is_found():
    plan = run_plan("dev", overrides={"llmops:monitoring.prometheus.storageClass": "io2"})
    findings = _rules(plan)["storage-class-exists"]
    assert {f.resource for f in findings} == {"monitoring-kube-prometheus-stack"}
    assert "storage class 'io2' is neither created by the plan nor one EKS provides" in (
        findings[0].message)


def test_a_chart_not_ordered_after_its_storage_class_is_found(plans):
    plan = plans["prod"]
    release = plan.one("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
    storage_class = plan.one("kubernetes:storage.k8s.io/v1:StorageClass")
    assert storage_class.urn in release.dependencies
    unordered = _replace(plan, release.name, dependencies=tuple(
        d for d in release.dependencies if d != storage_class.urn))
    [finding] = _rules(unordered)["storage-class-exists"]
    assert "is not ordered after it" in finding.message


def test_reading_the_registry_of_a_bucket_the_same_stack_creates_is_found(plans):
    def one_stack_registry():
        bucket = aws.s3.Bucket("models")
        aws.s3.get_object_output(bucket=bucket.bucket, key="registry/models/m/stages/production.json")

    findings = _rules(_recorded_plan(one_stack_registry, plans["dev"]))["no-read-of-own-data"]
    assert findings[0].resource == "registry/models/m/stages/production.json"
    assert "from a bucket this stack creates" in findings[0].message
    # the shipped layout reads the registry from the workloads stack, the bucket is the platform's
    assert {i.stack for i in plans["dev"].invokes if i.token.endswith("getObject")} == {"workloads"}


def test_pulling_an_image_from_a_repository_the_same_stack_creates_is_found(plans):
    def one_stack_images():
        repository = aws.ecr.Repository("images", name="team/app")
        k8s.apps.v1.Deployment("app", spec=k8s.apps.v1.DeploymentSpecArgs(
            selector=k8s.meta.v1.LabelSelectorArgs(match_labels={"a": "b"}),
            template=k8s.core.v1.PodTemplateSpecArgs(spec=k8s.core.v1.PodSpecArgs(containers=[
                k8s.core.v1.ContainerArgs(name="app", image=pulumi.Output.concat(
                    repository.repository_url, ":1.0.0"))]))))

    [finding] = _rules(_recorded_plan(one_stack_images, plans["dev"]))["no-image-from-own-registry"]
    assert finding.resource == "app" and "team/app:1.0.0" in finding.message


def test_a_model_rollout_awaited_for_the_default_ten_minutes_is_found(plans):
    plan = plans["prod"]
    name = "qwen-2-5-32b-stable"
    deployment = plan.one("kubernetes:apps/v1:Deployment", name)
    default_wait = _replace(plan, name, options={k: v for k, v in deployment.options.items()
                                                 if k != "customTimeouts"})
    [finding] = _rules(default_wait)["await-covers-start"]
    assert finding.resource == name
    assert finding.message.startswith("the engine waits 600 s but the pod may take")
    assert "node provisioning 900 s" in finding.message  # Karpenter's registration timeout


@pytest.mark.parametrize(("name", "engine"), [("llama-3-8b-stable", "tgi"), ("qwen-2-5-32b-stable", "vllm")])
def test_the_shipped_await_covers_probe_and_node_provisioning(plans, name, engine):
    deployment = plans["prod"].one("kubernetes:apps/v1:Deployment", name)
    probe = next(c for c in deployment.inputs["spec"]["template"]["spec"]["containers"]
                 if c["name"] == engine)["startupProbe"]
    waited = parse_duration(deployment.options["customTimeouts"]["create"])
    assert waited >= probe["periodSeconds"] * probe["failureThreshold"] + 20 * 60
    assert deployment.options["customTimeouts"]["update"] == deployment.options["customTimeouts"]["create"]


def test_a_scaler_that_waits_behind_the_model_rollout_is_found(plans):
    plan = plans["prod"]
    deployment = plan.one("kubernetes:apps/v1:Deployment", "qwen-2-5-32b-stable")
    scaler = next(r for r in plan.resources if r.name == "qwen-2-5-32b-scaler-stable")
    assert deployment.urn not in scaler.dependencies
    blocked = _replace(plan, scaler.name, dependencies=(deployment.urn,))
    [finding] = _rules(blocked)["exist-only-does-not-wait"]
    assert finding.resource == scaler.name and "qwen-2-5-32b-stable" in finding.message


def test_the_image_prepull_daemonset_neither_waits_nor_is_waited_for(plans):
    plan = plans["prod"]
    prepull = plan.one("kubernetes:apps/v1:DaemonSet", "prepull")
    assert deploy_checks.await_seconds(prepull) is None
    deployment = plan.one("kubernetes:apps/v1:Deployment", "llama-3-8b-stable")
    behind = _replace(plan, "prepull", dependencies=(deployment.urn,))
    [finding] = _rules(behind)["exist-only-does-not-wait"]
    assert finding.resource == "prepull"


def test_a_runner_that_times_out_before_the_longest_rollout_is_found():
    plan = run_plan("prod", overrides={"llmops:ci.runner.buildTimeoutMinutes": 20})
    [finding] = _rules(plan)["runner-outlasts-awaits"]
    assert finding.stack == "platform"
    assert "build timeout 20 min is shorter than" in finding.message


def test_reserved_tag_keys_in_the_controller_values_are_found(plans):
    plan = plans["dev"]
    release = plan.one("kubernetes:helm.sh/v3:Release", "gateway-lbc")
    values = {**release.inputs["values"], "defaultTags": {"elbv2.k8s.aws/cluster": "llmops-dev"}}
    [finding] = _rules(_replace(plan, release.name, inputs={**release.inputs, "values": values}))[
        "controller-accepts-values"]
    assert "elbv2.k8s.aws/cluster" in finding.message and "refuses to start" in finding.message


def test_a_model_pinned_to_one_capacity_type_is_found_where_fallback_is_declared(plans):
    plan = plans["prod"]
    name = "llama-3-8b-stable"
    deployment = plan.one("kubernetes:apps/v1:Deployment", name)
    pinned = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "llmops.io/capacity-tier", "operator": "In",
                               "values": ["floor"]}]}]}}
    spec = deployment.inputs["spec"]
    pod = {**spec["template"]["spec"], "affinity": {"nodeAffinity": pinned}}
    inputs = {**deployment.inputs, "spec": {**spec, "template": {**spec["template"], "spec": pod}}}
    [finding] = _rules(_replace(plan, name, inputs=inputs))["fallback-is-schedulable"]
    assert finding.message.startswith("can only run on on-demand GPU capacity")
    # without a declared fallback (dev: spot only) the same placement is fine
    assert "fallback-is-schedulable" not in _rules(plans["dev"])


def test_a_chart_version_never_released_is_found(plans):
    plan = plans["prod"]
    release = plan.one("kubernetes:helm.sh/v3:Release", "monitoring-kube-prometheus-stack")
    unreleased = _replace(plan, release.name, inputs={**release.inputs, "version": "81.4.5"})
    [finding] = _rules(unreleased)["chart-pin-verified"]
    assert finding.message.startswith(
        "chart kube-prometheus-stack 81.4.5 is not a verified release (verified: 81.4.3)")


def test_a_weights_host_path_on_nodes_without_the_nvme_raid_is_found(plans):
    """Drop instanceStorePolicy from the GPU pool's EC2NodeClass: /mnt/k8s-disks/0 becomes a
    directory on the 50 GiB root volume, which the cache would fill."""
    plan = plans["dev"]
    node_class = plan.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass", "gpu-gpu24-x1-class")
    def changed(**spec) -> Plan:
        inputs = {**node_class.inputs, "spec": {k: v for k, v in {**node_class.inputs["spec"], **spec}.items()
                                                if v is not None}}
        return _replace(plan, node_class.name, inputs=inputs)

    no_raid = changed(instanceStorePolicy=None)
    findings = _rules(no_raid)["host-cache-has-its-disk"]
    assert {f.resource for f in findings} == {"llama-3-8b-stable"}
    assert ("NodePool gpu24-x1's EC2NodeClass gpu24-x1 sets no instanceStorePolicy RAID0, so "
            "they land on its 50 GiB root volume (98 GiB needed") in findings[0].message
    mappings = node_class.inputs["spec"]["blockDeviceMappings"]
    big_root = [{**mappings[0], "ebs": {**mappings[0]["ebs"], "volumeSize": "200Gi"}}]
    roomy = changed(instanceStorePolicy=None, blockDeviceMappings=big_root)
    assert "host-cache-has-its-disk" not in _rules(roomy)


def test_every_verified_pin_names_its_upstream_source():
    for chart, versions in deploy_checks.verified_charts().items():
        for version, facts in versions.items():
            assert "/" in facts["repo"] and "commit" in facts["source"], (chart, version)


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("20m", 1200), ("1h30m", 5400)])
def test_durations_parse_like_pulumi_takes_them(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bad_duration_is_an_error():
    with pytest.raises(ValueError, match="not a duration: '20 minutes'"):
        parse_duration("20 minutes")


def test_plan_json_records_the_options_that_decide_deploy_behaviour(plans):
    deployment = plans["prod"].one("kubernetes:apps/v1:Deployment", "llama-3-8b-stable").to_json()
    assert deployment["stack"] == "workloads"
    assert set(deployment["options"]) >= {"customTimeouts", "ignoreChanges", "provider"}
    assert deployment["options"]["ignoreChanges"] == ["spec.replicas"]
    node_group = plans["prod"].one("aws:eks/nodeGroup:NodeGroup", "cluster-system")
    addon = plans["prod"].one("aws:eks/addon:Addon", "cluster-vpc-cni")
    # nodes join only once the pinned CNI (with its IRSA role) is there
    assert addon.urn in node_group.dependencies


# -- KEDA's webhook and creation order (llmops/offline/deploy_checks/keda_and_order.py) -------
def _scaler(plan: Plan, name: str = "llama-3-8b-scaler-stable"):
    return plan.one("kubernetes:keda.sh/v1alpha1:ScaledObject", name)


def test_keda_2_17_refuses_a_fallback_without_an_explicit_average_value_trigger(plans):
    plan = plans["prod"]
    scaler = _scaler(plan)
    spec = scaler.inputs["spec"]
    implicit = {**spec, "triggers": [{k: v for k, v in t.items() if k != "metricType"}
                                     for t in spec["triggers"]]}
    broken = _replace(plan, scaler.name, inputs={**scaler.inputs, "spec": implicit})
    [finding] = _rules(broken)["keda-admits-scaled-object"]
    assert finding.resource == scaler.name
    assert finding.message == (
        "KEDA 2.17.0's webhook refuses it: at least one trigger (that is not cpu or memory) has to "
        "have the `AverageValue` type for the fallback to be enabled (KEDA 2.17.0 requires "
        "metricType: AverageValue set explicitly)")


def test_the_fallback_rule_follows_the_pinned_keda_version():
    from llmops.offline.deploy_checks.keda_and_order import scaled_object_problems

    spec = {"minReplicaCount": 1, "maxReplicaCount": 2, "fallback": {"failureThreshold": 3, "replicas": 1},
            "triggers": [{"type": "prometheus", "metadata": {}}]}
    assert scaled_object_problems(spec, "2.17.0")  # explicit AverageValue needed
    assert scaled_object_problems(spec, "2.18.0") == []  # v2.18.0 relaxed CheckFallbackValid
    cpu_only = {**spec, "triggers": [{"type": "cpu", "metricType": "AverageValue", "metadata": {}}]}
    assert scaled_object_problems(cpu_only, "2.18.0")  # cpu/memory never count
    value = {**spec, "triggers": [{"type": "prometheus", "metricType": "Value", "metadata": {}}]}
    assert scaled_object_problems(value, "2.17.0")


def test_keda_refuses_inverted_replica_bounds_and_a_second_scaler_for_one_workload(plans):
    plan = plans["prod"]
    stable, canary = _scaler(plan), _scaler(plan, "llama-3-8b-scaler-canary")
    inverted = {**stable.inputs["spec"], "minReplicaCount": 9, "maxReplicaCount": 8}
    twin = {**canary.inputs["spec"], "scaleTargetRef": stable.inputs["spec"]["scaleTargetRef"]}
    broken = _replace(_replace(plan, stable.name, inputs={**stable.inputs, "spec": inverted}),
                      canary.name, inputs={**canary.inputs, "spec": twin})
    messages = sorted(f.message for f in _rules(broken)["keda-admits-scaled-object"])
    assert messages == [
        "KEDA 2.17.0's webhook refuses it: MinReplicaCount=9 must be less than MaxReplicaCount=8",
        "KEDA 2.17.0's webhook refuses it: the workload Deployment/tgi-llama-3-8b is already managed "
        "by the ScaledObject llama-3-8b-scaler-canary"]


def test_a_scaler_created_before_the_keda_release_that_installs_its_crd_is_found(plans):
    plan = plans["prod"]
    scaler = _scaler(plan)
    keda = plan.one("kubernetes:helm.sh/v3:Release", "serving-keda")
    assert keda.urn in scaler.dependencies  # the shipped order
    unordered = _replace(plan, scaler.name,
                         dependencies=tuple(d for d in scaler.dependencies if d != keda.urn))
    [finding] = _rules(unordered)["crd-before-custom-resource"]
    assert (finding.resource, finding.message) == (scaler.name, (
        "a ScaledObject (keda.sh) is created without waiting for serving-keda, which installs its "
        "CRD; add it to dependsOn"))


def test_objects_created_before_their_namespace_are_found(plans):
    plan = plans["prod"]
    namespace = plan.one("kubernetes:core/v1:Namespace", "serving-ns")
    broken = plan
    for name in ("qwen-2-5-32b-stable", "qwen-2-5-32b-svc-stable", "qwen-2-5-32b-pdb-stable"):
        resource = next(r for r in plan.resources if r.name == name)
        assert namespace.urn in resource.dependencies
        broken = _replace(broken, name, dependencies=tuple(
            d for d in resource.dependencies if d != namespace.urn))
    findings = _rules(broken)["namespace-before-object"]
    assert {f.resource for f in findings} == {
        "qwen-2-5-32b-stable", "qwen-2-5-32b-svc-stable", "qwen-2-5-32b-pdb-stable"}
    assert findings[0].message == ("is created in namespace 'llm-serving' without waiting for "
                                   "serving-ns, which creates it; add it to dependsOn")


def test_ordering_is_checked_for_any_program_not_only_ours(plans):
    def chart_and_objects(ordered: bool):
        def program():
            ns = k8s.core.v1.Namespace("team-ns", metadata={"name": "team"})
            chart = k8s.helm.v3.Release("prom", chart="kube-prometheus-stack", version="81.4.3",
                                        namespace="team",
                                        opts=pulumi.ResourceOptions(depends_on=[ns]))
            after = pulumi.ResourceOptions(depends_on=[ns, chart] if ordered else [])
            k8s.core.v1.ConfigMap("cm", metadata={"name": "cm", "namespace": "team"}, opts=after)
            k8s.apiextensions.CustomResource(
                "rule", api_version="monitoring.coreos.com/v1", kind="PrometheusRule",
                metadata={"name": "r", "namespace": "team"}, spec={"groups": []}, opts=after)
        return program

    unordered = _rules(_recorded_plan(chart_and_objects(False), plans["dev"]))
    assert {f.resource for f in unordered["namespace-before-object"]} == {"cm", "rule"}
    assert [f.resource for f in unordered["crd-before-custom-resource"]] == ["rule"]
    ordered = _rules(_recorded_plan(chart_and_objects(True), plans["dev"]))
    assert "namespace-before-object" not in ordered and "crd-before-custom-resource" not in ordered
