"""The Pod Security Standards as pure checks over a pod spec (camelCase inputs), so a plan can
say which container would be rejected by its namespace's `enforce` level before any apply.

Source: https://kubernetes.io/docs/concepts/security/pod-security-standards/ (the controls of
the baseline and restricted profiles, latest version). Values not known at preview time
(`COMPUTED`) are not judged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules import as_list, computed

LEVEL_ORDER = {"privileged": 0, "baseline": 1, "restricted": 2}
HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
#: Capabilities baseline allows to add (the container runtime's defaults).
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
#: Safe sysctls as of policy version 1.32 (the oldest EKS version the config allows):
#: kubernetes/pod-security-admission policy/check_sysctls.go.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"})
#: Probes and lifecycle hooks whose httpGet/tcpSocket `host` baseline forbids (policy 1.34+:
#: check_hostProbesAndhostLifecycle.go): kubelet would connect to any address it names.
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HOOKS = ("postStart", "preStop")
HOST_HANDLERS = ("httpGet", "tcpSocket")
#: SELinux types baseline allows ("" is unset).
ALLOWED_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t",
                                   "container_engine_t"})
RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret"})
VOLUME_FIELDS_IGNORED = frozenset({"name"})


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for key, label in (("initContainers", "init container"), ("containers", "container"),
                       ("ephemeralContainers", "ephemeral container")):
        for c in as_list(spec.get(key)):
            if isinstance(c, Mapping):
                yield f"{label} {c.get('name', '?')!r}", c


def _ctx(container: Mapping[str, Any]) -> Mapping[str, Any]:
    ctx = container.get("securityContext")
    return ctx if isinstance(ctx, Mapping) else {}


def _selinux_problems(label: str, ctx: Mapping[str, Any]) -> list[str]:
    options = ctx.get("seLinuxOptions")
    if not isinstance(options, Mapping):
        return []
    problems = []
    if options.get("type", "") not in ALLOWED_SELINUX_TYPES:
        problems.append(f"{label} sets SELinux type {options.get('type')!r}")
    if options.get("user") or options.get("role"):
        problems.append(f"{label} sets an SELinux user or role")
    return problems


def _host_handlers(container: Mapping[str, Any]) -> Iterator[str]:
    """Where a container's probes or lifecycle hooks name a host (`livenessProbe.httpGet`)."""
    lifecycle = container.get("lifecycle") if isinstance(container.get("lifecycle"), Mapping) else {}
    for where, action in [*((p, container.get(p)) for p in PROBES),
                          *((f"lifecycle.{h}", lifecycle.get(h)) for h in HOOKS)]:
        for handler in HOST_HANDLERS:
            if isinstance(action, Mapping) and ((action.get(handler) or {}).get("host") or ""):
                yield f"{where}.{handler}"


def _host_process(ctx: Mapping[str, Any]) -> bool:
    return (ctx.get("windowsOptions") or {}).get("hostProcess") is True


