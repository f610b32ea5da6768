"""Kubernetes manifests from recorded resources: what `kubectl apply` would receive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from llmops.offline.recorder import RecordedResource, mask

#: The list of files the last write put in a manifests directory; the next write removes
#: exactly those, so a reused directory holds one plan and never loses a user's own files.
INDEX = ".llmops-manifests"

#: Recorded kubernetes types that are not objects in the cluster.
NOT_OBJECTS = ("kubernetes:helm.sh/", "pulumi:providers:")


def is_kubernetes_object(resource: RecordedResource) -> bool:
    return resource.custom and resource.type.startswith("kubernetes:") and not resource.type.startswith(
        NOT_OBJECTS)


def to_manifest(resource: RecordedResource) -> dict[str, Any]:
    """The recorded inputs are the manifest (apiVersion/kind included); fill the name.
    Secret values (a Secret's data, a password in Helm-free YAML) are masked as in --json."""
    manifest = dict(mask(resource.inputs, resource.secret_paths, keep_shape=True))
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
    """One YAML file per object, named namespace--kind--name.yaml, for reading and diffing.
    The files of the previous write into the same directory are removed first."""
    directory.mkdir(exist_ok=True)
    remove_previous(directory)
    written = []
    for manifest in manifests(resources):
        path = directory / file_name(manifest)
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    (directory / INDEX).write_text("".join(f"{p.name}\n" for p in written))
    return written


def remove_previous(directory: Path) -> list[Path]:
    """Delete the files the index names (plain names in this directory only)."""
    index = directory / INDEX
    if not index.is_file():
        return []
    removed = []
    for name in index.read_text().splitlines():
        path = directory / name
        if name.endswith(".yaml") and "/" not in name and path.is_file():
            path.unlink()
            removed.append(path)
    index.unlink()
    return removed
