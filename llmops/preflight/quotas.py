"""GPU vCPU quotas (Service Quotas) against what the GPU pools may grow to.

EC2 limits running instances by vCPUs per instance family group, separately for on-demand
and spot, per region; a new account's G/VT and P quotas are often 0 and the pools then never
grow. Codes (Service Quotas, service `ec2`): L-DB2E81BA "Running On-Demand G and VT
instances", L-3819A6DF "All G and VT Spot Instance Requests", L-417A185B "Running On-Demand
P instances", L-7212CCBC "All P Spot Instance Requests". The quota is shared with anything
else the account runs in the region; this compares it to the pools' own maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from llmops.preflight.context import Context
from llmops.preflight.result import Check, failed, passed
from vocabulary.config import PlatformConfig

QUOTAS: dict[tuple[str, str], tuple[str, str]] = {
    ("G and VT", "ON_DEMAND"): ("L-DB2E81BA", "Running On-Demand G and VT instances"),
    ("G and VT", "SPOT"): ("L-3819A6DF", "All G and VT Spot Instance Requests"),
    ("P", "ON_DEMAND"): ("L-417A185B", "Running On-Demand P instances"),
    ("P", "SPOT"): ("L-7212CCBC", "All P Spot Instance Requests"),
}


@dataclass(frozen=True)
class VcpuNeed:
    family: str          # "G and VT" | "P"
    capacity: str        # "ON_DEMAND" | "SPOT"
    vcpus: int
    pools: tuple[str, ...]


def quota_family(instance_type: str) -> str:
    """The quota group of a GPU instance type (g5, g6e, vt1 -> "G and VT"; p4d, p5 -> "P")."""
    prefix = instance_type.split(".", 1)[0]
    if prefix.startswith(("g", "vt")):
        return "G and VT"
    if prefix.startswith("p"):
        return "P"
    raise ValueError(f"{instance_type} is in no GPU quota group this check knows")


def gpu_vcpu_needs(config: PlatformConfig) -> list[VcpuNeed]:
    """vCPUs each quota must allow: every NodePool at its limit, on its largest type, under
    each capacity type it may buy (a spot-first NodePool may end up all on-demand; reserved
    capacity counts against the on-demand quota).

    The one place that reads GPU capacity from the config: the pools' NodePool limits."""
    needs: dict[tuple[str, str], tuple[int, list[str]]] = {}
    for pool in config.gpu_pools:
        for family in sorted({quota_family(t.name) for t in pool.instances}):
            largest = max(t.vcpu for t in pool.instances if quota_family(t.name) == family)
            for capacity_types, nodes in pool.node_pools:
                for quota in sorted({"SPOT" if c == "spot" else "ON_DEMAND" for c in capacity_types}):
                    total, names = needs.get((family, quota), (0, []))
                    named = names if pool.name in names else [*names, pool.name]
                    needs[(family, quota)] = (total + nodes * largest, named)
    return [VcpuNeed(f, c, v, tuple(p)) for (f, c), (v, p) in sorted(needs.items())]


def gpu_quotas(context: Context) -> list[Check]:
    client = context.client("service-quotas")
    checks = []
    for need in gpu_vcpu_needs(context.config):
        code, title = QUOTAS[(need.family, need.capacity)]
        name = f"quota {code}"
        fix = (f"aws service-quotas request-service-quota-increase --service-code ec2 --quota-code "
               f"{code} --desired-value {need.vcpus} --region {context.config.region}")
        try:
            value = client.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
        except ClientError as exc:
            checks.append(failed(name, f"{title}: unreadable ({exc.response['Error']['Code']})",
                                 f"allow servicequotas:GetServiceQuota, or check it in the console; {fix}"))
            continue
        detail = (f"{title}: {value:g} vCPUs; pools {', '.join(need.pools)} need {need.vcpus} "
                  "at their NodePool limits")
        checks.append(passed(name, detail) if value >= need.vcpus else failed(name, detail, fix))
    return checks
