"""Deploy checks for what the API server and its webhooks refuse at create time:

- the pinned KEDA's admission webhook rules for ScaledObjects (a refused ScaledObject fails
  the `up`, and the model it scales never leaves its initial replica count);
- creation order: a custom resource after the CRD that defines it, a namespaced object after
  its Namespace, when the same stack creates them. pulumi-kubernetes retries NotFound/NoMatch
  for about a minute (provider/pkg/await/await.go); a slower chart install or namespace
  creation fails the `up`, so the order must be in the graph (dependsOn), not in retries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmops.offline.deploy_checks.base import HELM_RELEASE, Finding, Rule, _kind, _upstream
from llmops.offline.deploy_checks.core import verified_charts
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
NAMESPACE = "kubernetes:core/v1:Namespace"
CRD = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
#: API groups whose CRDs each chart installs (its crds/ or templates/crds), read upstream:
#: keda: kedacore/keda v2.17.0 config/crd/bases (keda.sh_*, eventing.keda.sh_*), which the
#: kedacore/charts keda chart ships; kube-prometheus-stack: its charts/crds (prometheus-operator,
#: group monitoring.coreos.com); aws-load-balancer-controller: eks-charts crds/crds.yaml
#: (elbv2.k8s.aws); karpenter: kubernetes-sigs/karpenter and aws/karpenter-provider-aws
#: pkg/apis/crds (karpenter.sh, karpenter.k8s.aws).
CHART_CRD_GROUPS: dict[str, frozenset[str]] = {
    "keda": frozenset({"keda.sh", "eventing.keda.sh"}),
    "kube-prometheus-stack": frozenset({"monitoring.coreos.com"}),
    "aws-load-balancer-controller": frozenset({"elbv2.k8s.aws"}),
    "karpenter-crd": frozenset({"karpenter.sh", "karpenter.k8s.aws"}),
    "karpenter": frozenset({"karpenter.sh", "karpenter.k8s.aws"}),
}
#: Built-in API groups: served by the API server itself, never by a CRD.
BUILTIN_GROUPS = frozenset({
    "core", "apps", "batch", "policy", "autoscaling", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "admissionregistration.k8s.io", "apiextensions.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io", "certificates.k8s.io",
    "flowcontrol.apiserver.k8s.io", "resource.k8s.io", "events.k8s.io"})
#: KEDA's trigger types that the fallback rule skips (apis/keda/v1alpha1: cpuString, memoryString).
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.lstrip("v").split("-")[0].split(".") if p.isdigit())


def keda_app_version(plan: Plan) -> str | None:
    """The KEDA the plan installs: the verified appVersion of its keda chart pin."""
    for release in plan.of_type(HELM_RELEASE):
        if release.inputs.get("chart") == "keda":
            pin = verified_charts().get("keda", {}).get(str(release.inputs.get("version")), {})
            return str(pin.get("appVersion") or release.inputs.get("version"))
    return None


def scaled_object_problems(spec: dict[str, Any], keda_version: str) -> list[str]:
    """What KEDA's validating webhook answers for one ScaledObject spec (validateWorkload in
    apis/keda/v1alpha1/scaledobject_webhook.go, at the pinned app version): the replica
    bounds, the fallback rule, and the triggers' rules. Empty when it admits it."""
    problems: list[str] = []
    minimum, maximum = spec.get("minReplicaCount"), spec.get("maxReplicaCount", 100)
    # CheckReplicaCountBoundsAreValid: a min of 0 counts as the HPA's default of 1 only when set
    effective_min = 0 if minimum is None else max(1, minimum) if minimum > 0 else 1
    if effective_min > maximum:
        problems.append(f"MinReplicaCount={effective_min} must be less than MaxReplicaCount={maximum}")
    idle = spec.get("idleReplicaCount")
    if idle is not None and idle >= effective_min:
        problems.append(f"IdleReplicaCount={idle} must be less than MinReplicaCount={effective_min}")
    triggers = spec.get("triggers") or []
    if not triggers:
        problems.append("no triggers defined in the ScaledObject/ScaledJob")
    names = [t.get("name") for t in triggers if t.get("name")]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"triggerName {name!r} is defined multiple times, but it must be unique")
    for trigger in triggers:
        if trigger.get("useCachedMetrics") and trigger.get("type") in (*RESOURCE_TRIGGERS, "cron"):
            problems.append(f"property \"useCachedMetrics\" is not supported for {trigger['type']!r} scaler")
    fallback = spec.get("fallback")
    modifiers = (spec.get("advanced") or {}).get("scalingModifiers")
    if fallback is not None:
        if fallback.get("failureThreshold", 0) < 0 or fallback.get("replicas", 0) < 0:
            problems.append("fallback failureThreshold and replicas must both be >= 0")
        if modifiers:
            if modifiers.get("metricType") == "Value":
                problems.append("with scalingModifiers, their metricType must be AverageValue for a fallback")
        else:
            others = [t for t in triggers if t.get("type") not in RESOURCE_TRIGGERS]
            # v2.17 and earlier (CheckFallbackValid, scaledobject_types.go L288-320 at v2.17.0)
            # count only an explicit AverageValue; v2.18.0 accepts any non-cpu/memory trigger
            explicit = _version(keda_version) < (2, 18)
            if not any(t.get("metricType") == "AverageValue" or not explicit for t in others):
                problems.append(
                    "at least one trigger (that is not cpu or memory) has to have the `AverageValue` "
                    f"type for the fallback to be enabled (KEDA {keda_version} requires "
                    "metricType: AverageValue set explicitly)")
    return problems


