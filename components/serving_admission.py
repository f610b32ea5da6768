"""Pod Security baseline for the serving namespace, enforced by the API server with one
exception Pod Security Admission cannot express: the node-shared model cache's hostPath.

PSA has no per-volume exemption, so the namespace enforces `privileged` and this
ValidatingAdmissionPolicy (CEL, admissionregistration.k8s.io/v1, GA since Kubernetes 1.30)
denies every baseline control for pods in namespaces labelled `BOUND_LABEL: baseline`,
except a hostPath at exactly the cache root. It applies to every pod the API server admits
there, whoever creates it, not only to what this stack applies; the policy pack checks the
stack's own workloads against the same rules before anything is applied.

The controls and their allowed values come from policies/pod_security_standards.py, the
pack's model of the Pod Security Standards, so the two cannot drift apart; tests evaluate
these expressions with a CEL interpreter against the pack's model.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.pod_security import BOUND_LABEL
from policies.pod_security_standards import (
    ALLOWED_SELINUX_TYPES,
    BASELINE_CAPABILITIES,
    HOOKS,
    HOST_HANDLERS,
    HOST_NAMESPACES,
    PROBES,
    SAFE_SYSCTLS,
)

POLICY_NAME = "llmops-serving-baseline"
CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")


@dataclass(frozen=True)
class Validation:
    expression: str
    message: str


def _cel_list(values) -> str:
    return "[" + ", ".join(f"'{v}'" for v in sorted(values)) + "]"


def _every_container(predicate: str) -> str:
    """`predicate` (over `c`) for the containers of every kind the pod has."""
    return " && ".join(
        f"(!has(object.spec.{kind}) || object.spec.{kind}.all(c, {predicate}))"
        for kind in CONTAINER_LISTS)


def _unset_or(path: str, field: str, condition: str) -> str:
    """`condition` holds, or `path.field` (and so the condition's subject) is absent."""
    return f"!has({path}.{field}) || {condition}"


def _security_context(prefix: str, field: str, condition: str) -> str:
    """A condition on `<prefix>.securityContext.<field>`, true when either is unset."""
    ctx = f"{prefix}.securityContext"
    return f"!has({prefix}.securityContext) || !has({ctx}.{field}) || {condition.format(v=f'{ctx}.{field}')}"


def _pod_and_containers(field: str, condition: str) -> str:
    return (f"({_security_context('object.spec', field, condition)}) && "
            + _every_container(_security_context("c", field, condition)))


def _no_host_in(action: str) -> str:
    """`action` (a probe or hook of `c`) names no host in its httpGet or tcpSocket."""
    return " && ".join(f"(!has({action}.{h}) || !has({action}.{h}.host) || {action}.{h}.host == '')"
                       for h in HOST_HANDLERS)


def _no_probe_or_hook_host() -> str:
    probes = [f"(!has(c.{p}) || ({_no_host_in(f'c.{p}')}))" for p in PROBES]
    hooks = [f"(!has(c.lifecycle.{h}) || ({_no_host_in(f'c.lifecycle.{h}')}))" for h in HOOKS]
    return " && ".join([*probes, f"(!has(c.lifecycle) || ({' && '.join(hooks)}))"])


#: AppArmor through the deprecated per-container annotation, which kubelet still honours.
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def baseline_validations(allowed_host_paths: tuple[str, ...]) -> list[Validation]:
    """Baseline's controls as CEL over `object` (a Pod), hostPath allowed at exactly
    `allowed_host_paths`."""
    capabilities = f"!has({{v}}.add) || {{v}}.add.all(x, x in {_cel_list(BASELINE_CAPABILITIES)})"
    selinux_type = f"!has({{v}}.type) || {{v}}.type in {_cel_list(ALLOWED_SELINUX_TYPES)}"
    selinux_user_role = ("(!has({v}.user) || {v}.user == '') && (!has({v}.role) || {v}.role == '')")
    return [
        Validation(" && ".join(f"!(has(object.spec.{key}) && object.spec.{key})" for key in HOST_NAMESPACES),
                   "host namespaces (hostNetwork, hostPID, hostIPC) are not allowed"),
        Validation("!has(object.spec.volumes) || object.spec.volumes.all(v, !has(v.hostPath) || "
                   f"v.hostPath.path in {_cel_list(allowed_host_paths)})",
                   f"hostPath volumes are allowed only at {', '.join(allowed_host_paths)} (the model cache)"),
        Validation(_every_container(_security_context("c", "privileged", "!{v}")),
                   "privileged containers are not allowed"),
        Validation(_every_container(_security_context("c", "capabilities", capabilities)),
                   "containers may add only the capabilities baseline allows"),
        Validation(_pod_and_containers("seccompProfile", "{v}.type != 'Unconfined'"),
                   "seccomp profile Unconfined is not allowed"),
        Validation(_pod_and_containers("appArmorProfile", "{v}.type != 'Unconfined'"),
                   "AppArmor profile Unconfined is not allowed"),
        Validation(_every_container(_security_context("c", "procMount", "{v} == 'Default'")),
                   "procMount must be Default"),
        Validation(_pod_and_containers("seLinuxOptions", f"({selinux_type}) && {selinux_user_role}"),
                   "SELinux type must be one baseline allows, and user and role unset"),
        Validation(_pod_and_containers("windowsOptions", _unset_or("{v}", "hostProcess", "!{v}.hostProcess")),
                   "Windows hostProcess containers are not allowed"),
        Validation(_security_context("object.spec", "sysctls",
                                     f"{{v}}.all(s, s.name in {_cel_list(SAFE_SYSCTLS)})"),
                   "only the safe sysctls are allowed"),
        Validation(_every_container("!has(c.ports) || c.ports.all(p, !has(p.hostPort) || p.hostPort == 0)"),
                   "hostPort is not allowed"),
        Validation(_every_container(_no_probe_or_hook_host()),
                   "probes and lifecycle hooks may not name a host"),
        Validation("!has(object.metadata.annotations) || object.metadata.annotations.all(k, "
                   f"!k.startsWith('{APPARMOR_ANNOTATION}') || object.metadata.annotations[k] == "
                   "'runtime/default' || object.metadata.annotations[k].startsWith('localhost/') || "
                   "object.metadata.annotations[k] == '')",
                   "AppArmor annotations may name only runtime/default or a localhost profile"),
    ]


class ServingAdmission(pulumi.ComponentResource):
    """The admission policy and its binding to namespaces labelled `BOUND_LABEL: baseline`."""

    def __init__(self, name: str, allowed_host_paths: tuple[str, ...],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:security:ServingAdmission", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        policy = k8s.admissionregistration.v1.ValidatingAdmissionPolicy(
            f"{name}-policy", metadata=k8s.meta.v1.ObjectMetaArgs(name=POLICY_NAME),
            spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicySpecArgs(
                failure_policy="Fail",
                match_constraints=k8s.admissionregistration.v1.MatchResourcesArgs(
                    resource_rules=[k8s.admissionregistration.v1.NamedRuleWithOperationsArgs(
                        api_groups=[""], api_versions=["v1"], operations=["CREATE", "UPDATE"],
                        resources=["pods", "pods/ephemeralcontainers"])]),
                validations=[k8s.admissionregistration.v1.ValidationArgs(
                    expression=v.expression, message=v.message, reason="Forbidden")
                    for v in baseline_validations(allowed_host_paths)]),
            opts=child)
        k8s.admissionregistration.v1.ValidatingAdmissionPolicyBinding(
            f"{name}-binding", metadata=k8s.meta.v1.ObjectMetaArgs(name=POLICY_NAME),
            spec=k8s.admissionregistration.v1.ValidatingAdmissionPolicyBindingSpecArgs(
                policy_name=POLICY_NAME, validation_actions=["Deny", "Audit"],
                match_resources=k8s.admissionregistration.v1.MatchResourcesArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={BOUND_LABEL: "baseline"}))),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))
        self.policy_name = POLICY_NAME
        self.register_outputs({})
