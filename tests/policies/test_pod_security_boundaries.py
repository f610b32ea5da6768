"""The pack's Pod Security Standards model (policies/pod_security_standards.py) at the edges
of its controls: the restricted volume types, pod-level settings a container may override,
and the one hostPath a bounded namespace admits."""

from __future__ import annotations

from policies.pod_security_standards import baseline_problems, problems_at, restricted_problems

HARDENED = {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _pod(container_ctx=None, pod_ctx=None, volumes=None) -> dict:
    spec: dict = {"containers": [{"name": "app", "image": "x:1", "securityContext": container_ctx or {}}]}
    if pod_ctx is not None:
        spec["securityContext"] = pod_ctx
    if volumes is not None:
        spec["volumes"] = volumes
    return spec


def test_restricted_admits_its_volume_types_and_names_any_other_once():
    allowed = [{"name": "tmp", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}},
               {"name": "bare"}]
    assert restricted_problems(_pod(HARDENED, volumes=allowed)) == []
    nfs = [{"name": "odd"}, "not-a-volume", {"name": "share", "nfs": {"server": "x", "path": "/"}}]
    assert restricted_problems(_pod(HARDENED, volumes=nfs)) == [
        "volume 'share' has a type restricted forbids (nfs)"]
    host = [{"name": "root", "hostPath": {"path": "/"}}]
    assert restricted_problems(_pod(HARDENED, volumes=host)) == ["mounts hostPath volume 'root'"]


def test_a_container_cannot_undo_the_pods_non_root_or_seccomp():
    pod = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    inherits = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert restricted_problems(_pod(inherits, pod)) == []
    assert restricted_problems(_pod({**inherits, "runAsNonRoot": False}, pod)) == [
        "container 'app' does not set runAsNonRoot: true"]
    assert restricted_problems(_pod({**inherits, "seccompProfile": {"type": "Unconfined"}}, pod)) == [
        "container 'app' seccomp profile is Unconfined",
        "container 'app' has no RuntimeDefault/Localhost seccomp profile"]


def test_uid_0_is_refused_at_pod_and_container_level_and_uid_1_is_not():
    assert restricted_problems(_pod({**HARDENED, "runAsUser": 1}, {"runAsUser": 1})) == []
    assert restricted_problems(_pod({**HARDENED, "runAsUser": 0}, {"runAsUser": 0})) == [
        "pod runs as uid 0", "container 'app' runs as uid 0"]


def test_only_the_exact_cache_path_is_admitted_and_only_where_allowed():
    cache = "/mnt/k8s-disks/0/llmops-models"
    for path in (cache + "/", cache + "/..", "/mnt/k8s-disks/0"):
        assert baseline_problems(_pod(volumes=[{"name": "c", "hostPath": {"path": path}}]),
                                 frozenset({cache})) == ["mounts hostPath volume 'c'"], path
    exact = _pod(volumes=[{"name": "c", "hostPath": {"path": cache}}])
    assert baseline_problems(exact, frozenset({cache})) == []
    assert problems_at("baseline", exact) == ["mounts hostPath volume 'c'"]
    assert problems_at("privileged", exact) == []


def test_a_probe_or_hook_that_names_a_host_is_below_baseline_and_an_empty_host_is_not():
    def probing(host: str) -> dict:
        container = {"name": "app", "image": "x:1",
                     "readinessProbe": {"httpGet": {"port": 80, "host": host}},
                     "lifecycle": {"preStop": {"tcpSocket": {"port": 80, "host": host}}}}
        return {"containers": [container]}

    assert baseline_problems(probing("")) == []
    assert baseline_problems(probing("169.254.169.254")) == [
        "container 'app' sets a host in readinessProbe.httpGet",
        "container 'app' sets a host in lifecycle.preStop.tcpSocket"]
