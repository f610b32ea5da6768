"""What the cluster must run for the workloads to work (issue 21, items 7 and 8): metrics-server
for the gateway's CPU autoscaler, external-dns for the gateway's host; and the deploy checks
that find a resource-metric autoscaler without a metrics API and a host without DNS."""

from __future__ import annotations

import dataclasses
import json

import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest

from components.iam import external_dns_policy
from components.metrics_server import metrics_server_values
from llmops.offline.deploy_checks import check
from llmops.offline.deploy_checks.identity import allows
from llmops.offline.mocks import OfflineMocks
from llmops.offline.plan import Plan, record
from tests.config.test_config_boundaries import refused
from tests.conftest import STACKS
from vocabulary.config.cluster import HelmPin
from vocabulary.stackfile import DELETE

RELEASE = "kubernetes:helm.sh/v3:Release"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
ZONE = "Z0PROD0EXAMPLE0ZONE0ID"


def _rule(plan: Plan, rule: str) -> list:
    return [f for f in check(plan) if f.rule == rule]


def _without(plan: Plan, name: str) -> Plan:
    return dataclasses.replace(plan, resources=[r for r in plan.resources if r.name != name])


def _with_values(plan: Plan, name: str, **values) -> Plan:
    return dataclasses.replace(plan, resources=[
        dataclasses.replace(r, inputs={**r.inputs, "values": {**r.inputs["values"], **values}})
        if r.name == name else r for r in plan.resources])


def _recorded(program, like: Plan) -> Plan:
    recording = record(program, label="workloads", mocks=OfflineMocks("us-east-1"))
    return Plan(stack="variant", config=like.config, resources=recording.resources, outputs={},
                invokes=recording.invokes)


