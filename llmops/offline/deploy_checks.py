"""Deploy-time checks over a recorded plan: what the schema and policies cannot see.

Each rule is a failure class that made a real first `pulumi up` fail on a fresh account
although every offline check passed: ordering, awaits, what a controller refuses at start,
what exists when a resource is created. A rule reads the recorded graph (resources with
their stack, inputs, outputs, options and dependencies, and the invokes the programs made)
and returns findings; `llmops plan` prints them and fails on any.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.gpu_nodes import CAPACITY_LABEL, GPU_TAINT_KEY
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource
from stacks.config.placement import cache_entry_gib

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WORKLOADS = (DEPLOYMENT, "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
             "kubernetes:batch/v1:Job")
BUCKET = "aws:s3/bucket:Bucket"
REPOSITORY = "aws:ecr/repository:Repository"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
CODEBUILD_PROJECT = "aws:codebuild/project:Project"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
#: Where nodeadm mounts the instance-store RAID (localStorage; templates/al2023/runtime/bin/
#: setup-local-disks in awslabs/amazon-eks-ami). A hostPath below it is on NVMe only on nodes
#: whose NodeConfig asks for the RAID; elsewhere it is a directory on the root volume.
LOCAL_DISKS = "/mnt/k8s-disks/"
MODEL_LABEL = "llmops.io/model"
#: StorageClasses an EKS cluster has without anyone creating them.
EKS_STORAGE_CLASSES = frozenset({"gp2"})
#: pulumi-kubernetes waits this long for a Deployment unless told otherwise.
DEFAULT_AWAIT_S = 600
#: Tag keys the AWS Load Balancer Controller v2.13 reserves; `--default-tags` naming one of
#: them stops the controller at start (pkg/config/controller_config.go at v2.13.0).
LBC_RESERVED_TAGS = frozenset({
    "elbv2.k8s.aws/cluster", "elbv2.k8s.aws/resource",
    "ingress.k8s.aws/stack", "ingress.k8s.aws/resource",
    "service.k8s.aws/stack", "service.k8s.aws/resource",
    "gateway.k8s.aws.nlb/stack", "gateway.k8s.aws.nlb/resource",
    "gateway.k8s.aws.alb/stack", "gateway.k8s.aws.alb/resource"})
#: Kinds that only need to exist: they must not wait behind a workload's rollout.
EXIST_ONLY_KINDS = frozenset({"ScaledObject", "PodMonitor", "ServiceMonitor", "PrometheusRule",
                              "PodDisruptionBudget", "Service", "HorizontalPodAutoscaler"})
VERIFIED_PINS = Path(__file__).resolve().parents[2] / "components" / "data" / "verified_pins.yaml"


@dataclass(frozen=True)
class Finding:
    """One reason the first real `up` would fail (or misbehave), and what to do."""

    rule: str
    stack: str
    resource: str
    message: str

    def __str__(self) -> str:
        return f"[{self.rule}] {self.stack}/{self.resource}: {self.message}"


Rule = Callable[[Plan], Iterator[Finding]]


# -- helpers --------------------------------------------------------------------------------
def _walk(value: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key`, anywhere in a nested input."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == key:
                yield v
            yield from _walk(v, key)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v, key)


def _pod_spec(resource: RecordedResource) -> dict[str, Any]:
    return (resource.inputs.get("spec", {}).get("template", {}).get("spec", {}))


def _containers(resource: RecordedResource) -> list[dict[str, Any]]:
    spec = _pod_spec(resource)
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def _kind(resource: RecordedResource) -> str:
    return resource.inputs.get("kind") or resource.type.rsplit(":", 1)[-1]


def _upstream(plan: Plan, resource: RecordedResource) -> set[str]:
    """URNs a resource waits for before the engine creates it (transitive dependencies)."""
    by_urn = {r.urn: r for r in plan.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn in seen:
            continue
        seen.add(urn)
        found = by_urn.get(urn)
        if found is not None:
            todo.extend(found.dependencies)
            # a component is done when its children are: waiting on it waits on them
            todo.extend(r.urn for r in plan.resources if r.parent == urn)
    return seen


def parse_duration(text: str) -> int:
    """Seconds of a Go-style duration as Pulumi takes it: "90s", "20m", "1h30m"."""
    parts = re.findall(r"(\d+)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _probe_budget(container: dict[str, Any]) -> int:
    probe = container.get("startupProbe")
    if not probe:
        return 0
    return (probe.get("initialDelaySeconds", 0)
            + probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3))


def _node_provision_seconds(plan: Plan) -> int:
    """cluster-autoscaler's --max-node-provision-time, when the plan installs it."""
    for release in plan.of_type(HELM_RELEASE):
        if release.inputs.get("chart") == "cluster-autoscaler":
            value = release.inputs.get("values", {}).get("extraArgs", {}).get(
                "max-node-provision-time")
            if isinstance(value, str):
                return parse_duration(value)
    return 0


def _tolerates_gpu(resource: RecordedResource) -> bool:
    return any(t.get("key") == GPU_TAINT_KEY for t in _pod_spec(resource).get("tolerations", []))


