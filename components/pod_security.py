"""Pod Security Admission: the level each namespace the stack creates enforces, and the
container security contexts that meet it.

Levels (https://kubernetes.io/docs/concepts/security/pod-security-standards/):
- restricted: non-root, no privilege escalation, capabilities drop ALL, seccomp RuntimeDefault.
- baseline: no host namespaces, hostPath, privileged or added capabilities; root allowed.
- privileged: anything; only for node agents that read the host.

A namespace that needs one thing PSA cannot grant alone (the serving namespace's model-cache
hostPath) enforces `privileged` and carries `BOUND_LABEL: baseline`; a ValidatingAdmissionPolicy
bound to that label enforces baseline with that one exception (components/serving_admission.py).

Every namespace also warns and audits at `restricted`, so a workload below it is visible at
apply time (kubectl warnings, API audit log) even where the namespace enforces less.
"""

from __future__ import annotations

from typing import Literal

import pulumi_kubernetes as k8s

Level = Literal["privileged", "baseline", "restricted"]
LEVELS: tuple[Level, ...] = ("privileged", "baseline", "restricted")
LABEL_PREFIX = "pod-security.kubernetes.io/"
ENFORCE = LABEL_PREFIX + "enforce"
#: The level an admission policy enforces where PSA enforces less (see module doc).
BOUND_LABEL = "llmops.io/pod-security-bound"

#: Namespaces the workloads stack creates, and why each enforces what it does.
SERVING_LEVEL: Level = "privileged"     # the model cache's hostPath; bounded below
SERVING_BOUND: Level = "baseline"       # TGI's image runs as root (docs/isolation.md)
GATEWAY_LEVEL: Level = "restricted"
KEDA_LEVEL: Level = "restricted"        # the KEDA chart is non-root/drop ALL/RuntimeDefault
MONITORING_LEVEL: Level = "baseline"    # chart subcomponents not all proven restricted
NODE_AGENTS_LEVEL: Level = "privileged"  # node-exporter (host net/pid, hostPath), dcgm (SYS_ADMIN)


def namespace_labels(level: Level, bound: Level | None = None) -> dict[str, str]:
    """PSA labels: enforce `level`; warn and audit at restricted (latest policy version);
    `bound`: the level the serving admission policy enforces in the namespace."""
    return {ENFORCE: level, LABEL_PREFIX + "warn": "restricted",
            LABEL_PREFIX + "audit": "restricted", **({BOUND_LABEL: bound} if bound else {})}


def runtime_default_pod() -> k8s.core.v1.PodSecurityContextArgs:
    """Pod-level seccomp RuntimeDefault: required by restricted, harmless under baseline."""
    return k8s.core.v1.PodSecurityContextArgs(
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"))


def hardened_container(*, non_root_uid: int | None, read_only_root: bool = True
                       ) -> k8s.core.v1.SecurityContextArgs:
    """A container context that drops everything it can.

    `non_root_uid=None` is for images that must run as root (baseline at most); every other
    restricted requirement still holds.
    """
    return k8s.core.v1.SecurityContextArgs(
        allow_privilege_escalation=False,
        capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
        seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        read_only_root_filesystem=read_only_root,
        **({"run_as_non_root": True, "run_as_user": non_root_uid, "run_as_group": non_root_uid}
           if non_root_uid is not None else {}))
