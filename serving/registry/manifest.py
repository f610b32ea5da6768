"""The version record (manifest.json): building it, hashing files, and comparing two of them.

Pure functions, no S3: the content identity of a version is its file list (path, size,
SHA-256) plus its metadata; who registered it and when are not part of the identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from serving.registry.errors import RegistryError, SourceNotFound
from serving.registry.layout import check_relative_path

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One weights file as the manifest records it."""

    path: str
    size: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


def sha256_stream(stream: BinaryIO, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """SHA-256 and length of a stream, read in 1 MiB chunks so model-sized files fit in memory."""
    digest, size = hashlib.sha256(), 0
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return digest.hexdigest(), size


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    with path.open("rb") as stream:
        return sha256_stream(stream, on_bytes)


def local_files(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, absolute path) of every regular file under root, sorted by path."""
    if not root.exists():
        raise SourceNotFound(f"model directory {str(root)!r} does not exist")
    if not root.is_dir():
        raise SourceNotFound(f"model source {str(root)!r} is not a directory")
    found = sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
    if not found:
        raise SourceNotFound(f"model directory {str(root)!r} contains no files")
    for relative, _ in found:
        check_relative_path(relative)
    return found


def content_revision(files: Iterable[FileEntry]) -> str:
    """SHA-256 over the canonical file list: same files, same revision, whoever uploads them."""
    canonical = json.dumps([f.as_json() for f in sorted(files, key=lambda f: f.path)],
                           sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Metadata must be a JSON object; 'revision', if given, must be a non-empty string."""
    metadata = dict(metadata or {})
    try:
        json.dumps(metadata, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"metadata must be JSON-serialisable with string keys: {exc}") from exc
    revision = metadata.get("revision")
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise RegistryError(f"metadata 'revision' must be a non-empty string, got {revision!r}")
    return metadata


def build_manifest(*, name: str, version: str, uri: str, files: list[FileEntry],
                   metadata: dict[str, Any], registered_by: str, registered_at: str) -> dict[str, Any]:
    """The version record, in the shape the infrastructure reads."""
    files = sorted(files, key=lambda f: f.path)
    return {
        "name": name,
        "version": version,
        "revision": metadata.get("revision") or content_revision(files),
        "uri": uri,
        "files": [f.as_json() for f in files],
        "totalBytes": sum(f.size for f in files),
        "metadata": metadata,
        "registeredBy": registered_by,
        "registeredAt": registered_at,
    }


def entries(manifest: dict[str, Any]) -> list[FileEntry]:
    """The manifest's file list as FileEntry objects, with each path checked for safety."""
    return [FileEntry(check_relative_path(f["path"]), int(f["size"]), f["sha256"])
            for f in manifest["files"]]


def differences(existing: dict[str, Any], candidate: dict[str, Any]) -> list[str]:
    """Human-readable content differences; [] means the same version content."""
    old = {f.path: f for f in entries(existing)}
    new = {f.path: f for f in entries(candidate)}
    out = [f"{p}: only in the registered version" for p in sorted(old.keys() - new.keys())]
    out += [f"{p}: not in the registered version" for p in sorted(new.keys() - old.keys())]
    out += [f"{p}: different content (sha256 {old[p].sha256[:12]}... registered, "
            f"{new[p].sha256[:12]}... given)"
            for p in sorted(old.keys() & new.keys()) if old[p] != new[p]]
    if existing.get("metadata", {}) != candidate.get("metadata", {}):
        out.append(f"metadata: registered {json.dumps(existing.get('metadata', {}), sort_keys=True)}, "
                   f"given {json.dumps(candidate.get('metadata', {}), sort_keys=True)}")
    return out
