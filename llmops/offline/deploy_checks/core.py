"""The first deploy checks: storage classes, deploy-time reads, images, awaits, controller
values, fallback scheduling, chart pins, the node cache's disk."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml

from components.nodepools import CAPACITY_LABEL
from llmops.offline.deploy_checks.base import (
    BUCKET,
    CODEBUILD_PROJECT,
    DEFAULT_AWAIT_S,
    DEPLOYMENT,
    EKS_STORAGE_CLASSES,
    EXIST_ONLY_KINDS,
    HELM_RELEASE,
    LBC_RESERVED_TAGS,
    LOCAL_DISKS,
    MODEL_LABEL,
    NODE_CLASS,
    NODE_POOL,
    REPOSITORY,
    STORAGE_CLASS,
    VERIFIED_PINS,
    WORKLOADS,
    Finding,
    Rule,
    _containers,
    _k8s_name,
    _kind,
    _node_provision_seconds,
    _pod_spec,
    _pool_requirement,
    _pool_spec,
    _pools_for,
    _probe_budget,
    _tolerates_gpu,
    _upstream,
    _walk,
    await_seconds,
)
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource
from vocabulary.config.placement import cache_entry_gib


# -- rules ----------------------------------------------------------------------------------
def storage_class_exists(plan: Plan) -> Iterator[Finding]:
    """A PVC naming a StorageClass nobody creates stays Pending forever (and so does its
    pod); one created in the same stack must exist before the resource that uses it."""
    classes = {r.inputs.get("metadata", {}).get("name"): r for r in plan.of_type(STORAGE_CLASS)}
    for resource in plan.resources:
        if resource.type == STORAGE_CLASS:
            continue
        for name in set(_walk(resource.inputs, "storageClassName")):
            if not isinstance(name, str) or name in EKS_STORAGE_CLASSES:
                continue
            created = classes.get(name)
            if created is None:
                yield Finding("storage-class-exists", resource.stack, resource.name,
                              f"storage class {name!r} is neither created by the plan nor one EKS "
                              f"provides ({', '.join(sorted(EKS_STORAGE_CLASSES))}); its volumes "
                              "would never bind")
            elif created.stack == resource.stack and created.urn not in _upstream(plan, resource):
                yield Finding("storage-class-exists", resource.stack, resource.name,
                              f"uses storage class {name!r} but is not ordered after it; add it "
                              "to dependsOn so its volumes are not provisioned before it exists")


def no_deploy_time_read_of_own_data(plan: Plan) -> Iterator[Finding]:
    """A data source reading what the same stack creates fails on a fresh account: the
    read happens before the bucket (and what should be in it) exists."""
    buckets = {(r.stack, r.outputs.get("bucket")) for r in plan.of_type(BUCKET)}
    for invoke in plan.invokes:
        if invoke.token == "aws:s3/getObject:getObject" and (
                invoke.stack, invoke.args.get("bucket")) in buckets:
            yield Finding("no-read-of-own-data", invoke.stack, invoke.args.get("key", "?"),
                          f"reads s3://{invoke.args.get('bucket')}/{invoke.args.get('key')} at "
                          "deploy time from a bucket this stack creates; on a fresh account it "
                          "does not exist yet (move the reader to a later stack)")


def no_image_from_own_registry(plan: Plan) -> Iterator[Finding]:
    """Pods pulling from an ECR repository the same stack creates sit in ImagePullBackOff:
    nobody could push the image between the repository's creation and the pod's."""
    repositories = {(r.stack, r.outputs.get("repositoryUrl")) for r in plan.of_type(REPOSITORY)}
    for resource in plan.resources:
        if resource.type not in WORKLOADS:
            continue
        for container in _containers(resource):
            image = str(container.get("image", ""))
            for stack, url in repositories:
                if url and stack == resource.stack and image.startswith(f"{url}:"):
                    yield Finding("no-image-from-own-registry", resource.stack, resource.name,
                                  f"container {container.get('name')} pulls {image} from a "
                                  "repository this stack creates; publish into a repository of an "
                                  "earlier stack")


def await_covers_start(plan: Plan) -> Iterator[Finding]:
    """The engine must wait at least as long as a workload may take to start: its startup
    probe's budget, plus a new node's provisioning when it runs on (scaled-to-zero) GPU
    nodes; otherwise a healthy first rollout is reported failed and the `up` stops."""
    provision = _node_provision_seconds(plan)
    for resource in plan.of_type(DEPLOYMENT):
        budget = max((_probe_budget(c) for c in _containers(resource)), default=0)
        if not budget:
            continue
        needed = budget + (provision if _tolerates_gpu(resource) else 0)
        waited = await_seconds(resource)
        if waited is not None and waited < needed:
            yield Finding("await-covers-start", resource.stack, resource.name,
                          f"the engine waits {waited} s but the pod may take {needed} s to start "
                          f"(startup probe {budget} s"
                          + (f" + node provisioning {provision} s" if needed > budget else "")
                          + "); set customTimeouts from the start budget or skip the await")


def exist_only_resources_do_not_wait(plan: Plan) -> Iterator[Finding]:
    """Scalers, monitors, budgets and Services only need to exist; behind a model's rollout
    they would wait up to an hour, and with the rollout failing they would never exist."""
    long_waits = {r.urn: r for r in plan.of_type(DEPLOYMENT)
                  if (await_seconds(r) or 0) > DEFAULT_AWAIT_S}
    for resource in plan.resources:
        if _kind(resource) not in EXIST_ONLY_KINDS and await_seconds(resource) is not None:
            continue
        for urn in _upstream(plan, resource) & set(long_waits):
            yield Finding("exist-only-does-not-wait", resource.stack, resource.name,
                          f"waits for the rollout of {long_waits[urn].name} (up to "
                          f"{await_seconds(long_waits[urn])} s); refer to it by name instead")


def runner_outlasts_awaits(plan: Plan) -> Iterator[Finding]:
    """The in-VPC runner's build timeout must outlast the workloads stack's longest await."""
    projects = plan.of_type(CODEBUILD_PROJECT)
    waits = [(await_seconds(r) or 0, r) for r in plan.of_type(DEPLOYMENT) if r.stack == "workloads"]
    if not projects or not waits:
        return
    longest, deployment = max(waits, key=lambda w: w[0])
    for project in projects:
        minutes = project.inputs.get("buildTimeout", 60)
        if minutes * 60 < longest:
            yield Finding("runner-outlasts-awaits", project.stack, project.name,
                          f"build timeout {minutes} min is shorter than the {longest} s the "
                          f"workloads `up` may wait for {deployment.name}; raise "
                          "llmops:ci.runner.buildTimeoutMinutes")


def controller_accepts_its_values(plan: Plan) -> Iterator[Finding]:
    """The load balancer controller exits at start when defaultTags names a reserved key,
    and while it is down its webhooks reject what they guard."""
    for release in plan.of_type(HELM_RELEASE):
        if release.inputs.get("chart") != "aws-load-balancer-controller":
            continue
        tags = release.inputs.get("values", {}).get("defaultTags", {}) or {}
        reserved = sorted(set(tags) & LBC_RESERVED_TAGS)
        if reserved:
            yield Finding("controller-accepts-values", release.stack, release.name,
                          f"defaultTags uses reserved key(s) {', '.join(reserved)}; the controller "
                          "refuses to start (it adds them itself)")


def fallback_is_schedulable(plan: Plan) -> Iterator[Finding]:
    """Where the environment declares an on-demand fallback, a GPU pod must be able to land on
    a NodePool that buys spot and on one that buys on-demand, or Karpenter has nothing to
    fall back to when spot is gone."""
    if not plan.config.serving.on_demand_fallback:
        return
    pools = plan.of_type(NODE_POOL)
    for resource in plan.of_type(DEPLOYMENT):
        if not _tolerates_gpu(resource):
            continue
        capacity = {c for p in _pools_for(resource, pools) for c in _pool_requirement(p, CAPACITY_LABEL)}
        if not {"spot", "on-demand"} <= capacity:
            yield Finding("fallback-is-schedulable", resource.stack, resource.name,
                          f"can only run on {', '.join(sorted(capacity)) or 'no'} GPU capacity, but "
                          "llmops:serving.onDemandFallback is on; select the GPU shape, and let its "
                          "NodePool buy spot and on-demand")


@cache
def verified_charts() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(VERIFIED_PINS.read_text())["charts"]


def chart_pin_verified(plan: Plan) -> Iterator[Finding]:
    """Every Helm release pins a chart version that was checked against its upstream
    source (components/data/verified_pins.yaml); a never-released version fails the `up`."""
    charts = verified_charts()
    for release in plan.of_type(HELM_RELEASE):
        chart, version = release.inputs.get("chart"), str(release.inputs.get("version"))
        if version not in charts.get(chart, {}):
            known = ", ".join(sorted(charts.get(chart, {}))) or "none"
            yield Finding("chart-pin-verified", release.stack, release.name,
                          f"chart {chart} {version} is not a verified release (verified: {known}); "
                          "check the chart's repository and record it in "
                          "components/data/verified_pins.yaml")


def _root_volume_gib(node_class: RecordedResource) -> int:
    mappings = _pool_spec(node_class).get("blockDeviceMappings", [])
    sizes = [m.get("ebs", {}).get("volumeSize") for m in mappings]
    return max((int(float(str(v).removesuffix("Gi"))) for v in sizes if v), default=0)


def host_cache_has_its_disk(plan: Plan) -> Iterator[Finding]:
    """A pod that keeps model weights in a hostPath under /mnt/k8s-disks gets NVMe only where
    the NodePool's EC2NodeClass asks for the instance-store RAID (instanceStorePolicy RAID0,
    which nodeadm mounts there); without it the weights fill the root volume (50 GiB on NVMe
    pools) and kubelet evicts the model servers."""
    pools = plan.of_type(NODE_POOL)
    classes = {c.inputs.get("metadata", {}).get("name"): c for c in plan.of_type(NODE_CLASS)}
    models = {m.name: m for m in plan.config.models}
    for resource in (r for r in plan.resources if r.type in WORKLOADS):
        paths = [v["hostPath"].get("path", "") for v in _pod_spec(resource).get("volumes", [])
                 if isinstance(v.get("hostPath"), dict)]
        if not any(path.startswith(LOCAL_DISKS) for path in paths):
            continue
        model = models.get(resource.inputs.get("metadata", {}).get("labels", {}).get(MODEL_LABEL))
        reserve = next((int(float(c["command"][c["command"].index("--reserve-gib") + 1]))
                        for c in _containers(resource) if "--reserve-gib" in c.get("command", [])), 0)
        needed = reserve + (cache_entry_gib(model) if model else 0)
        for pool in _pools_for(resource, pools):
            ref = _pool_spec(pool).get("template", {}).get("spec", {}).get("nodeClassRef", {})
            node_class = classes.get(ref.get("name"))
            if node_class is None or _pool_spec(node_class).get("instanceStorePolicy") == "RAID0":
                continue
            root = _root_volume_gib(node_class)
            if root < needed:
                yield Finding("host-cache-has-its-disk", resource.stack, resource.name,
                              f"keeps weights under {LOCAL_DISKS} but NodePool {_k8s_name(pool)}'s "
                              f"EC2NodeClass {ref.get('name')} sets no instanceStorePolicy RAID0, so "
                              f"they land on its {root} GiB root volume ({needed} GiB needed with the "
                              "fetch's reserve); set instanceStorePolicy: RAID0 or size the root volume")


RULES: tuple[Rule, ...] = (
    chart_pin_verified,
    storage_class_exists, no_deploy_time_read_of_own_data, no_image_from_own_registry,
    await_covers_start, exist_only_resources_do_not_wait, runner_outlasts_awaits,
    controller_accepts_its_values, fallback_is_schedulable, host_cache_has_its_disk)


