"""Moving weights: hash the source, upload or copy it under files/, download and verify.

Why each file carries `x-amz-meta-sha256`: boto3's upload_file cannot make a conditional
write (boto/boto3#4366), so files are checked after the fact instead. The metadata lets a
re-run skip files already uploaded identically, refuse leftovers of a different upload, and
re-check every file just before the manifest is created."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from serving.registry.errors import SourceNotFound, VersionConflict
from serving.registry.fetch import Fetcher, FetchReport, FetchSettings
from serving.registry.layout import Layout, check_relative_path, parse_s3_uri
from serving.registry.manifest import FileEntry, entries, local_files, sha256_file, sha256_stream
from serving.registry.progress import Progress
from serving.registry.store import MISSING_CODES, error_code, list_objects, s3_errors

SHA_META = "sha256"


@dataclass(frozen=True)
class SourceFile:
    """A file to register: its manifest entry and where its bytes come from."""

    entry: FileEntry
    local: Path | None = None
    bucket: str | None = None
    key: str | None = None
    etag: str | None = None


def hash_local(root: Path, progress: Progress) -> list[SourceFile]:
    found = local_files(root)
    progress.start("hashing", sum(p.stat().st_size for _, p in found))
    out = []
    for relative, path in found:
        sha, size = sha256_file(path, progress.advance)
        out.append(SourceFile(FileEntry(relative, size, sha), local=path))
    progress.finish()
    return out


def hash_s3(s3: Any, uri: str, progress: Progress) -> list[SourceFile]:
    """Stream every object under the prefix through SHA-256, pinning each one by its ETag."""
    bucket, prefix = parse_s3_uri(uri)
    objects = [o for o in list_objects(s3, bucket, prefix) if not o["Key"].endswith("/")]
    if not objects:
        raise SourceNotFound(f"S3 source {uri!r} holds no objects")
    progress.start("hashing", sum(o["Size"] for o in objects))
    out = []
    for obj in sorted(objects, key=lambda o: o["Key"]):
        relative = check_relative_path(obj["Key"][len(prefix):])
        with s3_errors(f"reading s3://{bucket}/{obj['Key']}"):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"], IfMatch=obj["ETag"])["Body"]
            sha, size = sha256_stream(body, progress.advance)
        entry = FileEntry(relative, size, sha)
        out.append(SourceFile(entry, bucket=bucket, key=obj["Key"], etag=obj["ETag"]))
    progress.finish()
    return out


def _head(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in MISSING_CODES:
            return None
        with s3_errors(f"reading s3://{bucket}/{key}"):
            raise
    return None


def _matches(head: dict[str, Any] | None, entry: FileEntry) -> bool:
    return (head is not None and head.get("ContentLength") == entry.size
            and head.get("Metadata", {}).get(SHA_META) == entry.sha256)


def already_uploaded(s3: Any, layout: Layout, name: str, version: str,
                     files: list[SourceFile]) -> set[str]:
    """Paths already under files/ with the same content (a resumed register); raise on leftovers."""
    prefix = layout.files_prefix(name, version)
    wanted = {f.entry.path: f.entry for f in files}
    same, foreign = set(), []
    for obj in list_objects(s3, layout.bucket, prefix):
        relative = obj["Key"][len(prefix):]
        if relative in wanted and _matches(_head(s3, layout.bucket, obj["Key"]), wanted[relative]):
            same.add(relative)
        else:
            foreign.append(relative)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise VersionConflict(
            f"{name} {version} is not registered, but {layout.files_uri(name, version)} already holds "
            f"files of a different upload (failed or concurrent): {shown}. If no one else is "
            f"registering it, remove them (aws s3 rm --recursive {layout.files_uri(name, version)}) "
            "and register again")
    return same


def upload(s3: Any, layout: Layout, name: str, version: str, files: list[SourceFile],
           skip: set[str], config: TransferConfig, progress: Progress) -> None:
    """Upload local files (multipart above config's threshold) or copy S3 ones server-side."""
    progress.start("uploading", sum(f.entry.size for f in files))
    for f in files:
        key = layout.file_key(name, version, f.entry.path)
        if f.entry.path in skip:
            progress.advance(f.entry.size)
            continue
        meta = {"Metadata": {SHA_META: f.entry.sha256}}
        with s3_errors(f"uploading {f.entry.path} to s3://{layout.bucket}/{key}"):
            if f.local is not None:
                s3.upload_file(str(f.local), layout.bucket, key, ExtraArgs=meta, Config=config,
                               Callback=progress.advance)
            else:
                s3.copy({"Bucket": f.bucket, "Key": f.key}, layout.bucket, key,
                        ExtraArgs={**meta, "MetadataDirective": "REPLACE", "CopySourceIfMatch": f.etag},
                        Config=config, Callback=progress.advance)
    progress.finish()


def verify_uploaded(s3: Any, layout: Layout, name: str, version: str, files: list[SourceFile]) -> None:
    """Just before the manifest: every file still carries our checksum (no racing overwrite)."""
    changed = [f.entry.path for f in files
               if not _matches(_head(s3, layout.bucket, layout.file_key(name, version, f.entry.path)),
                               f.entry)]
    if changed:
        raise VersionConflict(
            f"{name} {version}: files changed under {layout.files_uri(name, version)} while uploading "
            f"(a concurrent register of the same version?): {', '.join(changed)}. Not registered")


def download(s3: Any, layout: Layout, manifest: dict[str, Any], dest: Path,
             settings: FetchSettings, progress: Progress) -> FetchReport:
    """Download every manifest file under dest; each one is verified (size and SHA-256) before
    it appears under its final name. See serving.registry.fetch for how."""
    name, version = manifest["name"], manifest["version"]
    fetcher = Fetcher(s3, layout.bucket, lambda path: layout.file_key(name, version, path),
                      f"{name} {version}", settings, progress)
    return fetcher.fetch(entries(manifest), dest)
