"""Isolation policies (PSA labels, workloads at their namespace's level, default-deny for
serving namespaces, no secrets in ConfigMaps) and the tag rule's taggability, each on a
compliant and a non-compliant variant built with the real SDKs."""

from __future__ import annotations

import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from components.model_cache import CACHE_HOST_PATH
from components.network_policies import default_deny_ingress
from components.pod_security import BOUND_LABEL, hardened_container, namespace_labels, runtime_default_pod
from components.serving_admission import ServingAdmission
from policies.tagging import takes_tags
from tests.policies.helpers import messages, recorded, replace_inputs
from tests.policies.workloads import tgi_container, tgi_deployment

PSA = "k8s-namespace-pod-security-level"
LEVEL = "k8s-workload-meets-namespace-pod-security"
DENY = "k8s-serving-namespace-default-deny"
BOUNDED = "k8s-bounded-namespace-has-admission-policy"
CONFIG_MAP = "k8s-configmap-no-secrets"
TAGS = "required-cost-tags"
COST_TAGS = {"Environment": "dev", "Project": "llmops", "Owner": "ml", "CostCentre": "CC-1",
             "ManagedBy": "pulumi"}


def _namespace(name: str, labels: dict | None):
    return k8s.core.v1.Namespace(name, metadata={"name": name, "labels": labels})