def baseline_problems(spec: Mapping[str, Any], allowed_host_paths: frozenset[str] = frozenset()
                      ) -> list[str]:
    """What the baseline profile forbids: host namespaces/paths/ports, privilege, added
    capabilities, unconfined seccomp/AppArmor, non-default procMount, SELinux escapes,
    Windows host processes, unsafe sysctls. `allowed_host_paths`: hostPaths a namespace's
    own admission policy admits at exactly these paths (components/serving_admission.py)."""
    problems = [f"uses {key}" for key in HOST_NAMESPACES if spec.get(key) is True]
    for volume in as_list(spec.get("volumes")):
        if (isinstance(volume, Mapping) and "hostPath" in volume
                and (volume.get("hostPath") or {}).get("path") not in allowed_host_paths):
            problems.append(f"mounts hostPath volume {volume.get('name', '?')!r}")
    pod_ctx = spec.get("securityContext") if isinstance(spec.get("securityContext"), Mapping) else {}
    if (pod_ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
        problems.append("pod seccomp profile is Unconfined")
    if (pod_ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("pod AppArmor profile is Unconfined")
    problems += _selinux_problems("pod", pod_ctx)
    if _host_process(pod_ctx):
        problems.append("pod is a Windows hostProcess pod")
    for sysctl in as_list(pod_ctx.get("sysctls")):
        if isinstance(sysctl, Mapping) and sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"sets unsafe sysctl {sysctl.get('name')!r}")
    for label, container in _containers(spec):
        ctx = _ctx(container)
        if ctx.get("privileged") is True:
            problems.append(f"{label} is privileged")
        added = as_list((ctx.get("capabilities") or {}).get("add"))
        extra = sorted(c for c in added if isinstance(c, str) and c not in BASELINE_CAPABILITIES)
        if extra:
            problems.append(f"{label} adds capabilities {', '.join(extra)}")
        if (ctx.get("seccompProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{label} seccomp profile is Unconfined")
        if ctx.get("procMount") not in (None, "Default"):
            problems.append(f"{label} sets procMount {ctx.get('procMount')}")
        if (ctx.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{label} AppArmor profile is Unconfined")
        problems += _selinux_problems(label, ctx)
        if _host_process(ctx):
            problems.append(f"{label} is a Windows hostProcess container")
        for port in as_list(container.get("ports")):
            if isinstance(port, Mapping) and port.get("hostPort"):
                problems.append(f"{label} uses hostPort {port['hostPort']}")
        problems += [f"{label} sets a host in {where}" for where in _host_handlers(container)]
    return problems


def restricted_problems(spec: Mapping[str, Any]) -> list[str]:
    """What restricted adds: restricted volume types, non-root, no escalation, drop ALL,
    seccomp RuntimeDefault or Localhost (pod or container)."""
    problems = baseline_problems(spec)
    for volume in as_list(spec.get("volumes")):
        if not isinstance(volume, Mapping):
            continue
        kinds = set(volume) - VOLUME_FIELDS_IGNORED
        if kinds and not kinds <= RESTRICTED_VOLUMES and "hostPath" not in kinds:
            problems.append(f"volume {volume.get('name', '?')!r} has a type restricted forbids "
                            f"({', '.join(sorted(kinds - RESTRICTED_VOLUMES))})")
    pod_ctx = spec.get("securityContext") if isinstance(spec.get("securityContext"), Mapping) else {}
    pod_non_root = pod_ctx.get("runAsNonRoot") is True
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
    if pod_ctx.get("runAsUser") == 0:
        problems.append("pod runs as uid 0")
    for label, container in _containers(spec):
        ctx = _ctx(container)
        if computed(ctx):
            continue
        if not (ctx.get("runAsNonRoot") is True or (pod_non_root and ctx.get("runAsNonRoot") is not False)):
            problems.append(f"{label} does not set runAsNonRoot: true")
        if ctx.get("runAsUser") == 0:
            problems.append(f"{label} runs as uid 0")
        if ctx.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{label} does not set allowPrivilegeEscalation: false")
        caps = ctx.get("capabilities") or {}
        if "ALL" not in as_list(caps.get("drop")):
            problems.append(f"{label} does not drop ALL capabilities")
        added = [c for c in as_list(caps.get("add")) if c != "NET_BIND_SERVICE"]
        if added:
            problems.append(f"{label} adds {', '.join(map(str, added))} (restricted allows only "
                            "NET_BIND_SERVICE)")
        container_seccomp = (ctx.get("seccompProfile") or {}).get("type")
        if not (container_seccomp in ("RuntimeDefault", "Localhost")
                or (pod_seccomp and container_seccomp is None)):
            problems.append(f"{label} has no RuntimeDefault/Localhost seccomp profile")
    return list(dict.fromkeys(problems))


def problems_at(level: str, spec: Mapping[str, Any],
                allowed_host_paths: frozenset[str] = frozenset()) -> list[str]:
    """Why `spec` would be rejected by a namespace enforcing `level` (privileged: never)."""
    if level == "restricted":
        return restricted_problems(spec)
    if level == "baseline":
        return baseline_problems(spec, allowed_host_paths)
    return []
