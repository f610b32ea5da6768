"""Deploy checks for GPU capacity (Karpenter): where its controller runs, and whether the pods
sent to a NodePool fit every instance type that NodePool may launch.

- `controller-placement`: Karpenter must not run on nodes it manages (it would drain itself
  away during consolidation, and with no node left nothing starts it again), and it must be
  able to land on a managed node group, or no GPU node ever appears.
- `pod-fits-node`: a pod whose requests exceed a node's allocatable (components/allocatable.py:
  nodeadm's kube-reserved, the eviction threshold, Karpenter's VM overhead) after the
  DaemonSets that run on that node stays Pending; Karpenter launches nothing for it and the
  engine waits out its whole await (issue 21: the dev pod did exactly that).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from components.allocatable import Resources, node_allocatable
from components.nodepools import INSTANCE_TYPE_LABEL, NODEPOOL_LABEL
from llmops.offline.deploy_checks.base import (
    DAEMONSET,
    HELM_RELEASE,
    NODE_GROUP,
    NODE_POOL,
    WORKLOADS,
    Finding,
    Rule,
    _k8s_name,
    _pod_spec,
    _pool_requirement,
    _pool_spec,
    _pool_values,
    _pools_for,
    _tolerates,
)
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedResource
from vocabulary.cpu_instances import node_instances

#: Helm charts that run a DaemonSet on every node they tolerate, and where their values keep
#: its container requests and tolerations (the values the plan sets for them).
CHART_DAEMONSETS = {
    "nvidia-device-plugin": ("resources", "tolerations"),
    "dcgm-exporter": ("resources", "tolerations"),
    "aws-for-fluent-bit": ("resources", "tolerations"),
    # prometheus-node-exporter's chart tolerates every NoSchedule taint by default
    "kube-prometheus-stack": ("prometheus-node-exporter.resources", None),
}
#: The EKS add-ons' node pods (kube-proxy, aws-node with its network-policy agent, the EBS CSI
#: node plugin): an allowance, as the add-ons' manifests are not in the plan. Re-check it
#: when llmops:cluster.addons moves.
EKS_ADDON_DAEMONSETS = Resources(200, 256)
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|Ti|k|M|G)?$")


def cpu_m(value: Any) -> int:
    match = QUANTITY.match(str(value))
    if not match:
        return 0
    number, unit = float(match.group(1)), match.group(2)
    return int(number if unit == "m" else number * 1000)


def memory_mi(value: Any) -> int:
    match = QUANTITY.match(str(value))
    if not match:
        return 0
    number, unit = float(match.group(1)), match.group(2) or ""
    factor = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 ** 2, "k": 1e3 / 2**20,
              "M": 1e6 / 2**20, "G": 1e9 / 2**20, "": 1 / 2**20}[unit]
    return int(-(-number * factor // 1))


def _requests(container: dict[str, Any]) -> Resources:
    requests = (container.get("resources") or {}).get("requests") or {}
    return Resources(cpu_m(requests.get("cpu", 0)), memory_mi(requests.get("memory", 0)))


def pod_requests(pod: dict[str, Any]) -> Resources:
    """What the scheduler reserves for a pod: the larger of its app containers plus native
    sidecars, and each init container plus the sidecars started before it."""
    sidecars, init_peak = Resources(0, 0), Resources(0, 0)
    for container in pod.get("initContainers", []):
        own = _requests(container)
        if container.get("restartPolicy") == "Always":
            sidecars = sidecars + own
            continue
        peak = sidecars + own
        init_peak = Resources(max(init_peak.cpu_m, peak.cpu_m), max(init_peak.memory_mi, peak.memory_mi))
    running = sidecars
    for container in pod.get("containers", []):
        running = running + _requests(container)
    return Resources(max(running.cpu_m, init_peak.cpu_m), max(running.memory_mi, init_peak.memory_mi))


def _dig(values: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        values = values.get(part) if isinstance(values, dict) else None
    return values


def daemonsets_on(plan: Plan, pool: RecordedResource) -> tuple[Resources, list[str]]:
    """The requests of every DaemonSet the plan runs that would land on this NodePool's nodes,
    and their names."""
    taints = _pool_spec(pool).get("template", {}).get("spec", {}).get("taints", [])
    total, names = EKS_ADDON_DAEMONSETS, ["EKS add-ons"]
    for ds in plan.of_type(DAEMONSET):
        if all(_tolerates(_pod_spec(ds), t) for t in taints) and _pools_for(ds, [pool]):
            total, names = total + pod_requests(_pod_spec(ds)), [*names, ds.name]
    for release in plan.of_type(HELM_RELEASE):
        where = CHART_DAEMONSETS.get(str(release.inputs.get("chart")))
        if not where:
            continue
        values = release.inputs.get("values") or {}
        tolerations = _dig(values, where[1]) if where[1] else [{"operator": "Exists"}]
        if not all(_tolerates({"tolerations": tolerations or []}, t) for t in taints):
            continue
        total = total + _requests({"resources": _dig(values, where[0]) or {}})
        names.append(release.name)
    return total, names


def pod_fits_node(plan: Plan) -> Iterator[Finding]:
    """Every workload Karpenter may provision for fits every instance type of every NodePool
    it may land on, after that node's DaemonSets."""
    pools = plan.of_type(NODE_POOL)
    table = node_instances()
    for resource in (r for r in plan.resources if r.type in WORKLOADS and r.type != DAEMONSET):
        matching = _pools_for(resource, pools)
        if not matching:
            continue
        needed = pod_requests(_pod_spec(resource))
        for pool in matching:
            daemons, names = daemonsets_on(plan, pool)
            for instance in _pool_requirement(pool, INSTANCE_TYPE_LABEL):
                if instance not in table:
                    continue
                room = node_allocatable(table[instance]) - daemons
                if not needed.fits(room):
                    yield Finding("pod-fits-node", resource.stack, resource.name,
                                  f"requests {needed} but a {instance} from NodePool {_k8s_name(pool)} has "
                                  f"{room} left after kube-reserved, eviction and its DaemonSets "
                                  f"({', '.join(names)}); the pod would stay Pending: size it from "
                                  "components/allocatable.py or drop the type from the pool")


