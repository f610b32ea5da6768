"""Kubernetes workloads: sized, pinned, unprivileged, GPU-aware; model-server Deployments
probed and protected by a PodDisruptionBudget; Helm charts pinned."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from policies.rules import Finding, Resource, Rule, RuleContext, as_list, computed, get, known, of_type

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
#: Workload type -> path of its pod spec in the inputs.
POD_SPEC_PATHS = {
    "kubernetes:core/v1:Pod": "spec",
    DEPLOYMENT: "spec.template.spec",
    "kubernetes:apps/v1:StatefulSet": "spec.template.spec",
    "kubernetes:apps/v1:DaemonSet": "spec.template.spec",
    "kubernetes:apps/v1:ReplicaSet": "spec.template.spec",
    "kubernetes:batch/v1:Job": "spec.template.spec",
    "kubernetes:batch/v1:CronJob": "spec.jobTemplate.spec.template.spec",
}
WORKLOADS = tuple(POD_SPEC_PATHS)
GPU = "nvidia.com/gpu"
#: model servers of every engine (TGI, vLLM) carry it on their pods (components/engines)
SERVING_LABELS = {"app.kubernetes.io/component": "model-server"}
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
UNPINNED_VERSION = re.compile(r"[\^~*<>=| ]|(^|\.)[xX](\.|$)|latest")


def pod_spec(type_token: str, props: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = get(props, POD_SPEC_PATHS.get(type_token, "spec"))
    return spec if isinstance(spec, Mapping) else {}


def containers(spec: Mapping[str, Any], init: bool = True) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(label, container) for containers and, unless `init` is False, init containers."""
    kinds = (("containers", "container"), ("initContainers", "init container"))
    for key, label in kinds[: 2 if init else 1]:
        for c in as_list(spec.get(key)):
            if isinstance(c, Mapping):
                yield f"{label} {c.get('name', '?')!r}", c


def quantity(resources: Any, section: str, name: str) -> Any:
    """resources.<section>[<name>]; names like nvidia.com/gpu contain dots, so no `get` path."""
    quantities = resources.get(section) if isinstance(resources, Mapping) else None
    return quantities.get(name) if isinstance(quantities, Mapping) else None


def gpu_count(container: Mapping[str, Any]) -> float:
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        value = quantity(resources, section, GPU)
        if known(value):
            try:
                return float(value)
            except (TypeError, ValueError):
                return 1.0
    return 0.0


def requests_gpu(spec: Mapping[str, Any]) -> bool:
    return any(gpu_count(c) > 0 for _, c in containers(spec))


