"""The serving namespace's admission policy as the API server would run it: its CEL,
evaluated by a CEL interpreter, admits exactly the pods the Pod Security Standards' baseline
admits (policies/pod_security_standards.py), plus the model cache's hostPath."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from celpy import json_to_cel
from hypothesis import given, settings
from hypothesis import strategies as st

from components.model_cache import CACHE_HOST_PATH
from components.pod_security import BOUND_LABEL
from policies.pod_security_standards import baseline_problems
from tests.conftest import STACKS

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"
ALLOWED = frozenset({CACHE_HOST_PATH})


class Admission:
    """The planned policy's validations, compiled once: the messages of those that deny."""

    def __init__(self, spec: dict[str, Any]):
        env = celpy.Environment()
        self.programs = [(env.program(env.compile(v["expression"])), v["message"])
                         for v in spec["validations"]]

    def denials(self, pod_spec: dict[str, Any], metadata: dict[str, Any] | None = None) -> list[str]:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata or {"name": "p"}, "spec": pod_spec}
        activation = {"object": json_to_cel(pod)}
        denied = []
        for program, message in self.programs:
            result = program.evaluate(activation)
            if isinstance(result, celpy.CELEvalError):
                raise AssertionError(f"{message}: the expression fails to evaluate ({result}); "
                                     "with failurePolicy Fail the API server would deny every pod")
            if not bool(result):
                denied.append(message)
        return denied


@pytest.fixture(scope="module")
def admission(plans) -> Admission:
    return Admission(plans["prod"].one(POLICY, "serving-admission-policy").inputs["spec"])


def _tgi_pods(plan) -> dict[str, dict[str, Any]]:
    """Every model server's pod spec (TGI and vLLM), by Deployment name."""
    return {d.inputs["metadata"]["name"]: d.inputs["spec"]["template"]["spec"]
            for d in plan.of_type("kubernetes:apps/v1:Deployment")
            if d.inputs["spec"]["template"]["metadata"]["labels"].get(
                "app.kubernetes.io/component") == "model-server"}


@pytest.mark.parametrize("stack", STACKS)
def test_every_model_pod_the_stack_renders_is_admitted(plans, stack, admission):
    pods = _tgi_pods(plans[stack])
    assert pods
    assert any(name.startswith("vllm-") for name in pods) == (stack != "dev")
    for name, pod in pods.items():
        assert admission.denials(pod) == [], name


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_fails_closed_and_binds_to_the_serving_namespace(plans, stack):
    plan = plans[stack]
    policy = plan.one(POLICY, "serving-admission-policy").inputs
    binding = plan.one(BINDING, "serving-admission-binding").inputs
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert policy["spec"]["matchConstraints"]["resourceRules"] == [{
        "apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
        "resources": ["pods", "pods/ephemeralcontainers"]}]
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert "Deny" in binding["spec"]["validationActions"]
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
    [serving] = [n.inputs for n in plan.of_type("kubernetes:core/v1:Namespace")
                 if n.inputs["metadata"]["name"] == plan.config.serving.namespace]
    assert selector.items() <= serving["metadata"]["labels"].items()
    # the namespace relaxes PSA only after the policy that bounds it exists
    namespace = next(n for n in plan.of_type("kubernetes:core/v1:Namespace")
                     if n.inputs["metadata"]["name"] == plan.config.serving.namespace)
    assert {plan.one(POLICY).urn, plan.one(BINDING).urn} <= set(namespace.dependencies)


