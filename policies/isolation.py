"""Isolation inside the cluster: every namespace declares a Pod Security level, every workload
meets it, serving namespaces deny ingress by default, and ConfigMaps hold no secrets."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from policies.kubernetes import WORKLOADS, is_serving, pod_spec
from policies.network_reachability import NETWORK_POLICY, Policy, default_denies_ingress
from policies.pod_security_standards import LEVEL_ORDER, problems_at
from policies.rules import Finding, Resource, Rule, RuleContext, computed, get, known, of_type

NAMESPACE = "kubernetes:core/v1:Namespace"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
#: The level a namespace's admission policy enforces where PSA enforces less
#: (components/pod_security.py, components/serving_admission.py).
BOUND_LABEL = "llmops.io/pod-security-bound"
ADMISSION_POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
ADMISSION_BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
#: The node-shared model cache (components/model_cache.py): the one hostPath a bounded
#: namespace's admission policy admits.
MODEL_CACHE_HOST_PATHS = ["/mnt/k8s-disks/0/llmops-models"]
#: model servers of every engine (TGI, vLLM) carry it on their pods (components/engines)
SERVING_LABELS = {"app.kubernetes.io/component": "model-server"}
#: Data keys that name a secret.
SECRET_KEY = re.compile(r"(?i)(passw(or)?d|secret|token|api[_-]?keys?|private[_-]?key|credential"
                        r"|access[_-]?key|webhook[_-]?url)")
#: Values that are secrets whatever their key is called.
SECRET_VALUES = {
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a Slack webhook URL": re.compile(r"https://hooks\.slack\.com/services/\S+"),
    "a Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "a GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "a password/token assignment": re.compile(
        r"(?i)[\"']?\b(password|passwd|secret|api[_-]?key|token)[\"']?\s*[:=]\s*[\"']?"
        r"(?![\"']?\s*$)(?!\$\{)(?!<)[^\s\"'{}]{8,}"),
}


def check_namespace_label(_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    labels = get(props, "metadata.labels")
    if computed(labels):
        return []
    level = (labels or {}).get(ENFORCE_LABEL) if isinstance(labels, Mapping) else None
    if level is None:
        return [f"namespace has no {ENFORCE_LABEL} label: pods are admitted at whatever the "
                "cluster default is (privileged on EKS)"]
    if computed(level):
        return []
    if level not in LEVEL_ORDER:
        return [f"{ENFORCE_LABEL}: {level!r} is not one of {', '.join(LEVEL_ORDER)}"]
    if LEVEL_ORDER[level] < LEVEL_ORDER[ctx["minimumLevel"]]:
        name = get(props, "metadata.name") or ctx.name
        if name not in ctx["allowedBelowMinimum"]:
            return [f"namespace {name!r} enforces {level}, below the minimum {ctx['minimumLevel']}; "
                    "list it in allowedBelowMinimum with the reason in docs/isolation.md"]
    return []


def _labels(ns: Resource) -> Mapping[str, Any]:
    labels = get(ns.props, "metadata.labels")
    return labels if isinstance(labels, Mapping) else {}


def _namespace_levels(resources: Sequence[Resource]) -> dict[str, tuple[str, str]]:
    """namespace -> (the level its pods must meet, what enforces it): PSA's enforce label, or
    a stricter bound an admission policy enforces (checked by the bounded-namespace rule)."""
    levels = {}
    for ns in of_type(resources, NAMESPACE):
        name, labels = get(ns.props, "metadata.name"), _labels(ns)
        level, bound = labels.get(ENFORCE_LABEL), labels.get(BOUND_LABEL)
        if not (known(name) and isinstance(level, str) and level in LEVEL_ORDER):
            continue
        if isinstance(bound, str) and LEVEL_ORDER.get(bound, -1) > LEVEL_ORDER[level]:
            levels[name] = (bound, f"admission policy: {bound}")
        else:
            levels[name] = (level, f"enforce: {level}")
    return levels


def check_workload_level(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    """Each workload in a namespace the stack creates, against the level its namespace
    enforces (PSA's, or its admission policy's with the model cache's hostPath allowed)."""
    levels, findings = _namespace_levels(resources), []
    for workload in (r for r in resources if r.type in WORKLOADS):
        namespace = get(workload.props, "metadata.namespace") or "default"
        level, enforcer = levels.get(namespace, (None, "")) if known(namespace) else (None, "")
        if level is None:
            continue  # not a namespace of this stack (kube-system...) or unknown yet
        host_paths = frozenset(ctx["boundedHostPaths"]) if enforcer.startswith("admission") else frozenset()
        for problem in problems_at(level, pod_spec(workload.type, workload.props), host_paths):
            findings.append(Finding(f"{problem}, which namespace {namespace!r} ({enforcer}) "
                                    "rejects", workload.urn))
    return findings


def _binds(binding: Resource, policies: Mapping[str, Resource], bound: str) -> bool:
    """The binding denies, selects namespaces labelled `BOUND_LABEL: bound`, and names a
    policy of the stack that fails closed and matches pod creation."""
    spec = get(binding.props, "spec") or {}
    selector = get(spec, "matchResources.namespaceSelector.matchLabels") or {}
    policy = policies.get(get(spec, "policyName"))
    if "Deny" not in (spec.get("validationActions") or []) or selector.get(BOUND_LABEL) != bound:
        return False
    if policy is None or get(policy.props, "spec.failurePolicy") not in (None, "Fail"):
        return False
    rules = get(policy.props, "spec.matchConstraints.resourceRules") or []
    return any("pods" in (r.get("resources") or []) and "CREATE" in (r.get("operations") or [])
               for r in rules if isinstance(r, Mapping))


def check_bounded_namespaces(resources: Sequence[Resource], _ctx: RuleContext) -> list[Finding]:
    """A namespace that relaxes PSA on the promise of an admission policy has that policy."""
    policies = {get(p.props, "metadata.name"): p for p in of_type(resources, ADMISSION_POLICY)}
    bindings = of_type(resources, ADMISSION_BINDING)
    if any(computed(get(r.props, "spec")) for r in [*policies.values(), *bindings]):
        return []
    findings = []
    for ns in of_type(resources, NAMESPACE):
        bound = _labels(ns).get(BOUND_LABEL)
        if bound is None or computed(bound):
            continue
        name = get(ns.props, "metadata.name") or ns.name
        if bound not in LEVEL_ORDER:
            findings.append(Finding(f"namespace {name!r}: {BOUND_LABEL}: {bound!r} is not one of "
                                    f"{', '.join(LEVEL_ORDER)}", ns.urn))
        elif not any(_binds(b, policies, bound) for b in bindings):
            findings.append(Finding(
                f"namespace {name!r} is labelled {BOUND_LABEL}: {bound} but no ValidatingAdmissionPolicy"
                f"Binding of this stack denies (failurePolicy Fail, pods CREATE) in namespaces with that "
                f"label: its pods are admitted at {_labels(ns).get(ENFORCE_LABEL)} only", ns.urn))
    return findings


def _policies(resources: Sequence[Resource]) -> list[Policy]:
    return [Policy(get(r.props, "metadata.namespace") or "default", get(r.props, "metadata.name") or r.name,
                   get(r.props, "spec") or {}) for r in of_type(resources, NETWORK_POLICY)]


def check_serving_default_deny(resources: Sequence[Resource], ctx: RuleContext) -> list[Finding]:
    policies, findings, seen = _policies(resources), [], set()
    for deployment in (r for r in resources if is_serving(r.type, r.props, ctx["servingLabels"])):
        namespace = get(deployment.props, "metadata.namespace") or "default"
        if not known(namespace) or namespace in seen:
            continue
        seen.add(namespace)
        if any(computed(get(r.props, "metadata.namespace")) for r in of_type(resources, NETWORK_POLICY)):
            continue  # a policy whose namespace is not known yet may be the one
        if not default_denies_ingress(policies, namespace):
            findings.append(Finding(f"serving namespace {namespace!r} has no default-deny ingress "
                                    "NetworkPolicy: any pod in the cluster can reach the model servers",
                                    deployment.urn))
    return findings


def check_config_map_secrets(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    problems = []
    for section in ("data", "binaryData"):
        data = props.get(section)
        if not isinstance(data, Mapping):
            continue
        for key, value in data.items():
            if SECRET_KEY.search(str(key)):
                problems.append(f"{section} key {key!r} names a secret")
            if section != "data" or not isinstance(value, str) or computed(value):
                continue
            for what, pattern in SECRET_VALUES.items():
                if pattern.search(value):
                    problems.append(f"{section} key {key!r} contains {what}")
    return problems


RULES = [
    Rule(
        name="k8s-namespace-pod-security-level",
        description="Every namespace the stack creates carries a pod-security.kubernetes.io/enforce label "
        "at or above the minimum level, or is listed as allowed below it.",
        remediation="Label the Namespace with components/pod_security.namespace_labels(level): restricted "
        "where the workloads allow it; baseline/privileged only with the reason in docs/isolation.md and "
        "the namespace in allowedBelowMinimum.",
        resource_types=(NAMESPACE,),
        check=check_namespace_label,
        config_schema={
            "minimumLevel": {"type": "string", "enum": list(LEVEL_ORDER), "default": "restricted"},
            "allowedBelowMinimum": {"type": "array", "items": {"type": "string"},
                                    "default": ["llm-serving", "monitoring", "node-agents"]},
        },
    ),
    Rule(
        name="k8s-workload-meets-namespace-pod-security",
        description="Every workload in a namespace the stack creates meets that namespace's enforced Pod "
        "Security level (otherwise the API server rejects its pods at apply time).",
        remediation="Fix the container's securityContext (runAsNonRoot, allowPrivilegeEscalation: false, "
        "capabilities drop ALL, seccompProfile RuntimeDefault) or drop host access; components/"
        "pod_security.hardened_container() gives a compliant context.",
        stack_check=check_workload_level,
        config_schema={"boundedHostPaths": {
            "type": "array", "items": {"type": "string"}, "default": MODEL_CACHE_HOST_PATHS,
            "description": "hostPaths a namespace's admission policy admits (BOUND_LABEL)"}},
    ),
    Rule(
        name="k8s-bounded-namespace-has-admission-policy",
        description=f"A namespace labelled {BOUND_LABEL} (PSA relaxed, a stricter level promised) is "
        "matched by a denying ValidatingAdmissionPolicyBinding of the stack whose policy fails closed.",
        remediation="Create components/serving_admission.ServingAdmission in the same stack, or drop the "
        "label and enforce the level with PSA.",
        stack_check=check_bounded_namespaces,
    ),
    Rule(
        name="k8s-serving-namespace-default-deny",
        description="Every namespace running model-server Deployments has a default-deny ingress "
        "NetworkPolicy (podSelector {} with policyTypes Ingress and no rules).",
        remediation="Create the namespace's policies with components/network_policies.py "
        "(NetworkIsolation): default-deny-ingress plus the gateway and Prometheus allowances.",
        stack_check=check_serving_default_deny,
        config_schema={"servingLabels": {"type": "object", "default": dict(SERVING_LABELS),
                                         "description": "Labels that mark a model-server "
                                                        "(TGI or vLLM) Deployment"}},
    ),
    Rule(
        name="k8s-configmap-no-secrets",
        description="ConfigMaps hold no secret-looking keys or values (passwords, tokens, API keys, "
        "private keys, webhook URLs).",
        remediation="Put the value in a Kubernetes Secret fed from a Pulumi secret (pulumi config set "
        "--secret) and mount or reference it; ConfigMaps are readable by anyone who can read the namespace.",
        resource_types=(CONFIG_MAP,),
        check=check_config_map_secrets,
    ),
]