def _karpenter(release: RecordedResource) -> bool:
    return str(release.inputs.get("chart", "")).rsplit("/", 1)[-1] == "karpenter"


def controller_placement(plan: Plan) -> Iterator[Finding]:
    """Karpenter's controller runs on managed node groups only: its values keep the chart's
    karpenter.sh/nodepool DoesNotExist affinity, select no label only NodePools set, and
    match a node group of the platform."""
    pools = plan.of_type(NODE_POOL)
    groups = [g.inputs.get("labels") or {} for g in plan.of_type(NODE_GROUP)]
    for release in filter(_karpenter, plan.of_type(HELM_RELEASE)):
        values = release.inputs.get("values") or {}
        selector = values.get("nodeSelector") or {}
        affinity = values.get("affinity")
        if affinity is not None:
            terms = (affinity.get("nodeAffinity") or {}).get(
                "requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms", [])
            if not terms or not all(any(r.get("key") == NODEPOOL_LABEL and r.get("operator") == "DoesNotExist"
                                        for r in t.get("matchExpressions", [])) for t in terms):
                yield Finding("controller-placement", release.stack, release.name,
                              f"values.affinity replaces the chart's {NODEPOOL_LABEL} DoesNotExist "
                              "rule: the controller could run on a node it manages and drain itself")
        on_pools = [_k8s_name(p) for p in pools
                    if all(v in _pool_values(p).get(k, set()) for k, v in selector.items())]
        if selector and on_pools:
            yield Finding("controller-placement", release.stack, release.name,
                          f"nodeSelector {selector} matches NodePool(s) {', '.join(on_pools)}: the "
                          "controller would run on nodes it manages")
        if groups and not any(all(g.get(k) == v for k, v in selector.items()
                                  if k != "kubernetes.io/os") for g in groups):
            yield Finding("controller-placement", release.stack, release.name,
                          f"nodeSelector {selector} matches no managed node group: the controller "
                          "never starts, so no GPU node is ever launched")


RULES: tuple[Rule, ...] = (controller_placement, pod_fits_node)
