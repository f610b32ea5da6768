"""What the cluster must run for what the workloads stack declares to work: a metrics API
for resource-metric autoscalers, and DNS for the gateway's host.

Neither failure stops the `up`: the HPA exists and never scales (its events say "unable to
get metrics for resource cpu"), the Ingress gets a load balancer whose name nobody resolves.
Both are found only by users, which is why they are deploy checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from llmops.offline.deploy_checks.base import HELM_RELEASE, Finding, Rule, _walk
from llmops.offline.deploy_checks.identity import allows, role_documents
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource

HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
API_SERVICE = "kubernetes:apiregistration.k8s.io/v1:APIService"
EKS_ADDON = "aws:eks/addon:Addon"
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
RECORD = "aws:route53/record:Record"
#: The resource metrics API's group (k8s.io/metrics); metrics-server serves v1beta1.
METRICS_GROUP = "metrics.k8s.io"
#: Metric types an HPA reads from metrics.k8s.io (autoscaling/v2 MetricSpec).
RESOURCE_METRIC_TYPES = frozenset({"Resource", "ContainerResource"})
#: KEDA's triggers that become Resource metrics of the HPA it creates (keda.sh/docs scalers).
RESOURCE_TRIGGERS = frozenset({"cpu", "memory"})
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"


# -- metrics API ----------------------------------------------------------------------------
def _serves_metrics_api(plan: Plan) -> bool:
    for release in plan.of_type(HELM_RELEASE):
        values = release.inputs.get("values", {}) or {}
        if release.inputs.get("chart") == "metrics-server" and (
                values.get("apiService", {}) or {}).get("create", True) is not False:
            return True
    if any(a.inputs.get("addonName") == "metrics-server" for a in plan.of_type(EKS_ADDON)):
        return True
    return any(s.inputs.get("spec", {}).get("group") == METRICS_GROUP
               for s in plan.of_type(API_SERVICE))


def _resource_metrics(resource: RecordedResource) -> list[str]:
    spec = resource.inputs.get("spec", {})
    if resource.type == HPA:
        return sorted({str((m.get("resource") or m.get("containerResource") or {}).get("name"))
                       for m in spec.get("metrics", []) if m.get("type") in RESOURCE_METRIC_TYPES})
    return sorted({t.get("type") for t in spec.get("triggers", [])
                   if t.get("type") in RESOURCE_TRIGGERS})


def resource_metrics_have_an_api(plan: Plan) -> Iterator[Finding]:
    """An autoscaler on CPU or memory reads metrics.k8s.io, which EKS does not serve until
    metrics-server runs; without it the HPA reports FailedGetResourceMetric and never scales."""
    if _serves_metrics_api(plan):
        return
    for resource in [*plan.of_type(HPA), *plan.of_type(SCALED_OBJECT)]:
        metrics = _resource_metrics(resource)
        if metrics:
            yield Finding("metrics-api-exists", resource.stack, resource.name,
                          f"scales on {', '.join(metrics)} (the resource metrics API, "
                          f"{METRICS_GROUP}) but the plan installs no metrics-server (Helm "
                          "release or EKS add-on) and no APIService for it: the autoscaler "
                          "would never scale; install metrics-server (components/metrics_server.py)")


# -- DNS for the gateway's host -------------------------------------------------------------
def _ingress_hosts(ingress: RecordedResource) -> set[str]:
    spec = ingress.inputs.get("spec", {})
    hosts = {r.get("host") for r in spec.get("rules", [])}
    hosts |= {h for tls in spec.get("tls", []) for h in tls.get("hosts", [])}
    return {h for h in hosts if isinstance(h, str) and h}


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def _watches(values: dict[str, Any], release: RecordedResource, ingress: RecordedResource,
             host: str) -> bool:
    """The external-dns release's values (chart external-dns 1.21) make it publish this
    Ingress host: AWS provider, the ingress source, the namespace, label and annotation
    filters, the domain filters."""
    metadata = ingress.inputs.get("metadata", {})
    namespace = metadata.get("namespace", "default")
    if not (_selected(values.get("labelFilter"), metadata.get("labels", {}))
            and _selected(values.get("annotationFilter"), metadata.get("annotations", {}))):
        return False
    provider = values.get("provider", "aws")
    name = provider.get("name") if isinstance(provider, dict) else provider
    if name != "aws" or "ingress" not in _listed(values.get("sources", ["service", "ingress"])):
        return False
    if values.get("namespaced"):
        watched = values.get("sourceNamespace") or release.inputs.get("namespace")
        if watched != namespace:
            return False
    filters = _listed(values.get("domainFilters"))
    return not filters or any(host == f or host.endswith(f".{f.lstrip('.')}") for f in filters)


def _selected(selector: str | None, present: dict[str, str]) -> bool:
    """A `--label-filter`/`--annotation-filter` selector of `k=v` terms (the only form read
    here; any other form counts as not selecting) matches these labels or annotations."""
    if not selector:
        return True
    for term in selector.split(","):
        key, sep, value = term.replace("==", "=").partition("=")
        if not sep or "!" in key or present.get(key.strip()) != value.strip():
            return False
    return True


def _zone_filter(values: dict[str, Any]) -> list[str]:
    extra = values.get("extraArgs") or {}
    if isinstance(extra, dict):
        return _listed(extra.get("zone-id-filter"))
    return [a.split("=", 1)[1] for a in _listed(extra) if a.startswith("--zone-id-filter=")]


def _dns_problem(plan: Plan, ingress: RecordedResource, host: str, zone: str) -> str | None:
    """None when something in the plan publishes `host` in `zone`; else why not."""
    namespace = ingress.inputs.get("metadata", {}).get("namespace", "default")
    if any(r.inputs.get("name") in (host, f"{host}.") for r in plan.of_type(RECORD)):
        return None
    releases = [r for r in plan.of_type(HELM_RELEASE) if r.inputs.get("chart") == "external-dns"]
    watching = [r for r in releases
                if _watches(r.inputs.get("values", {}) or {}, r, ingress, host)]
    if not watching:
        return ("no Route53 record for it and no external-dns watching Ingresses in "
                f"{namespace!r}" + (f" ({len(releases)} external-dns release(s) do not)"
                                    if releases else ""))
    zone_arn = f"arn:aws:route53:::hostedzone/{zone}"
    context = {"route53:ChangeResourceRecordSetsNormalizedRecordNames": host.lower(),
               "route53:ChangeResourceRecordSetsRecordTypes": "A"}
    for release in watching:
        values = release.inputs.get("values", {}) or {}
        zones = _zone_filter(values)
        if zones and zone not in zones:
            continue
        role_arn = next(iter(_walk(values, ROLE_ANNOTATION)), None)
        documents = role_documents(plan, role_arn)
        if allows(documents, "route53:ChangeResourceRecordSets", zone_arn, context) and allows(
                documents, "route53:ListHostedZones", "*"):
            return None
        return (f"external-dns ({release.name}) watches it but its role {role_arn} may not list "
                f"zones and change {host}'s A record in {zone_arn}")
    return f"external-dns watches it but only zone(s) other than {zone}"


def gateway_host_resolves(plan: Plan) -> Iterator[Finding]:
    """Every Ingress host (the gateway's `llmops:gateway.host`) has DNS: a Route53 record in
    the plan, or external-dns watching that Ingress with a role that may write the host in
    `llmops:gateway.hostedZoneId`. Otherwise clients get NXDOMAIN and the certificate's name
    points nowhere."""
    zone = plan.config.gateway.hosted_zone_id
    for ingress in plan.of_type(INGRESS):
        for host in sorted(_ingress_hosts(ingress)):
            problem = _dns_problem(plan, ingress, host, zone)
            if problem:
                yield Finding("gateway-host-resolves", ingress.stack, ingress.name,
                              f"host {host} never resolves: {problem}; llmops:gateway.hostedZoneId "
                              "names the zone (components/external_dns.py)")


RULES: tuple[Rule, ...] = (resource_metrics_have_an_api, gateway_host_resolves)
