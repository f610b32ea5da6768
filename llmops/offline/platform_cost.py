"""Monthly cost of everything the platform creates besides GPU nodes, read from the recorded plan.

Each line comes from resources in the plan (`llmops plan`'s recording), so the bill follows
what is deployed: three NAT gateways are three lines, an interface endpoint removed from the
config is a line gone. Prices per region are in components/data/aws_prices.yaml with their
sources; usage the plan cannot know (GB through NAT, log volume, LCUs, build minutes) is a
named assumption in the same file, printed with the report. A region without prices is
reported as unpriced rather than priced as another region.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from llmops.offline.recorder import RecordedResource
from vocabulary.errors import LlmopsError
from vocabulary.gpu_instances import HOURS_PER_MONTH

PRICES_FILE = Path(__file__).resolve().parents[2] / "components" / "data" / "aws_prices.yaml"

#: what the AWS Load Balancer Controller (v2) reads: an Ingress of this class becomes an ALB,
#: and Ingresses sharing a group.name share one ALB (kubernetes-sigs/aws-load-balancer-controller
#: docs/guide/ingress/annotations.md); an internet-facing one takes one subnet per AZ among
#: those tagged kubernetes.io/role/elb (docs/deploy/subnet_discovery.md), a public IPv4 in each
ALB_CLASS, ALB_GROUP = "alb", "alb.ingress.kubernetes.io/group.name"
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"
PUBLIC_ELB_TAG = "kubernetes.io/role/elb"

Range = tuple[float, float, float]


class PriceDataError(LlmopsError):
    """The price file lacks an item the plan needs (an instance type, a compute type)."""


@dataclass(frozen=True)
class Assumption:
    name: str
    low: float
    typical: float
    high: float
    unit: str
    why: str

    @property
    def range(self) -> Range:
        return (self.low, self.typical, self.high)

    def shown(self) -> str:
        return f"{_num(self.low)} / {_num(self.typical)} / {_num(self.high)} {self.unit}"


@dataclass(frozen=True)
class PlatformLine:
    """One billed item: what it is, the resource it comes from, how it is priced, min/typical/max."""

    component: str
    resource: str
    basis: str
    monthly: Range
    assumption: str = ""  # the named assumption it uses, if any

    def to_json(self) -> dict[str, Any]:
        low, typical, high = self.monthly
        return {"component": self.component, "resource": self.resource, "basis": self.basis,
                "monthlyUsd": {"min": round(low, 2), "typical": round(typical, 2), "max": round(high, 2)},
                "assumption": self.assumption or None}


@dataclass
class PlatformCost:
    region: str
    lines: list[PlatformLine] = field(default_factory=list)
    assumptions: list[Assumption] = field(default_factory=list)
    #: why the region is not priced (None when it is)
    unpriced: str | None = None
    checked: str = ""

    @property
    def total(self) -> Range:
        return tuple(sum(line.monthly[i] for line in self.lines) for i in range(3))  # type: ignore[return-value]

    def to_json(self) -> dict[str, Any]:
        low, typical, high = self.total
        return {"region": self.region, "priced": self.unpriced is None, "unpriced": self.unpriced,
                "pricesChecked": self.checked,
                "pricesFile": str(PRICES_FILE.relative_to(PRICES_FILE.parents[2])),
                "lines": [line.to_json() for line in self.lines],
                "assumptions": [{"name": a.name, "min": a.low, "typical": a.typical, "max": a.high,
                                 "unit": a.unit, "why": a.why} for a in self.assumptions],
                "totalMonthlyUsd": {"min": round(low, 2), "typical": round(typical, 2),
                                    "max": round(high, 2)}}


@cache
def price_data() -> dict[str, Any]:
    return yaml.safe_load(PRICES_FILE.read_text())


def _num(value: float) -> str:
    return f"{value:g}"


def _flat(hourly: float, count: float = 1) -> Range:
    monthly = hourly * count * HOURS_PER_MONTH
    return (monthly, monthly, monthly)


def _times(rate: float, usage: Range) -> Range:
    return tuple(rate * u for u in usage)  # type: ignore[return-value]


class _Pricer:
    """Builds the lines for one plan; remembers which assumptions it used, in order."""

    def __init__(self, region: str, prices: dict[str, Any], assumptions: dict[str, Any]):
        self.region, self.prices, self.raw_assumptions = region, prices, assumptions
        self.lines: list[PlatformLine] = []
        self.used: dict[str, Assumption] = {}

    def assume(self, name: str, kind: str | None = None) -> Assumption:
        entry = self.raw_assumptions[name]
        key = f"{name}[{kind}]" if kind else name
        if key not in self.used:
            figures = entry["kinds"].get(kind, entry["kinds"]["other"]) if kind else entry
            self.used[key] = Assumption(key, float(figures["min"]), float(figures["typical"]),
                                        float(figures["max"]), entry["unit"], entry["why"])
        return self.used[key]

    def add(self, component: str, resource: str, basis: str, monthly: Range, assumption: str = "") -> None:
        self.lines.append(PlatformLine(component, resource, basis, monthly, assumption))

    def price(self, key: str) -> float:
        return float(self.prices[key])

    def table(self, key: str, item: str, resource: str) -> float:
        table = self.prices[key]
        if item not in table:
            raise PriceDataError(
                f"{PRICES_FILE.name}: no {key} price for {item!r} in {self.region} (needed by {resource}); "
                f"listed: {', '.join(sorted(table))}. Add it with its source from the AWS pricing page.")
        return float(table[item])


def _subnet_count(resource: RecordedResource) -> int:
    return len(resource.inputs.get("subnetIds") or [])


def _cluster(p: _Pricer, r: RecordedResource) -> None:
    support = (r.inputs.get("upgradePolicy") or {}).get("supportType", "EXTENDED")
    standard = p.price("eksStandardHourly") * HOURS_PER_MONTH
    if support == "STANDARD":
        p.add("EKS control plane", r.name, f"${_num(p.price('eksStandardHourly'))}/cluster-h, supportType "
              "STANDARD (auto-upgraded, never billed extended support)", (standard, standard, standard))
    else:
        extended = p.price("eksExtendedHourly") * HOURS_PER_MONTH
        p.add("EKS control plane", r.name, f"${_num(p.price('eksStandardHourly'))}/cluster-h; max at "
              f"${_num(p.price('eksExtendedHourly'))} (supportType {support} allows extended support)",
              (standard, standard, extended))


def _nat(p: _Pricer, nats: list[RecordedResource], eips: list[RecordedResource]) -> None:
    for r in nats:
        p.add("NAT gateway", r.name, f"${_num(p.price('natGatewayHourly'))}/h",
              _flat(p.price("natGatewayHourly")))
    if nats:
        gb = p.assume("natProcessedGb")
        p.add("NAT data processing", f"{len(nats)} NAT gateway(s)",
              f"${_num(p.price('natProcessedPerGb'))}/GB",
              _times(p.price("natProcessedPerGb"), gb.range), gb.name)
    for r in eips:
        p.add("public IPv4 address", r.name, f"${_num(p.price('publicIpv4Hourly'))}/h (NAT's Elastic IP)",
              _flat(p.price("publicIpv4Hourly")))


def _endpoints(p: _Pricer, endpoints: list[RecordedResource]) -> None:
    interface = [r for r in endpoints if r.inputs.get("vpcEndpointType") == "Interface"]
    for r in interface:
        azs = _subnet_count(r)
        p.add("interface VPC endpoint", f"{r.name} ({r.inputs.get('serviceName', '')})",
              f"${_num(p.price('interfaceEndpointAzHourly'))}/AZ-h x {azs} AZ",
              _flat(p.price("interfaceEndpointAzHourly"), azs))
    if interface:
        gb = p.assume("endpointProcessedGb")
        p.add("endpoint data processing", f"{len(interface)} interface endpoint(s)",
              f"${_num(p.price('interfaceEndpointPerGb'))}/GB",
              _times(p.price("interfaceEndpointPerGb"), gb.range), gb.name)
    for r in endpoints:
        if r.inputs.get("vpcEndpointType") == "Gateway":
            p.add("gateway VPC endpoint", f"{r.name} ({r.inputs.get('serviceName', '')})",
                  "no charge for gateway endpoints (S3, DynamoDB)", (0.0, 0.0, 0.0))


def _albs(p: _Pricer, ingresses: list[RecordedResource], subnets: list[RecordedResource]) -> None:
    groups: dict[str, tuple[str, str]] = {}
    for r in ingresses:
        if (r.inputs.get("spec") or {}).get("ingressClassName") != ALB_CLASS:
            continue
        annotations = (r.inputs.get("metadata") or {}).get("annotations") or {}
        groups.setdefault(annotations.get(ALB_GROUP) or f"ingress/{r.name}",
                          (r.name, annotations.get(ALB_SCHEME, "internal")))
    public_azs = {s.inputs.get("availabilityZone") for s in subnets
                  if PUBLIC_ELB_TAG in (s.inputs.get("tags") or {})}
    for name, scheme in groups.values():
        lcu = p.assume("albLcu")
        hourly = p.price("albHourly") * HOURS_PER_MONTH
        lcus = _times(p.price("albLcuHourly") * HOURS_PER_MONTH, lcu.range)
        p.add("Application Load Balancer", f"{name} (Ingress class {ALB_CLASS}, {scheme})",
              f"${_num(p.price('albHourly'))}/h + ${_num(p.price('albLcuHourly'))}/LCU-h",
              tuple(hourly + x for x in lcus), lcu.name)  # type: ignore[arg-type]
        if scheme == "internet-facing" and public_azs:
            p.add("public IPv4 address", f"{name}'s ALB in {len(public_azs)} AZ",
                  f"${_num(p.price('publicIpv4Hourly'))}/h x {len(public_azs)} (one per public subnet's AZ)",
                  _flat(p.price("publicIpv4Hourly"), len(public_azs)))


def log_group_kind(name: str) -> str:
    """Which ingestion assumption a log group's name selects (the names the plan gives them)."""
    if re.fullmatch(r"/aws/eks/[^/]+/cluster", name):
        return "control-plane"
    if match := re.fullmatch(r"/aws/containerinsights/[^/]+/(application|dataplane|host|performance)", name):
        return f"container-{match[1]}"
    if "flow-logs" in name:
        return "flow-logs"
    if name.startswith("/aws/codebuild/"):
        return "ci"
    return "other"