BREACHES: dict[str, tuple[str, Any]] = {
    # control -> (where in the pod spec, the breaching value)
    "host namespaces": ("spec.hostPID", True),
    "hostPath": ("volumes+", {"name": "etc", "hostPath": {"path": "/etc"}}),
    "hostPath beside the cache": ("volumes+", {"name": "up", "hostPath": {"path": CACHE_HOST_PATH + "/.."}}),
    "privileged": ("tgi.securityContext.privileged", True),
    "capabilities": ("tgi.securityContext.capabilities.add", ["SYS_ADMIN"]),
    "seccomp": ("tgi.securityContext.seccompProfile", {"type": "Unconfined"}),
    "pod seccomp": ("spec.securityContext.seccompProfile", {"type": "Unconfined"}),
    "apparmor": ("tgi.securityContext.appArmorProfile", {"type": "Unconfined"}),
    "procMount": ("tgi.securityContext.procMount", "Unmasked"),
    "selinux type": ("tgi.securityContext.seLinuxOptions", {"type": "spc_t"}),
    "selinux user": ("spec.securityContext.seLinuxOptions", {"user": "system_u"}),
    "hostProcess": ("tgi.securityContext.windowsOptions", {"hostProcess": True}),
    "sysctls": ("spec.securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
    "hostPort": ("tgi.ports", [{"containerPort": 80, "hostPort": 80}]),
    "probe host": ("tgi.startupProbe.httpGet.host", "169.254.169.254"),
    "hook host": ("tgi.lifecycle.preStop.tcpSocket", {"port": 22, "host": "10.0.0.1"}),
    "init container": ("init.securityContext.privileged", True),
    "ephemeral container": ("spec.ephemeralContainers", [{"name": "debug", "image": "busybox:1.37",
                                                          "securityContext": {"privileged": True}}]),
}


def _breach(pod: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    if where == "volumes+":
        pod["volumes"].append(value)
        return pod
    head, *path = where.split(".")
    node = {"spec": pod, "tgi": pod["containers"][0], "init": pod["initContainers"][-1]}[head]
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return pod


@pytest.mark.parametrize("control", list(BREACHES))
def test_each_baseline_control_is_denied_in_the_serving_namespace(plans, admission, control):
    pod = _tgi_pods(plans["prod"])["tgi-llama-3-8b"]
    breached = _breach(pod, *BREACHES[control])
    assert baseline_problems(breached, ALLOWED), "the breach must break baseline"
    assert admission.denials(breached) != [], control


def test_apparmor_annotations_are_held_to_runtime_default_or_a_local_profile(admission, plans):
    pod = _tgi_pods(plans["prod"])["tgi-llama-3-8b"]
    key = "container.apparmor.security.beta.kubernetes.io/tgi"
    for allowed in ("runtime/default", "localhost/tgi-profile"):
        assert admission.denials(pod, {"name": "p", "annotations": {key: allowed}}) == [], allowed
    assert admission.denials(pod, {"name": "p", "annotations": {key: "unconfined", "team": "ml"}}) == [
        "AppArmor annotations may name only runtime/default or a localhost profile"]


# -- the CEL and the pack's model agree on any pod ------------------------------------------------

security_contexts = st.fixed_dictionaries({}, optional={
    "privileged": st.booleans(),
    "capabilities": st.fixed_dictionaries({}, optional={
        "add": st.lists(st.sampled_from(["CHOWN", "NET_BIND_SERVICE", "SYS_ADMIN", "NET_RAW", "KILL"]),
                        max_size=3),
        "drop": st.just(["ALL"])}),
    "seccompProfile": st.fixed_dictionaries({"type": st.sampled_from(["RuntimeDefault", "Unconfined",
                                                                       "Localhost"])}),
    "appArmorProfile": st.fixed_dictionaries({"type": st.sampled_from(["RuntimeDefault", "Unconfined"])}),
    "procMount": st.sampled_from(["Default", "Unmasked"]),
    "seLinuxOptions": st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(["", "container_t", "spc_t"]), "user": st.sampled_from(["", "system_u"]),
        "role": st.sampled_from(["", "sysadm_r"])}),
    "windowsOptions": st.fixed_dictionaries({}, optional={"hostProcess": st.booleans()}),
    "runAsUser": st.sampled_from([0, 10001]),
})
endpoint = st.fixed_dictionaries({"port": st.just(80)}, optional={"host": st.sampled_from(["", "10.0.0.1"])})
handlers = st.fixed_dictionaries({}, optional={"httpGet": endpoint, "tcpSocket": endpoint})
containers = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["a", "b"]), "image": st.just("x:1")},
                                            optional={
    "securityContext": security_contexts,
    "startupProbe": handlers,
    "lifecycle": st.fixed_dictionaries({}, optional={"preStop": handlers}),
    "ports": st.lists(st.fixed_dictionaries({"containerPort": st.just(80)},
                                            optional={"hostPort": st.sampled_from([0, 8080])}), max_size=2),
}), min_size=1, max_size=2)
pod_specs = st.fixed_dictionaries({"containers": containers}, optional={
    "initContainers": containers,
    "hostNetwork": st.booleans(), "hostPID": st.booleans(), "hostIPC": st.booleans(),
    "volumes": st.lists(st.one_of(
        st.just({"name": "cache", "hostPath": {"path": CACHE_HOST_PATH, "type": "DirectoryOrCreate"}}),
        st.just({"name": "root", "hostPath": {"path": "/"}}),
        st.just({"name": "tmp", "emptyDir": {}})), max_size=3),
    "securityContext": st.fixed_dictionaries({}, optional={
        "seccompProfile": st.fixed_dictionaries({"type": st.sampled_from(["RuntimeDefault", "Unconfined"])}),
        "sysctls": st.lists(st.fixed_dictionaries({
            "name": st.sampled_from(["net.ipv4.tcp_syncookies", "kernel.msgmax"]), "value": st.just("1")}),
            max_size=2),
        "seLinuxOptions": st.fixed_dictionaries(
            {}, optional={"type": st.sampled_from(["container_t", "spc_t"])}),
    }),
})


@pytest.mark.long_pole
@settings(max_examples=300, deadline=None)
@given(pod=pod_specs)
def test_the_policy_admits_exactly_what_baseline_admits_plus_the_cache(admission, pod):
    assert (admission.denials(pod) == []) == (baseline_problems(pod, ALLOWED) == []), (
        baseline_problems(pod, ALLOWED), admission.denials(pod))


def test_the_bound_label_names_the_level_the_policy_enforces(plans):
    [serving] = [n.inputs for n in plans["dev"].of_type("kubernetes:core/v1:Namespace")
                 if n.inputs["metadata"]["name"] == "llm-serving"]
    assert serving["metadata"]["labels"][BOUND_LABEL] == "baseline"