def is_serving(type_token: str, props: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    """A model-server Deployment (TGI or vLLM): the selector labels on the Deployment or its pod
    template."""
    if type_token != DEPLOYMENT:
        return False
    for path in ("metadata.labels", "spec.template.metadata.labels"):
        labels = get(props, path) or {}
        if isinstance(labels, Mapping) and all(labels.get(k) == v for k, v in selector.items()):
            return True
    return False


# -- every workload ---------------------------------------------------------------------------

def check_container_resources(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    problems = []
    for label, container in containers(pod_spec(type_token, props)):
        resources = container.get("resources") or {}
        if not known(resources):
            continue
        missing = [f"{section}.{name}" for section in ("requests", "limits") for name in ctx[section]
                   if not quantity(resources, section, name)]
        if missing:
            problems.append(f"{label} sets no {', '.join(missing)}")
    return problems


def image_problem(image: Any) -> str | None:
    if computed(image):
        return None
    if not image:
        return "has no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (pulls :latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"image {image!r} uses the mutable tag :latest"
    return None


def check_image_pinned(type_token: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    problems = []
    for label, container in containers(pod_spec(type_token, props)):
        problem = image_problem(container.get("image"))
        if problem:
            problems.append(f"{label} {problem}")
    return problems


def _allow_listed(props: Mapping[str, Any], ctx: RuleContext) -> bool:
    name = get(props, "metadata.name") or ctx.name
    namespace = get(props, "metadata.namespace") or "default"
    return (any(fnmatch.fnmatchcase(str(name), p) for p in ctx["allowedNames"])
            or (known(namespace) and namespace in ctx["allowedNamespaces"]))


def check_privileged(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    spec = pod_spec(type_token, props)
    problems = [f"pod uses the host namespace ({key}: true)" for key in HOST_NAMESPACES
                if spec.get(key) is True]
    for label, container in containers(spec):
        if get(container, "securityContext.privileged") is True:
            problems.append(f"{label} runs privileged")
    if problems and _allow_listed(props, ctx):
        return []
    return problems


def _tolerates(tolerations: Any, key: str, value: str) -> bool:
    """Kubernetes matching: an empty effect matches every effect; the operator defaults to
    Equal (the value must match); Exists matches any value, and with no key every taint."""
    for t in as_list(tolerations):
        if not isinstance(t, Mapping):
            continue
        if t.get("effect") not in (None, "", "NoSchedule"):
            continue
        exists = t.get("operator") == "Exists"
        if exists and not t.get("key"):
            return True
        if t.get("key") == key and (exists or str(t.get("value") or "") == value):
            return True
    return False


def check_gpu_toleration(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    spec = pod_spec(type_token, props)
    if not requests_gpu(spec) or computed(spec.get("tolerations")):
        return []
    if _tolerates(spec.get("tolerations"), ctx["taintKey"], str(ctx["taintValue"])):
        return []
    return [f"requests {GPU} but does not tolerate the {ctx['taintKey']}={ctx['taintValue']}:NoSchedule "
            "taint of the GPU nodes, so it can never schedule"]


# -- model-server Deployments (TGI, vLLM) ----------------------------------------------------

def check_serving_gpu(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if not is_serving(type_token, props, ctx["servingLabels"]):
        return []
    if requests_gpu(pod_spec(type_token, props)):
        return []
    return [f"serving Deployment requests no {GPU}: the engine would fall back to CPU or fail to start"]


def check_serving_probes(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if not is_serving(type_token, props, ctx["servingLabels"]):
        return []
    spec = pod_spec(type_token, props)
    main = list(containers(spec, init=False))
    serving = [(label, c) for label, c in main if gpu_count(c) > 0] or main
    problems = []
    for label, container in serving:
        missing = [p for p in ("startupProbe", "readinessProbe") if not container.get(p)]
        if missing:
            problems.append(f"{label} has no {' and no '.join(missing)}")
    return problems


def _selects(pdb: Resource, labels: Mapping[str, Any]) -> bool:
    match = get(pdb.props, "spec.selector.matchLabels")
    if not known(match) or get(pdb.props, "spec.selector.matchExpressions"):
        return True  # cannot judge in preview / expressions: give the benefit of the doubt
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def _namespace(resource: Resource) -> Any:
    return get(resource.props, "metadata.namespace") or "default"


def check_serving_pdb(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    pdbs = of_type(resources, PDB)
    findings = []
    for deployment in of_type(resources, DEPLOYMENT):
        if not is_serving(deployment.type, deployment.props, ctx["servingLabels"]):
            continue
        labels = get(deployment.props, "spec.template.metadata.labels") or {}
        ns = _namespace(deployment)
        if not any(_selects(p, labels) and (not known(ns) or not known(_namespace(p))
                                            or _namespace(p) == ns) for p in pdbs):
            findings.append(Finding(f"serving Deployment {deployment.name!r} has no "
                                    "PodDisruptionBudget selecting its pods", deployment.urn))
    return findings


def check_chart_version(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    chart = str(props.get("chart") or "")
    if chart.startswith((".", "/")) or chart.endswith(".tgz"):
        return []  # a local or URL-addressed chart archive is pinned by its path
    version = props.get("version")
    if computed(version):
        return []
    if not version or UNPINNED_VERSION.search(str(version)):
        shown = f"version {version!r}" if version else "no version"
        return [f"chart {chart!r} has {shown}: each install may get a different chart"]
    return []


SERVING_SCHEMA = {"servingLabels": {"type": "object", "default": dict(SERVING_LABELS),
                                    "description": "Labels that mark a model-server (TGI or vLLM) "
                                    "Deployment"}}

RULES = [
    Rule(
        name="k8s-container-resources",
        description="Every container and init container sets CPU and memory requests and limits.",
        remediation="Set resources.requests and resources.limits (cpu, memory) on each container; for "
        "model servers size them from the instance facts (vocabulary/gpu_instances.py).",
        resource_types=WORKLOADS,
        check=check_container_resources,
        config_schema={
            "requests": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
            "limits": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
        },
    ),
    Rule(
        name="k8s-image-pinned",
        description="Container images are pinned to a tag other than latest, or to a digest.",
        remediation="Reference images as repo:1.2.3 or repo@sha256:<digest>.",
        resource_types=WORKLOADS,
        check=check_image_pinned,
    ),
    Rule(
        name="k8s-no-privileged-or-host-namespaces",
        description="No privileged containers and no hostNetwork/hostPID/hostIPC, except allow-listed "
        "node agents (the NVIDIA device plugin, dcgm-exporter).",
        remediation="Drop privileged/host* settings; if the workload is a node agent that needs them, add "
        "its name or namespace to allowedNames/allowedNamespaces in policies/config/<stack>.yaml.",
        resource_types=WORKLOADS,
        check=check_privileged,
        config_schema={
            "allowedNames": {"type": "array", "items": {"type": "string"},
                             "default": ["nvidia-device-plugin*", "dcgm-exporter*"]},
            "allowedNamespaces": {"type": "array", "items": {"type": "string"},
                                  "default": ["gpu-operator"]},
        },
    ),
    Rule(
        name="k8s-gpu-workload-tolerates-gpu-taint",
        description="Pods requesting nvidia.com/gpu tolerate the nvidia.com/gpu taint of the GPU nodes.",
        remediation="Add tolerations=[{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': "
        "'NoSchedule'}] to the pod spec (or operator Equal with the taint's value, 'true').",
        resource_types=WORKLOADS,
        check=check_gpu_toleration,
        config_schema={"taintKey": {"type": "string", "default": GPU},
                       "taintValue": {"type": "string", "default": "true",
                                      "description": "matched by tolerations with operator Equal"}},
    ),
    Rule(
        name="tgi-serving-requests-gpu",
        description="Model-server Deployments (TGI, vLLM; label app.kubernetes.io/component: "
        "model-server) request nvidia.com/gpu.",
        remediation="Set resources.limits['nvidia.com/gpu'] on the engine's container to the shard count.",
        resource_types=(DEPLOYMENT,),
        check=check_serving_gpu,
        config_schema=SERVING_SCHEMA,
    ),
    Rule(
        name="tgi-serving-probes",
        description="Model-server containers have a startupProbe (model loading takes minutes) and a "
        "readinessProbe on /health.",
        remediation="Add startupProbe httpGet /health with failureThreshold x periodSeconds >= 10 minutes, "
        "and readinessProbe httpGet /health.",
        resource_types=(DEPLOYMENT,),
        check=check_serving_probes,
        config_schema=SERVING_SCHEMA,
    ),
    Rule(
        name="tgi-serving-has-pdb",
        description="Every model-server Deployment has a PodDisruptionBudget selecting its pods, so node "
        "drains and consolidation never take all replicas at once.",
        remediation="Add a policy/v1 PodDisruptionBudget in the Deployment's namespace with "
        "selector.matchLabels equal to (a subset of) the pod template labels and maxUnavailable: 1.",
        stack_check=check_serving_pdb,
        config_schema=SERVING_SCHEMA,
    ),
    Rule(
        name="helm-release-chart-version-pinned",
        description="Helm releases pin an exact chart version.",
        remediation="Set version='x.y.z' on kubernetes.helm.v3.Release (no ranges, no latest).",
        resource_types=(HELM_RELEASE,),
        check=check_chart_version,
    ),
]
