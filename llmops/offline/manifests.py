"""Kubernetes manifests from recorded resources: what `kubectl apply` would receive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmops.offline.recorder import RecordedResource

#: Recorded kubernetes types that are not objects in the cluster.
NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")


def is_kubernetes_object(resource: RecordedResource) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:") and not resource.type.startswith(
        NOT_OBJECTS)


def to_manifest(resource: RecordedResource) -> dict[str, Any]:
    """The recorded inputs are the manifest (apiVersion/kind included); fill the name."""
    manifest = dict(resource.inputs)
    metadata = dict(manifest.get("metadata") or {})
    metadata.setdefault("name", resource.name)
    manifest["metadata"] = metadata
    return manifest


def manifests(resources: list[RecordedResource]) -> list[dict[str, Any]]:
    return [to_manifest(r) for r in resources if is_kubernetes_object(r)]


def file_name(manifest: dict[str, Any]) -> str:
    meta = manifest["metadata"]
    namespace = meta.get("namespace", "cluster")
    return f"{namespace}--{manifest['kind'].lower()}--{meta['name']}.yaml"


def write_manifests(resources: list[RecordedResource], directory: Path) -> list[Path]:
    """One YAML file per object, named namespace--kind--name.yaml, for reading and diffing."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for manifest in manifests(resources):
        path = directory / file_name(manifest)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    return written