def _log_groups(p: _Pricer, groups: list[RecordedResource]) -> None:
    for r in groups:
        name = r.inputs.get("name") or r.name
        ingest = p.assume("logsIngestGb", log_group_kind(name))
        retention = r.inputs.get("retentionInDays")
        # steady state: a month's ingest is kept retention/30 months (a never-expiring group is
        # priced at the end of its first year; stored size = ingested size, no compression credit)
        months_kept = retention / 30 if retention else 12.0
        rate = p.price("logsIngestPerGb") + p.price("logsStoragePerGbMonth") * months_kept
        kept = f"{retention} d" if retention else "never expires (1st year)"
        p.add("CloudWatch Logs", name, f"${_num(p.price('logsIngestPerGb'))}/GB ingested + "
              f"${_num(p.price('logsStoragePerGbMonth'))}/GB-month kept {kept}",
              _times(rate, ingest.range), ingest.name)


def _kms(p: _Pricer, keys: list[RecordedResource]) -> None:
    for r in keys:
        monthly = p.price("kmsKeyMonthly")
        if r.inputs.get("enableKeyRotation"):
            p.add("KMS key", r.name, f"${_num(monthly)}/key-month; max after a yearly rotation "
                  f"(+${_num(monthly)} per rotated backing key)", (monthly, monthly, 2 * monthly))
        else:
            p.add("KMS key", r.name, f"${_num(monthly)}/key-month", (monthly, monthly, monthly))


