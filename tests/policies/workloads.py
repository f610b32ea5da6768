"""Realistic Kubernetes and GPU-pool resources built with the real SDKs, with knobs to break
one thing at a time.

HAND-BUILT: the TGI serving, GPU node pool and add-on components are being written in
parallel; once they land, tests using these builders should plan the real components.
"""

from __future__ import annotations

from typing import Any

import pulumi_aws as aws
import pulumi_kubernetes as k8s

from policies.governance import MODEL_REVISION, MODEL_VERSION, REGISTRY_STAGE

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.0.1"
LABELS = {"app.kubernetes.io/name": "tgi", "app.kubernetes.io/component": "model-server",
          "app.kubernetes.io/instance": "llama-8b"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def tgi_container(**overrides: Any) -> dict[str, Any]:
    container = {
        "name": "tgi", "image": TGI_IMAGE, "args": ["--model-id", "/data/model", "--num-shard", "1"],
        "ports": [{"name": "http", "container_port": 8080}],
        "resources": {"requests": {"cpu": "6", "memory": "24Gi", "nvidia.com/gpu": "1"},
                      "limits": {"cpu": "7", "memory": "28Gi", "nvidia.com/gpu": "1"}},
        "startup_probe": {"http_get": {"path": "/health", "port": "http"}, "period_seconds": 10,
                          "failure_threshold": 90},
        "readiness_probe": {"http_get": {"path": "/health", "port": "http"}, "period_seconds": 5},
        "volume_mounts": [{"name": "shm", "mount_path": "/dev/shm"}],
    }
    container.update(overrides)
    return container


def weights_init(**overrides: Any) -> dict[str, Any]:
    init = {"name": "fetch-weights", "image": "peakcom/s5cmd:v2.2.2",
            "args": ["cp", "s3://models/llama-8b/7/*", "/data/model/"],
            "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}}
    init.update(overrides)
    return init


def tgi_deployment(name: str = "llama-8b", *, container: dict | None = None, init: dict | None = None,
                   tolerations: list | None = None, labels: dict | None = None,
                   model_annotations: dict | None = None, namespace: str = "serving",
                   host_network: bool | None = None) -> k8s.apps.v1.Deployment:
    labels = LABELS if labels is None else labels
    annotations = {MODEL_VERSION: "7", MODEL_REVISION: "3f2c9e1", REGISTRY_STAGE: "production"}
    if model_annotations is not None:
        annotations = model_annotations
    return k8s.apps.v1.Deployment(
        name,
        metadata={"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        spec={"replicas": 2, "selector": {"match_labels": labels},
              "template": {"metadata": {"labels": labels},
                           "spec": {"containers": [container or tgi_container()],
                                    "init_containers": [init or weights_init()],
                                    "tolerations": [GPU_TOLERATION] if tolerations is None else tolerations,
                                    "host_network": host_network,
                                    "volumes": [{"name": "shm", "empty_dir": {"medium": "Memory"}}]}}})


def tgi_pdb(name: str = "llama-8b", match: dict | None = None, namespace: str = "serving"):
    return k8s.policy.v1.PodDisruptionBudget(
        name, metadata={"name": name, "namespace": namespace},
        spec={"max_unavailable": 1, "selector": {"match_labels": match or dict(LABELS)}})


def device_plugin(name: str = "nvidia-device-plugin", namespace: str = "kube-system"):
    """The NVIDIA device plugin DaemonSet: privileged by necessity (allow-listed by name)."""
    labels = {"app.kubernetes.io/name": name}
    return k8s.apps.v1.DaemonSet(
        name, metadata={"name": name, "namespace": namespace},
        spec={"selector": {"match_labels": labels},
              "template": {"metadata": {"labels": labels}, "spec": {
                  "tolerations": [GPU_TOLERATION],
                  "containers": [{"name": "plugin", "image": "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
                                  "security_context": {"privileged": True},
                                  "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                                "limits": {"cpu": "100m", "memory": "128Mi"}}}]}}})


def gpu_node_group(name: str = "gpu-spot", *, instance_types: list[str] | None = None,
                   capacity_type: str | None = "SPOT", max_size: int = 2, launch_template=None,
                   tags: dict[str, str] | None = None):
    return aws.eks.NodeGroup(
        name, cluster_name="llmops-dev", node_role_arn="arn:aws:iam::123456789012:role/gpu-nodes",
        subnet_ids=["subnet-1", "subnet-2"],
        instance_types=["g5.xlarge", "g6.xlarge"] if instance_types is None else instance_types,
        capacity_type=capacity_type,
        scaling_config={"min_size": 0, "max_size": max_size, "desired_size": 0},
        taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}],
        launch_template=launch_template, tags=tags)
