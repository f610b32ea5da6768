"""What every deploy check shares: the finding, the rule type, and readers of the recorded
plan (pod specs, dependencies, awaits, durations)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.nodepools import GPU_TAINT_KEY, REGISTRATION_TIMEOUT_S
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource

STORAGE_CLASS = "kubernetes:storage.k8s.io/v1:StorageClass"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
WORKLOADS = (DEPLOYMENT, "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet",
             "kubernetes:batch/v1:Job")
BUCKET = "aws:s3/bucket:Bucket"
REPOSITORY = "aws:ecr/repository:Repository"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
DAEMONSET = "kubernetes:apps/v1:DaemonSet"
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
VERIFIED_PINS = Path(__file__).resolve().parents[3] / "components" / "data" / "verified_pins.yaml"


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
    """How long a pending pod may wait for a new node: Karpenter's registration timeout
    (after it a NodeClaim is replaced), when the plan has NodePools."""
    return REGISTRATION_TIMEOUT_S if plan.of_type(NODE_POOL) else 0


def _k8s_name(resource: RecordedResource) -> str:
    """The object's name in the cluster (the recorded name is Pulumi's)."""
    return resource.inputs.get("metadata", {}).get("name") or resource.name


def _pool_spec(pool: RecordedResource) -> dict[str, Any]:
    return pool.inputs.get("spec", {}) or {}


def _pool_values(pool: RecordedResource) -> dict[str, set[str]]:
    """Label key -> the values a node of this NodePool may carry (template labels, and its
    requirements' In values)."""
    spec = _pool_spec(pool)
    values = {k: {v} for k, v in spec.get("template", {}).get("metadata", {}).get("labels", {}).items()}
    for req in spec.get("template", {}).get("spec", {}).get("requirements", []):
        if req.get("operator") == "In":
            values[req["key"]] = set(req.get("values", []))
    return values


def _pool_requirement(pool: RecordedResource, key: str) -> list[str]:
    return sorted(_pool_values(pool).get(key, set()))


def _compatible(requirement: dict[str, Any], values: dict[str, set[str]]) -> bool:
    have = values.get(requirement.get("key", ""))
    operator, wanted = requirement.get("operator"), set(requirement.get("values", []))
    if operator == "In":
        return bool(have and have & wanted)
    if operator == "NotIn":
        return have is None or bool(have - wanted)
    return {"Exists": have is not None, "DoesNotExist": have is None}.get(operator, False)


def _tolerates(pod: dict[str, Any], taint: dict[str, Any]) -> bool:
    for t in pod.get("tolerations", []):
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, "", taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value") == taint.get("value"):
            return True
    return False


def _pools_for(resource: RecordedResource, pools: list[RecordedResource]) -> list[RecordedResource]:
    """The NodePools Karpenter may launch a node from for this workload's pods: their labels
    satisfy its nodeSelector and required node affinity, and it tolerates their taints."""
    pod = _pod_spec(resource)
    terms = pod.get("affinity", {}).get("nodeAffinity", {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
    found = []
    for pool in pools:
        values = _pool_values(pool)
        taints = _pool_spec(pool).get("template", {}).get("spec", {}).get("taints", [])
        if not all(_tolerates(pod, t) for t in taints):
            continue
        if any(v not in values.get(k, set()) for k, v in pod.get("nodeSelector", {}).items()):
            continue
        if terms and not any(all(_compatible(r, values) for r in t.get("matchExpressions", []))
                             for t in terms):
            continue
        found.append(pool)
    return found


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