def keda_admits_scaled_objects(plan: Plan) -> Iterator[Finding]:
    """Every ScaledObject passes the pinned KEDA's validating webhook, and no two scale the
    same workload (verifyScaledObjects)."""
    version = keda_app_version(plan)
    if version is None:
        return
    targets: dict[tuple[str, str, str], str] = {}
    for resource in plan.of_type(SCALED_OBJECT):
        spec = resource.inputs.get("spec", {})
        for problem in scaled_object_problems(spec, version):
            yield Finding("keda-admits-scaled-object", resource.stack, resource.name,
                          f"KEDA {version}'s webhook refuses it: {problem}")
        ref = spec.get("scaleTargetRef", {})
        target = f"{ref.get('kind', 'Deployment')}/{ref.get('name')}"
        key = (resource.stack, _namespace(resource) or "", target)
        if key in targets:
            yield Finding("keda-admits-scaled-object", resource.stack, resource.name,
                          f"KEDA {version}'s webhook refuses it: the workload {key[2]} is already "
                          f"managed by the ScaledObject {targets[key]}")
        targets.setdefault(key, resource.name)


def _api_group(resource: RecordedResource) -> str | None:
    """The API group of a Kubernetes resource (kubernetes:<group>/<version>:<Kind>)."""
    if not resource.type.startswith("kubernetes:") or resource.type.startswith("kubernetes:helm.sh/"):
        return None
    api = resource.type.split(":")[1]
    return api.split("/")[0] if "/" in api else None


def _namespace(resource: RecordedResource) -> str | None:
    if resource.type == HELM_RELEASE:
        value = resource.inputs.get("namespace")
    else:
        value = (resource.inputs.get("metadata") or {}).get("namespace")
    return value if isinstance(value, str) and value else None


def crd_before_custom_resource(plan: Plan) -> Iterator[Finding]:
    """A custom resource whose CRD the same stack installs (a Helm chart that ships it, or a
    CustomResourceDefinition) must wait for it: before it, the API answers "no matches for
    kind" and the create fails once the provider's retries run out."""
    sources: dict[tuple[str, str], list[RecordedResource]] = {}
    for release in plan.of_type(HELM_RELEASE):
        for group in CHART_CRD_GROUPS.get(str(release.inputs.get("chart")), ()):
            sources.setdefault((release.stack, group), []).append(release)
    for crd in plan.of_type(CRD):
        group = (crd.inputs.get("spec") or {}).get("group")
        if group:
            sources.setdefault((crd.stack, group), []).append(crd)
    for resource in plan.resources:
        group = _api_group(resource)
        if group is None or group in BUILTIN_GROUPS or resource.type == CRD:
            continue
        providers = sources.get((resource.stack, group), [])
        if providers and not {p.urn for p in providers} & _upstream(plan, resource):
            names = ", ".join(sorted(p.name for p in providers))
            yield Finding("crd-before-custom-resource", resource.stack, resource.name,
                          f"a {_kind(resource)} ({group}) is created without waiting for {names}, "
                          "which installs its CRD; add it to dependsOn")


def namespace_before_object(plan: Plan) -> Iterator[Finding]:
    """An object in a namespace the same stack creates must wait for that Namespace."""
    created = {(n.stack, (n.inputs.get("metadata") or {}).get("name")): n for n in plan.of_type(NAMESPACE)}
    for resource in plan.resources:
        if resource.type == NAMESPACE or not resource.custom:
            continue
        name = _namespace(resource)
        namespace = created.get((resource.stack, name))
        if namespace is not None and namespace.urn not in _upstream(plan, resource):
            yield Finding("namespace-before-object", resource.stack, resource.name,
                          f"is created in namespace {name!r} without waiting for {namespace.name}, "
                          "which creates it; add it to dependsOn")


RULES: tuple[Rule, ...] = (keda_admits_scaled_objects, crd_before_custom_resource, namespace_before_object)