def _gateway_like(namespace: str, security_context, pod_context=None, volumes=None):
    labels = {"app": "web"}
    return k8s.apps.v1.Deployment(f"web-{namespace}", metadata={"name": "web", "namespace": namespace}, spec={
        "selector": {"match_labels": labels},
        "template": {"metadata": {"labels": labels}, "spec": {
            "security_context": pod_context, "volumes": volumes,
            "containers": [{"name": "web", "image": "example/web:1.0.0", "security_context": security_context,
                            "resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                          "limits": {"cpu": "1", "memory": "1Gi"}}}]}}})


# -- namespace labels -------------------------------------------------------------------------

def test_a_namespace_with_a_restricted_label_passes():
    assert messages(PSA, recorded(lambda: _namespace("apps", namespace_labels("restricted")))) == []


def test_a_namespace_without_a_pod_security_label_fails():
    assert messages(PSA, recorded(lambda: _namespace("apps", {"team": "ml"}))) == [
        "namespace has no pod-security.kubernetes.io/enforce label: pods are admitted at whatever "
        "the cluster default is (privileged on EKS)"]


def test_a_namespace_below_the_minimum_must_be_listed():
    resources = recorded(lambda: (_namespace("apps", namespace_labels("baseline")),
                                  _namespace("llm-serving", namespace_labels("baseline")),
                                  _namespace("typo", {"pod-security.kubernetes.io/enforce": "strict"})))
    assert messages(PSA, resources) == [
        "namespace 'apps' enforces baseline, below the minimum restricted; list it in "
        "allowedBelowMinimum with the reason in docs/isolation.md",
        "pod-security.kubernetes.io/enforce: 'strict' is not one of privileged, baseline, restricted"]


# -- workloads at their namespace's level -------------------------------------------------------

def test_a_hardened_container_meets_restricted():
    resources = recorded(lambda: (_namespace("apps", namespace_labels("restricted")),
                                  _gateway_like("apps", hardened_container(non_root_uid=10001))))
    assert messages(LEVEL, resources) == []


def test_a_root_container_is_below_restricted_but_meets_baseline():
    root = hardened_container(non_root_uid=None, read_only_root=False)
    resources = recorded(lambda: (_namespace("apps", namespace_labels("restricted")),
                                  _namespace("serving", namespace_labels("baseline")),
                                  _gateway_like("apps", root, runtime_default_pod()),
                                  _gateway_like("serving", root, runtime_default_pod())))
    assert messages(LEVEL, resources) == [
        "container 'web' does not set runAsNonRoot: true, which namespace 'apps' (enforce: restricted) "
        "rejects"]


def test_a_default_security_context_lists_every_restricted_gap():
    resources = recorded(lambda: (_namespace("apps", namespace_labels("restricted")),
                                  _gateway_like("apps", None)))
    assert messages(LEVEL, resources) == [
        f"container 'web' {gap}, which namespace 'apps' (enforce: restricted) rejects" for gap in (
            "does not set runAsNonRoot: true", "does not set allowPrivilegeEscalation: false",
            "does not drop ALL capabilities", "has no RuntimeDefault/Localhost seccomp profile")]


def test_host_access_is_below_baseline_and_allowed_in_a_privileged_namespace():
    host = [{"name": "root", "host_path": {"path": "/"}}]
    caps = {"capabilities": {"add": ["SYS_ADMIN"]}}
    resources = recorded(lambda: (_namespace("serving", namespace_labels("baseline")),
                                  _namespace("agents", namespace_labels("privileged")),
                                  _gateway_like("serving", caps, volumes=host),
                                  _gateway_like("agents", caps, volumes=host)))
    assert messages(LEVEL, resources) == [
        "mounts hostPath volume 'root', which namespace 'serving' (enforce: baseline) rejects",
        "container 'web' adds capabilities SYS_ADMIN, which namespace 'serving' (enforce: baseline) rejects"]


def test_a_bounded_namespace_admits_only_the_model_cache_host_path_at_its_bound():
    """llm-serving enforces privileged for PSA and is judged at the baseline its admission
    policy enforces: the cache's hostPath passes, any other hostPath or privilege does not."""
    bounded = namespace_labels("privileged", bound="baseline")
    cache = [{"name": "model-cache", "host_path": {"path": CACHE_HOST_PATH, "type": "DirectoryOrCreate"}}]
    root = hardened_container(non_root_uid=None, read_only_root=False)
    resources = recorded(lambda: (
        _namespace("serving", bounded), _namespace("other", bounded),
        ServingAdmission("admission", (CACHE_HOST_PATH,)),
        _gateway_like("serving", root, runtime_default_pod(), volumes=cache),
        _gateway_like("other", {"privileged": True},
                      volumes=[{"name": "etc", "host_path": {"path": "/etc"}}])))
    assert messages(LEVEL, resources) == [
        "mounts hostPath volume 'etc', which namespace 'other' (admission policy: baseline) rejects",
        "container 'web' is privileged, which namespace 'other' (admission policy: baseline) rejects"]
    assert messages(BOUNDED, resources) == []


def test_a_bound_label_without_a_denying_admission_policy_fails():
    bounded = namespace_labels("privileged", bound="baseline")

    def with_admission_policy():
        admission = ServingAdmission("admission", (CACHE_HOST_PATH,))
        return admission, _namespace("serving", bounded), _namespace("plain", namespace_labels("restricted"))

    without = recorded(lambda: _namespace("serving", bounded))
    warning = ("namespace 'serving' is labelled llmops.io/pod-security-bound: baseline but no "
               "ValidatingAdmissionPolicyBinding of this stack denies (failurePolicy Fail, pods CREATE) "
               "in namespaces with that label: its pods are admitted at privileged only")
    assert messages(BOUNDED, without) == [warning]
    with_policy = recorded(with_admission_policy)
    assert messages(BOUNDED, with_policy) == []
    [binding] = [r for r in with_policy if r.type.endswith("ValidatingAdmissionPolicyBinding")]
    for change in ({"validationActions": ["Audit"]}, {"policyName": "elsewhere"},
                   {"matchResources": {"namespaceSelector": {"matchLabels": {"team": "ml"}}}},
                   {"matchResources": {"namespaceSelector": {"matchLabels": {BOUND_LABEL: "restricted"}}}}):
        spec = {**binding.inputs["spec"], **change}
        assert messages(BOUNDED, replace_inputs(with_policy, binding.type, binding.name, spec=spec)) == [
            warning], change
    [policy] = [r for r in with_policy if r.type.endswith("ValidatingAdmissionPolicy")]
    ignoring = replace_inputs(with_policy, policy.type, policy.name,
                              spec={**policy.inputs["spec"], "failurePolicy": "Ignore"})
    assert messages(BOUNDED, ignoring) == [warning]
    deployments_only = [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"],
                         "resources": ["deployments"]}]
    for constraints in (deployments_only, [{**deployments_only[0], "resources": ["pods"],
                                             "operations": ["DELETE"]}]):
        spec = {**policy.inputs["spec"], "matchConstraints": {"resourceRules": constraints}}
        assert messages(BOUNDED, replace_inputs(with_policy, policy.type, policy.name, spec=spec)) == [
            warning], constraints
    typo = recorded(lambda: _namespace("serving", {**bounded, BOUND_LABEL: "strict"}))
    assert messages(BOUNDED, typo) == [
        "namespace 'serving': llmops.io/pod-security-bound: 'strict' is not one of privileged, "
        "baseline, restricted"]


def test_a_bound_never_lowers_what_psa_enforces():
    """The bound counts only where it is stricter than PSA: a bound equal to the enforce
    level grants no hostPath, and a lower bound does not relax restricted."""
    cache = [{"name": "model-cache", "host_path": {"path": CACHE_HOST_PATH}}]
    root = hardened_container(non_root_uid=None, read_only_root=False)
    resources = recorded(lambda: (
        _namespace("equal", namespace_labels("baseline", bound="baseline")),
        _namespace("lower", namespace_labels("restricted", bound="baseline")),
        _gateway_like("equal", hardened_container(non_root_uid=10001), runtime_default_pod(), volumes=cache),
        _gateway_like("lower", root, runtime_default_pod())))
    assert messages(LEVEL, resources) == [
        "mounts hostPath volume 'model-cache', which namespace 'equal' (enforce: baseline) rejects",
        "container 'web' does not set runAsNonRoot: true, which namespace 'lower' (enforce: restricted) "
        "rejects"]


def test_namespaces_with_unusable_labels_are_skipped_and_the_rest_still_judged():
    """An unknown level ('strict') is the label rule's finding, not a reason to stop judging
    the other namespaces' workloads."""
    resources = recorded(lambda: (
        _namespace("aaa", {"pod-security.kubernetes.io/enforce": "strict", BOUND_LABEL: "baseline"}),
        _namespace("zzz", namespace_labels("restricted")),
        _gateway_like("aaa", None), _gateway_like("zzz", {"privileged": True})))
    found = messages(LEVEL, resources)
    assert found and all("namespace 'zzz' (enforce: restricted)" in m for m in found)
    assert "container 'web' is privileged, which namespace 'zzz' (enforce: restricted) rejects" in found


def test_a_workload_outside_the_stacks_namespaces_does_not_stop_the_rest_being_judged():
    resources = recorded(lambda: (_namespace("zzz", namespace_labels("restricted")),
                                  _gateway_like("aaa-external", {"privileged": True}),
                                  _gateway_like("zzz", {"privileged": True})))
    found = messages(LEVEL, resources)
    assert "container 'web' is privileged, which namespace 'zzz' (enforce: restricted) rejects" in found
    assert not any("aaa-external" in m for m in found)


def test_a_namespace_without_a_bound_needs_no_admission_policy_and_is_named_by_its_metadata():
    resources = recorded(lambda: (
        _namespace("plain", namespace_labels("restricted")),
        k8s.core.v1.Namespace("ns-resource", metadata={
            "name": "serving", "labels": namespace_labels("privileged", bound="baseline")})))
    assert [m.split(" is labelled")[0] for m in messages(BOUNDED, resources)] == ["namespace 'serving'"]


def test_namespaces_the_stack_does_not_create_are_not_judged():
    resources = recorded(lambda: _gateway_like("kube-system", {"privileged": True}))
    assert messages(LEVEL, resources) == []


def test_the_shipped_tgi_pods_would_fail_restricted_only_for_root_and_the_model_cache(plans):
    """The honest cost of baseline for llm-serving: TGI's root user, and the node cache's
    hostPath with the root chown that hands it to the fetcher."""
    plan = plans["prod"]
    [serving] = [r for r in plan.of_type("kubernetes:core/v1:Namespace")
                 if r.inputs["metadata"]["name"] == "llm-serving"]
    restricted = replace_inputs(plan.resources, serving.type, serving.name, metadata={
        "name": "llm-serving", "labels": namespace_labels("restricted")})
    found = {m.split(", which")[0] for m in messages(LEVEL, restricted)}
    assert found == {"container 'tgi' does not set runAsNonRoot: true",
                     "mounts hostPath volume 'model-cache'",
                     "init container 'prepare-cache' does not set runAsNonRoot: true",
                     "init container 'prepare-cache' runs as uid 0",
                     "init container 'prepare-cache' adds CHOWN (restricted allows only NET_BIND_SERVICE)"}


# -- default deny in serving namespaces ----------------------------------------------------------

def test_a_serving_namespace_with_a_default_deny_policy_passes():
    deny = default_deny_ingress("serving")
    resources = recorded(lambda: (tgi_deployment(), k8s.networking.v1.NetworkPolicy(
        "deny", metadata=deny["metadata"], spec=deny["spec"])))
    assert messages(DENY, resources) == []


def test_a_serving_namespace_whose_policies_allow_everything_fails():
    resources = recorded(lambda: (tgi_deployment(), k8s.networking.v1.NetworkPolicy(
        "open", metadata={"name": "open", "namespace": "serving"},
        spec={"pod_selector": {}, "ingress": [{}]}), k8s.networking.v1.NetworkPolicy(
        "elsewhere", metadata={"name": "deny", "namespace": "other"},
        spec={"pod_selector": {}, "policy_types": ["Ingress"]})))
    assert messages(DENY, resources) == [
        "serving namespace 'serving' has no default-deny ingress NetworkPolicy: any pod in the cluster "
        "can reach the model servers"]


def test_one_finding_per_serving_namespace_however_many_models_it_runs():
    resources = recorded(lambda: (tgi_deployment("llama-8b"), tgi_deployment("qwen-32b")))
    assert messages(DENY, resources) == [
        "serving namespace 'serving' has no default-deny ingress NetworkPolicy: any pod in the cluster "
        "can reach the model servers"]


def test_the_shipped_stacks_fail_without_their_serving_default_deny(plans):
    plan = plans["dev"]
    without = [r for r in plan.resources if not (
        r.type.endswith("NetworkPolicy") and r.inputs["metadata"]["name"] == "default-deny-ingress"
        and r.inputs["metadata"]["namespace"] == "llm-serving")]
    assert len(without) == len(plan.resources) - 1
    assert len(messages(DENY, without)) == 1 and messages(DENY, plan.resources) == []


# -- ConfigMaps ----------------------------------------------------------------------------------

def _config_map(data):
    return k8s.core.v1.ConfigMap("cm", metadata={"name": "cm", "namespace": "apps"}, data=data)


def test_plain_configuration_in_a_config_map_passes():
    data = {"config.yaml": "models:\n  llama:\n    stable: http://tgi-llama:8080\n"
            "auditLog: '-'\napiKeysFile: /etc/llm-gateway/keys.yaml\n", "dashboard.json": '{"title": "x"}'}
    assert messages(CONFIG_MAP, recorded(lambda: _config_map(data))) == []


@pytest.mark.parametrize(("data", "problem"), [
    ({"password": "x"}, "data key 'password' names a secret"),
    ({"HF_TOKEN": "x"}, "data key 'HF_TOKEN' names a secret"),
    ({"env": "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"}, "data key 'env' contains an AWS access key id"),
    ({"tls.pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE"}, "data key 'tls.pem' contains a PEM private key"),
    ({"alerts.yaml": "url: https://hooks.slack.com/services/T0/B0/xyz"},
     "data key 'alerts.yaml' contains a Slack webhook URL"),
    ({"app.yaml": "db:\n  password: hunter2hunter2\n"},
     "data key 'app.yaml' contains a password/token assignment"),
])
def test_secret_looking_config_map_data_fails(data, problem):
    assert messages(CONFIG_MAP, recorded(lambda: _config_map(data))) == [problem]


def test_values_not_yet_known_do_not_stop_the_scan_of_the_next_keys():
    from policies.isolation import check_config_map_secrets

    data = {"a-later": None, "b-value": 5, "c-env": "AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP"}
    assert check_config_map_secrets(CONFIG_MAP, {"data": data}, None) == [
        "data key 'c-env' contains an AWS access key id"]
    # binaryData is base64: its keys are judged, its encoded values are not scanned
    binary = {"binaryData": {"blob": "password: hunter2hunter2"}, "data": {"plain": "x"}}
    assert check_config_map_secrets(CONFIG_MAP, binary, None) == []


# -- taggability from the provider schema --------------------------------------------------------

def test_taggability_comes_from_the_provider_schema():
    assert takes_tags("aws:ec2/vpc:Vpc") is True
    assert takes_tags("aws:cloudwatch/logGroup:LogGroup") is True
    assert takes_tags("aws:iam/rolePolicyAttachment:RolePolicyAttachment") is False
    assert takes_tags("aws:ec2/routeTableAssociation:RouteTableAssociation") is False
    assert takes_tags("aws:example/notAType:NotAType") is None


def test_a_taggable_resource_that_omits_tags_entirely_fails():
    """The blind spot: a VPC with no `tags` input at all used to pass as "not taggable"."""
    resources = recorded(lambda: aws.ec2.Vpc("bare", cidr_block="10.0.0.0/16"))
    assert "tags" not in resources[0].inputs
    assert messages(TAGS, resources) == [
        "missing or empty cost-allocation tag(s): Environment, Project, Owner, CostCentre, ManagedBy"]


def test_tagged_and_untaggable_resources_pass():
    resources = recorded(lambda: (
        aws.ec2.Vpc("tagged", cidr_block="10.0.0.0/16", tags=COST_TAGS),
        aws.iam.RolePolicyAttachment("attach", role="r", policy_arn="arn:aws:iam::aws:policy/x")))
    assert messages(TAGS, resources) == []


def test_auto_scaling_group_tag_lists_count_as_tags():
    tags = [{"key": k, "value": v, "propagate_at_launch": True} for k, v in COST_TAGS.items()]
    resources = recorded(lambda: (
        aws.autoscaling.Group("asg", max_size=1, min_size=0, availability_zones=["us-west-2a"], tags=tags),
        aws.autoscaling.Group("bare-asg", max_size=1, min_size=0, availability_zones=["us-west-2a"])))
    assert messages(TAGS, resources) == [
        "missing or empty cost-allocation tag(s): Environment, Project, Owner, CostCentre, ManagedBy"]


def test_the_tgi_deployment_builder_is_hardened_enough_for_baseline():
    """Guard for tests/policies/workloads: its TGI is a baseline workload (root, no host access)."""
    resources = recorded(lambda: (_namespace("serving", namespace_labels("baseline")),
                                  tgi_deployment(container=tgi_container())))
    assert messages(LEVEL, resources) == []