def await_seconds(resource: RecordedResource) -> int | None:
    """How long the engine waits for this resource's rollout; None when it does not wait."""
    annotations = resource.inputs.get("metadata", {}).get("annotations", {})
    if annotations.get("pulumi.com/skipAwait") == "true":
        return None
    create = resource.options.get("customTimeouts", {}).get("create")
    if create:
        return parse_duration(create)
    if "pulumi.com/timeoutSeconds" in annotations:
        return int(annotations["pulumi.com/timeoutSeconds"])
    return DEFAULT_AWAIT_S


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


def _selects(requirement: dict[str, Any], labels: dict[str, str]) -> bool:
    value = labels.get(requirement.get("key", ""))
    operator, values = requirement.get("operator"), requirement.get("values", [])
    return {"In": value in values, "NotIn": value not in values, "Exists": value is not None,
            "DoesNotExist": value is None}.get(operator, False)


def _schedulable_groups(resource: RecordedResource, groups: list[RecordedResource]):
    affinity = _pod_spec(resource).get("affinity", {}).get("nodeAffinity", {})
    terms = affinity.get("requiredDuringSchedulingIgnoredDuringExecution", {}).get(
        "nodeSelectorTerms", [])
    selector = _pod_spec(resource).get("nodeSelector", {})
    for group in groups:
        labels = group.inputs.get("labels", {})
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if not terms or any(all(_selects(req, labels) for req in term.get("matchExpressions", []))
                            for term in terms):
            yield group


def fallback_is_schedulable(plan: Plan) -> Iterator[Finding]:
    """Where the environment declares an on-demand fallback, a GPU pod that only one capacity
    type can host gives the autoscaler's priorities nothing to fall back to."""
    if not plan.config.serving.on_demand_fallback:
        return
    groups = plan.of_type(NODE_GROUP)
    for resource in plan.of_type(DEPLOYMENT):
        if not _tolerates_gpu(resource):
            continue
        capacity = {g.inputs.get("labels", {}).get(CAPACITY_LABEL)
                    for g in _schedulable_groups(resource, groups)}
        if capacity != {"spot", "on-demand"}:
            yield Finding("fallback-is-schedulable", resource.stack, resource.name,
                          f"can only run on {', '.join(sorted(c for c in capacity if c)) or 'no'} "
                          "GPU nodes, but llmops:serving.onDemandFallback is on; select the GPU "
                          "shape, not a pool")


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


def _local_raid(template: RecordedResource) -> bool:
    """The node's user data asks nodeadm for the instance-store RAID."""
    try:
        text = base64.b64decode(template.inputs.get("userData") or "").decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    return re.search(r"localStorage:\s*\n\s*strategy:\s*RAID(0|10)\b", text) is not None


def _root_volume_gib(template: RecordedResource) -> int:
    return max((m.get("ebs", {}).get("volumeSize") or 0
                for m in template.inputs.get("blockDeviceMappings", [])), default=0)


def host_cache_has_its_disk(plan: Plan) -> Iterator[Finding]:
    """A pod that keeps model weights in a hostPath under /mnt/k8s-disks gets NVMe only where
    the node group's launch template asks nodeadm for the RAID; without it the weights fill
    the root volume (50 GiB on NVMe pools) and kubelet evicts the model servers."""
    groups = plan.of_type(NODE_GROUP)
    templates = {t.urn: t for t in plan.of_type(LAUNCH_TEMPLATE)}
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
        for group in _schedulable_groups(resource, groups):
            template = next((templates[d] for d in group.dependencies if d in templates), None)
            if template is None or _local_raid(template):
                continue
            root = _root_volume_gib(template)
            if root < needed:
                yield Finding("host-cache-has-its-disk", resource.stack, resource.name,
                              f"keeps weights under {LOCAL_DISKS} but node group {group.name}'s "
                              f"launch template asks nodeadm for no instance-store RAID, so they "
                              f"land on its {root} GiB root volume ({needed} GiB needed with the "
                              "fetch's reserve); set localStorage RAID0 in its NodeConfig or "
                              "size the root volume")


RULES: tuple[Rule, ...] = (
    chart_pin_verified,
    storage_class_exists, no_deploy_time_read_of_own_data, no_image_from_own_registry,
    await_covers_start, exist_only_resources_do_not_wait, runner_outlasts_awaits,
    controller_accepts_its_values, fallback_is_schedulable, host_cache_has_its_disk)


def check(plan: Plan) -> list[Finding]:
    """Every finding of every rule, in a stable order."""
    return sorted((f for rule in RULES for f in rule(plan)),
                  key=lambda f: (f.rule, f.stack, f.resource))


def render(findings: list[Finding], rules: int = len(RULES)) -> str:
    if not findings:
        return f"Deploy checks: nothing blocks the first `up` ({rules} checks)."
    lines = [f"Deploy checks: {len(findings)} problem(s) would stop or break the first `up`:"]
    lines += [f"  - {f}" for f in findings]
    return "\n".join(lines)
