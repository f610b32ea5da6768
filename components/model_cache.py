"""The node-shared model cache as it appears in a model-server pod (TGI or vLLM): one
verified copy of each model version per node, shared by every pod there
(serving/registry/cache.py has the layout and the locking). A restarted pod, a second
replica or a rollout on the same node finds the weights and moves no bytes.

The cache root is a hostPath on the node's fastest disk: nodeadm mounts the instance-store
NVMe RAID0 at /mnt/k8s-disks/0 before kubelet starts (and bind-mounts kubelet's and
containerd's state onto it); on a node without NVMe the directory is created on the root
EBS volume. Pod Security baseline forbids every hostPath, so the serving namespace enforces
`privileged` and a ValidatingAdmissionPolicy (components/serving_admission.py) enforces
baseline with exactly this one path allowed (docs/isolation.md says why).

Init containers, in order:
1. `prepare-cache`: kubelet creates a DirectoryOrCreate hostPath as root 0755; root with
   only CAP_CHOWN hands it to the fetcher's uid (idempotent).
2. `hold-weights`: a native sidecar (restartPolicy Always) holding the version's use lock
   for the pod's life, so another pod's fetch never evicts what this one serves. Its
   startupProbe waits for the lock, so the fetch starts only once the hold is in place.
3. `fetch-weights`: fills the entry (a hit makes no S3 request), evicting idle versions,
   least recently used first, to stay within the cap and leave the reserve free.
The engine mounts the root read-only and reads <root>/entries/<model>/<version>/<revision>/files.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.model_release import ResolvedVersion
from components.pod_security import hardened_container

CACHE_HOST_PATH = "/mnt/k8s-disks/0/llmops-models"
#: Where the cache is mounted in every container of the pod (the engine's model path lives below).
WEIGHTS_DIR = "/data/models"
#: The platform image's user (serving/Dockerfile); the fetcher never needs root.
FETCH_UID = 10001
HOLD_STATE_DIR = "/run/llmops"
HOLD_READY_FILE = f"{HOLD_STATE_DIR}/holding"


@dataclass(frozen=True)
class CachePod:
    """The pieces of a model-server pod spec that bring the weights to the node."""

    init_containers: list[k8s.core.v1.ContainerArgs]
    volumes: list[k8s.core.v1.VolumeArgs]
    server_mount: k8s.core.v1.VolumeMountArgs


def cache_pod(model: str, version: pulumi.Output[ResolvedVersion], *, image: pulumi.Input[str],
              bucket: pulumi.Input[str], registry_prefix: str, region: str, reserve_gib: int,
              fetch_resources: dict[str, dict[str, str]]) -> CachePod:
    cache = k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=WEIGHTS_DIR)
    small = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}}
    prepare = k8s.core.v1.ContainerArgs(
        name="prepare-cache", image=image, command=["chown", f"{FETCH_UID}:{FETCH_UID}", WEIGHTS_DIR],
        resources=small, volume_mounts=[cache],
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_user=0, run_as_non_root=False, allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"], add=["CHOWN"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault")))
    hold = k8s.core.v1.ContainerArgs(
        name="hold-weights", image=image, restart_policy="Always",
        command=["llmops", "registry", "cache", "hold", model, "--version", version.version,
                 "--revision", version.revision, "--cache-dir", WEIGHTS_DIR,
                 "--ready-file", HOLD_READY_FILE],
        resources=small,
        startup_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(command=["test", "-e", HOLD_READY_FILE]),
            period_seconds=1, failure_threshold=120),
        security_context=hardened_container(non_root_uid=FETCH_UID),
        volume_mounts=[cache, k8s.core.v1.VolumeMountArgs(name="hold-state", mount_path=HOLD_STATE_DIR)])
    fetch = k8s.core.v1.ContainerArgs(
        name="fetch-weights", image=image,
        command=["llmops", "registry", "--bucket", bucket, "--prefix", registry_prefix,
                 "fetch", model, "--cache-dir", WEIGHTS_DIR, "--version", version.version,
                 "--revision", version.revision,
                 "--reserve-gib", str(reserve_gib), "--no-progress"],
        env=[k8s.core.v1.EnvVarArgs(name="AWS_REGION", value=region)],
        resources=fetch_resources,
        security_context=hardened_container(non_root_uid=FETCH_UID),
        volume_mounts=[cache])
    volumes = [
        k8s.core.v1.VolumeArgs(name="model-cache", host_path=k8s.core.v1.HostPathVolumeSourceArgs(
            path=CACHE_HOST_PATH, type="DirectoryOrCreate")),
        k8s.core.v1.VolumeArgs(name="hold-state", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(
            medium="Memory", size_limit="1Mi"))]
    return CachePod([prepare, hold, fetch], volumes,
                    k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=WEIGHTS_DIR,
                                                read_only=True))