def _node_groups(p: _Pricer, groups: list[RecordedResource]) -> None:
    for r in groups:
        types = r.inputs.get("instanceTypes") or []
        scaling = r.inputs.get("scalingConfig") or {}
        hourly, instance = max((p.table("ec2OnDemandHourly", t, r.name), t) for t in types)
        if r.inputs.get("capacityType", "ON_DEMAND") != "ON_DEMAND":
            instance += f" ({r.inputs['capacityType']}, priced on demand)"
        nodes = (scaling.get("minSize", 0), scaling.get("desiredSize", 0), scaling.get("maxSize", 0))
        p.add("system node group", f"{r.name} ({'/'.join(map(str, nodes))} nodes)",
              f"{instance} ${_num(hourly)}/h on demand (priciest of {', '.join(types)})",
              tuple(n * hourly * HOURS_PER_MONTH for n in nodes))  # type: ignore[arg-type]


def _cpu_node_pools(p: _Pricer, pools: list[RecordedResource], resources: list[RecordedResource]) -> None:
    """A CPU NodePool (the traffic pool) at on-demand: min and typical are the nodes its pods
    need at their minimum replicas, on its cheapest type's allocatable CPU; the max is its CPU
    limit at the priciest price per vCPU among its types (llmops/offline/cost.py prices the
    GPU NodePools)."""
    from components.allocatable import node_allocatable
    from llmops.offline.deploy_checks.base import WORKLOADS, _pod_spec, _pools_for
    from llmops.offline.deploy_checks.capacity import cpu_m, pod_requests
    from vocabulary.cpu_instances import node_instances

    facts = node_instances()
    for r in pools:
        spec = r.inputs.get("spec") or {}
        limits = spec.get("limits") or {}
        if "nvidia.com/gpu" in limits or "cpu" not in limits:
            continue
        types = next((q.get("values", []) for q in spec.get("template", {}).get("spec", {}).get(
            "requirements", []) if q.get("key") == "node.kubernetes.io/instance-type"), [])
        hourly = {t: p.table("ec2OnDemandHourly", t, r.name) for t in types}
        per_vcpu, priciest = max((hourly[t] / facts[t].vcpu, t) for t in types)
        cheapest = min(types, key=lambda t: hourly[t])
        requested = sum(pod_requests(_pod_spec(w)).cpu_m * int(w.inputs.get("spec", {}).get("replicas") or 1)
                        for w in resources if w.type in WORKLOADS and _pools_for(w, [r]))
        nodes = math.ceil(requested / node_allocatable(facts[cheapest]).cpu_m)
        low = nodes * hourly[cheapest] * HOURS_PER_MONTH
        vcpus = cpu_m(limits["cpu"]) // 1000
        name = (r.inputs.get("metadata") or {}).get("name") or r.name
        p.add("CPU NodePool (Karpenter)", f"{name} ({nodes} x {cheapest}; limit {vcpus} vCPU)",
              f"{cheapest} ${_num(hourly[cheapest])}/h on demand for its pods' min replicas; max: "
              f"its limit at {priciest}'s ${_num(round(per_vcpu, 4))}/vCPU-h",
              (low, low, vcpus * per_vcpu * HOURS_PER_MONTH))