# -- metrics-server (item 7) ------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_the_cluster_serves_the_metrics_api_the_gateway_hpa_reads(plans, stack):
    plan = plans[stack]
    hpa = plan.one(HPA, "gateway-hpa")
    assert hpa.inputs["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    release = plan.one(RELEASE, "metrics-release")
    pin = plan.config.cluster.metrics_server
    assert (release.inputs["chart"], release.inputs["version"], release.inputs["namespace"]) == (
        "metrics-server", pin.chart_version, "kube-system")
    values = release.inputs["values"]
    assert values["image"]["tag"] == pin.image_tag
    assert values["nodeSelector"] == {"llmops.io/node-role": "system"}
    assert values.get("apiService", {}).get("create", True)  # the chart's default: the APIService
    assert _rule(plan, "metrics-api-exists") == []


def test_metrics_server_survives_a_node_drain():
    values = metrics_server_values(HelmPin(chart_version="3.13.1", image_tag="v0.8.1"))
    assert values["replicas"] == 2
    assert values["podDisruptionBudget"] == {"enabled": True, "minAvailable": 1}
    spread = values["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/name"] == "metrics-server"


def test_a_cpu_hpa_without_a_metrics_api_is_found(plans):
    [finding] = _rule(_without(plans["prod"], "metrics-release"), "metrics-api-exists")
    assert finding.resource == "gateway-hpa"
    assert finding.message.startswith("scales on cpu (the resource metrics API, metrics.k8s.io) "
                                      "but the plan installs no metrics-server")


def test_a_metrics_server_release_without_its_apiservice_does_not_count(plans):
    plan = _with_values(plans["dev"], "metrics-release", apiService={"create": False})
    assert [f.resource for f in _rule(plan, "metrics-api-exists")] == ["gateway-hpa"]


def test_a_keda_cpu_trigger_needs_the_metrics_api_and_an_addon_or_apiservice_provides_it(plans):
    def scaled_on_cpu(extra=None):
        def program():
            k8s.apiextensions.CustomResource(
                "web", api_version="keda.sh/v1alpha1", kind="ScaledObject",
                metadata={"name": "web", "namespace": "apps"},
                spec={"scaleTargetRef": {"name": "web"},
                      "triggers": [{"type": "cpu", "metricType": "Utilization",
                                    "metadata": {"value": "60"}}]})
            if extra:
                extra()
        return program

    [finding] = _rule(_recorded(scaled_on_cpu(), plans["dev"]), "metrics-api-exists")
    assert (finding.resource, finding.message[:13]) == ("web", "scales on cpu")
    addon = lambda: aws.eks.Addon("metrics", cluster_name="c", addon_name="metrics-server")  # noqa: E731
    assert _rule(_recorded(scaled_on_cpu(addon), plans["dev"]), "metrics-api-exists") == []
    api_service = lambda: k8s.apiregistration.v1.APIService(  # noqa: E731
        "metrics", metadata={"name": "v1beta1.metrics.k8s.io"},
        spec={"group": "metrics.k8s.io", "version": "v1beta1", "groupPriorityMinimum": 100,
              "versionPriority": 100, "service": {"name": "metrics", "namespace": "kube-system"}})
    assert _rule(_recorded(scaled_on_cpu(api_service), plans["dev"]), "metrics-api-exists") == []


# -- external-dns (item 8) --------------------------------------------------------------------
@pytest.mark.parametrize("stack", STACKS)
def test_external_dns_publishes_the_gateway_host_in_its_zone(plans, stack):
    plan = plans[stack]
    gateway = plan.config.gateway
    release = plan.one(RELEASE, "dns-release")
    values = release.inputs["values"]
    assert (release.inputs["chart"], release.inputs["version"]) == (
        "external-dns", gateway.external_dns.chart_version)
    assert values["sources"] == ["ingress"]
    assert (values["namespaced"], values["sourceNamespace"]) == (True, "llm-gateway")
    assert values["extraArgs"] == {"zone-id-filter": gateway.hosted_zone_id}
    assert values["txtOwnerId"] == plan.config.cluster_name
    role = plan.stack_outputs["platform"]["workloadRoleArns"]["externalDns"]
    assert values["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    # its Role lives in the gateway's namespace: the release waits for it
    namespace = plan.one("kubernetes:core/v1:Namespace", "gateway-ns")
    assert namespace.urn in release.dependencies
    assert _rule(plan, "gateway-host-resolves") == []


def test_external_dns_may_write_only_the_gateway_names_in_its_zone():
    policy = [json.loads(external_dns_policy(ZONE, "llm.example.com"))]
    zone = f"arn:aws:route53:::hostedzone/{ZONE}"

    def may_write(name: str, kind: str = "A", where: str = zone) -> bool:
        return allows(policy, "route53:ChangeResourceRecordSets", where, {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": name,
            "route53:ChangeResourceRecordSetsRecordTypes": kind})

    assert may_write("llm.example.com")
    assert may_write("a-llm.example.com", "TXT")  # its ownership record
    assert not may_write("www.example.com")
    assert not may_write("llm.example.com", "MX")
    assert not may_write("llm.example.com", where="arn:aws:route53:::hostedzone/ZOTHER")
    assert allows(policy, "route53:ListResourceRecordSets", zone)
    assert not allows(policy, "route53:ListResourceRecordSets", "arn:aws:route53:::hostedzone/ZOTHER")


def test_a_gateway_host_without_dns_is_found(plans):
    [finding] = _rule(_without(plans["prod"], "dns-release"), "gateway-host-resolves")
    assert finding.resource == "gateway-ingress"
    assert finding.message.startswith(
        "host llm.example.com never resolves: no Route53 record for it and no external-dns "
        "watching Ingresses in 'llm-gateway'")


def test_external_dns_watching_another_namespace_is_found(plans):
    plan = _with_values(plans["prod"], "dns-release", sourceNamespace="default")
    [finding] = _rule(plan, "gateway-host-resolves")
    assert "1 external-dns release(s) do not" in finding.message


def test_external_dns_filtering_on_a_label_the_ingress_lacks_is_found(plans):
    plan = _with_values(plans["prod"], "dns-release", labelFilter="dns=public")
    assert [f.resource for f in _rule(plan, "gateway-host-resolves")] == ["gateway-ingress"]
    labelled = dataclasses.replace(plan, resources=[
        dataclasses.replace(r, inputs={**r.inputs, "metadata": {
            **r.inputs["metadata"], "labels": {"dns": "public"}}})
        if r.name == "gateway-ingress" else r for r in plan.resources])
    assert _rule(labelled, "gateway-host-resolves") == []


def test_external_dns_whose_role_cannot_write_the_zone_is_found(plans):
    plan = plans["prod"]
    elsewhere = external_dns_policy("ZOTHERZONE", plan.config.gateway.host)
    plan = dataclasses.replace(plan, resources=[
        dataclasses.replace(r, inputs={**r.inputs, "policy": elsewhere})
        if r.name == "workload-roles-external-dns" and r.type.endswith("RolePolicy") else r
        for r in plan.resources])
    [finding] = _rule(plan, "gateway-host-resolves")
    assert f"may not list zones and change llm.example.com's A record in " \
           f"arn:aws:route53:::hostedzone/{ZONE}" in finding.message


def test_external_dns_filtered_to_another_zone_is_found(plans):
    plan = _with_values(plans["prod"], "dns-release", extraArgs={"zone-id-filter": "ZOTHER"})
    [finding] = _rule(plan, "gateway-host-resolves")
    assert f"only zone(s) other than {ZONE}" in finding.message


def test_a_route53_record_for_the_host_is_dns_too(plans):
    def ingress_and_record(with_record: bool):
        def program():
            k8s.networking.v1.Ingress("web", metadata={"name": "web", "namespace": "apps"},
                                      spec={"rules": [{"host": "web.example.com"}]})
            if with_record:
                aws.route53.Record("web", zone_id=ZONE, name="web.example.com", type="CNAME",
                                   ttl=60, records=["lb.example.net"])
        return program

    assert [f.resource for f in _rule(_recorded(ingress_and_record(False), plans["prod"]),
                                      "gateway-host-resolves")] == ["web"]
    assert _rule(_recorded(ingress_and_record(True), plans["prod"]), "gateway-host-resolves") == []


def test_the_gateway_names_its_hosted_zone():
    assert refused({"llmops:gateway.hostedZoneId": DELETE}) == (
        "llmops:gateway.hostedZoneId: required value is missing")
    assert refused({"llmops:gateway.hostedZoneId": "example.com"}).startswith(
        "llmops:gateway.hostedZoneId: String should match pattern")
