"""The readers the deploy checks share: Kubernetes quantities in the units requests are written
in, and which NodePools a pod may land on (Karpenter's requirement operators and taints).
A wrong reading makes `pod-fits-node` or `node-grace-covers-await` judge the wrong pods."""

from __future__ import annotations

import pytest

from components.allocatable import Resources
from llmops.offline.deploy_checks.base import _pools_for
from llmops.offline.deploy_checks.capacity import cpu_m, memory_mi, pod_requests
from llmops.offline.recorder import RecordedResource


@pytest.mark.parametrize(("quantity", "millicores"), [
    ("500m", 500), ("2", 2000), ("0.5", 500), ("1.5", 1500), (2, 2000), ("", 0), ("lots", 0)])
def test_cpu_quantities_read_in_millicores(quantity, millicores):
    assert cpu_m(quantity) == millicores


@pytest.mark.parametrize(("quantity", "mebibytes"), [
    ("1Mi", 1), ("1Gi", 1024), ("1.5Gi", 1536), ("1Ti", 1024 ** 2),
    ("1024Ki", 1), ("1025Ki", 2), ("512Ki", 1),          # rounded up to whole MiB
    ("1G", 954), ("1M", 1), ("1000k", 1), ("2000k", 2),  # decimal units: 1e9 B = 953.7 MiB
    (str(2 ** 20), 1), (str(2 ** 20 + 1), 2), ("0", 0), ("much", 0)])
def test_memory_quantities_read_in_whole_mebibytes_rounded_up(quantity, mebibytes):
    assert memory_mi(quantity) == mebibytes


def pool(name: str, labels: dict | None = None, requirements: list | None = None,
         taints: list | None = None) -> RecordedResource:
    spec = {"template": {"metadata": {"labels": labels or {}},
                         "spec": {"requirements": requirements or [], "taints": taints or []}}}
    return RecordedResource(urn=f"urn:{name}", type="kubernetes:karpenter.sh/v1:NodePool", name=name,
                            parent=None, custom=True, inputs={"spec": spec})


def workload(match: list | None = None, node_selector: dict | None = None,
             tolerations: list | None = None) -> RecordedResource:
    pod: dict = {"containers": [], "nodeSelector": node_selector or {}, "tolerations": tolerations or []}
    if match is not None:
        pod["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": match}]}}}
    return RecordedResource(urn="urn:w", type="kubernetes:apps/v1:Deployment", name="w", parent=None,
                            custom=True, inputs={"spec": {"template": {"spec": pod}}})


ZONES = {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["a", "b"]}
GPU = pool("gpu", labels={"tier": "gpu"}, requirements=[ZONES],
           taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}])
GENERAL = pool("general", requirements=[ZONES])


def landing(pod: RecordedResource) -> list[str]:
    return [p.name for p in _pools_for(pod, [GPU, GENERAL])]


@pytest.mark.parametrize(("operator", "values", "pools"), [
    ("In", ["b", "c"], ["general"]), ("In", ["c"], []),
    ("NotIn", ["a"], ["general"]),  ("NotIn", ["a", "b"], []),
    ("Exists", [], ["general"]), ("DoesNotExist", [], []), ("Gt", ["1"], [])])
def test_required_node_affinity_on_a_pool_requirement(operator, values, pools):
    assert landing(workload([{"key": "topology.kubernetes.io/zone", "operator": operator,
                              "values": values}])) == pools


def test_a_label_no_pool_sets_is_compatible_only_with_not_in_and_does_not_exist():
    def on_missing(operator: str) -> list[str]:
        return landing(workload([{"key": "disk", "operator": operator, "values": ["ssd"]}]))

    assert on_missing("NotIn") == ["general"]
    assert on_missing("DoesNotExist") == ["general"]
    assert on_missing("In") == []
    assert on_missing("Exists") == []


@pytest.mark.parametrize(("toleration", "pools"), [
    (None, ["general"]),
    ({"key": "nvidia.com/gpu", "operator": "Exists"}, ["gpu", "general"]),
    ({"operator": "Exists"}, ["gpu", "general"]),
    ({"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}, ["gpu", "general"]),
    ({"key": "nvidia.com/gpu", "value": "false"}, ["general"]),
    ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, ["general"]),
])
def test_a_tainted_pool_takes_only_pods_that_tolerate_its_taint(toleration, pools):
    assert landing(workload(tolerations=[toleration] if toleration else [])) == pools


def test_a_node_selector_must_match_a_pool_label():
    tolerant = [{"operator": "Exists"}]
    assert landing(workload(node_selector={"tier": "gpu"}, tolerations=tolerant)) == ["gpu"]
    assert landing(workload(node_selector={"tier": "cpu"}, tolerations=tolerant)) == []
    assert landing(workload(node_selector={"topology.kubernetes.io/zone": "a"})) == ["general"]


def container(cpu: str, memory: str, **extra) -> dict:
    return {"resources": {"requests": {"cpu": cpu, "memory": memory}}, **extra}


def test_a_pod_reserves_its_app_containers_plus_native_sidecars_or_its_largest_init_step():
    sidecar = container("100m", "128Mi", restartPolicy="Always")
    pod = {"initContainers": [container("2", "64Mi"), sidecar, container("300m", "4Gi")],
           "containers": [container("500m", "1Gi"), container("250m", "512Mi")]}
    # running: 100m + 500m + 250m = 850m, 128 + 1024 + 512 = 1664Mi; init steps: 2000m / 64Mi
    # (before the sidecar started), 100m + 300m / 128 + 4096Mi (after it)
    assert pod_requests(pod) == Resources(2000, 4224)
    assert pod_requests({"containers": [container("500m", "1Gi")]}) == Resources(500, 1024)
    assert pod_requests({"initContainers": [sidecar], "containers": []}) == Resources(100, 128)
    assert pod_requests({"containers": [{}]}) == Resources(0, 0)