def _storage(p: _Pricer, buckets: list[RecordedResource], repos: list[RecordedResource]) -> None:
    for r in buckets:
        gb = p.assume("modelWeightsGb" if "models" in r.name else "otherBucketGb")
        p.add("S3 storage", r.name, f"${_num(p.price('s3StandardPerGbMonth'))}/GB-month (Standard)",
              _times(p.price("s3StandardPerGbMonth"), gb.range), gb.name)
    for r in repos:
        gb = p.assume("ecrImagesGb")
        p.add("ECR storage", r.name, f"${_num(p.price('ecrPerGbMonth'))}/GB-month",
              _times(p.price("ecrPerGbMonth"), gb.range), gb.name)


def _negligible(p: _Pricer, queues: list[RecordedResource], rules: list[RecordedResource]) -> None:
    for r in queues:
        p.add("SQS queue", r.name, "$0: a few interruption messages a day, inside SQS's free 1M "
              "requests/month", (0.0, 0.0, 0.0))
    if rules:
        p.add("EventBridge rules", f"{len(rules)} rule(s)", "$0: rules on AWS service events "
              "(EC2 spot/health/state changes) are not charged", (0.0, 0.0, 0.0))


def _codebuild(p: _Pricer, projects: list[RecordedResource]) -> None:
    for r in projects:
        compute = (r.inputs.get("environment") or {}).get("computeType", "")
        rate = p.table("codebuildPerMinute", compute, r.name)
        minutes = p.assume("buildMinutes")
        p.add("CodeBuild runner (in VPC)", r.name, f"{compute} ${_num(rate)}/build-minute",
              _times(rate, minutes.range), minutes.name)


def platform_cost(region: str, resources: list[RecordedResource]) -> PlatformCost:
    """Every billed non-GPU item in the plan's resources, priced for the stack's region."""
    data = price_data()
    if region not in data["regions"]:
        return PlatformCost(region, unpriced=f"{PRICES_FILE.name} has no prices for {region!r} "
                            f"(priced regions: {', '.join(data['regions'])}); platform costs not "
                            "estimated", checked=data["checked"])

    def of(type_token: str) -> list[RecordedResource]:
        return [r for r in resources if r.type == type_token]

    p = _Pricer(region, data["regions"][region], data["assumptions"])
    for r in of("aws:eks/cluster:Cluster"):
        _cluster(p, r)
    _node_groups(p, of("aws:eks/nodeGroup:NodeGroup"))
    _cpu_node_pools(p, of("kubernetes:karpenter.sh/v1:NodePool"), resources)
    _nat(p, of("aws:ec2/natGateway:NatGateway"), of("aws:ec2/eip:Eip"))
    _endpoints(p, of("aws:ec2/vpcEndpoint:VpcEndpoint"))
    _albs(p, of("kubernetes:networking.k8s.io/v1:Ingress"), of("aws:ec2/subnet:Subnet"))
    _log_groups(p, of("aws:cloudwatch/logGroup:LogGroup"))
    _kms(p, of("aws:kms/key:Key"))
    _storage(p, of("aws:s3/bucket:Bucket"), of("aws:ecr/repository:Repository"))
    _codebuild(p, of("aws:codebuild/project:Project"))
    _negligible(p, of("aws:sqs/queue:Queue"), of("aws:cloudwatch/eventRule:EventRule"))
    return PlatformCost(region, p.lines, list(p.used.values()), checked=data["checked"])
