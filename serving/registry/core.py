"""ModelRegistry: versions of model weights in S3, stage pointers, and promotion audit.

Write order makes every state a reader can see a complete one:
  register: weights under files/, then manifest.json created with IfNoneMatch="*" (last).
  promote:  stage pointer swapped with IfMatch=<etag> (IfNoneMatch="*" for the first one),
            then one immutable audit record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from serving.registry import fetch, transfer
from serving.registry.errors import (
    PromotionConflict,
    RegistryError,
    UnknownModel,
    UnknownVersion,
    VersionConflict,
)
from serving.registry.fetch import FetchReport, FetchSettings
from serving.registry.identity import caller_identity
from serving.registry.layout import STAGES, Layout, check_name, check_stage, iso_timestamp
from serving.registry.manifest import build_manifest, check_metadata, differences
from serving.registry.progress import NoProgress, Progress
from serving.registry.store import JsonStore

MiB = 1024 * 1024
DEFAULT_TRANSFER = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB,
                                  max_concurrency=8)


def make_s3_client(settings: FetchSettings | None = None) -> Any:
    """An S3 client whose connection pool fits the fetch's concurrency (botocore's default of
    10 would make urllib3 open and discard connections), with standard retries."""
    concurrency = (settings or FetchSettings()).concurrency
    return boto3.client("s3", config=Config(max_pool_connections=max(10, concurrency + 2),
                                            retries={"mode": "standard", "max_attempts": 5},
                                            tcp_keepalive=True))


@dataclass(frozen=True)
class Download:
    """The outcome of download(): the version record and what moved."""

    manifest: dict[str, Any]
    report: FetchReport


@dataclass(frozen=True)
class Registration:
    """The outcome of register(): the version record and whether this call created it."""

    manifest: dict[str, Any]
    created: bool


@dataclass(frozen=True)
class Promotion:
    """The outcome of promote(): the stage pointer, whether it moved, and the audit key."""

    pointer: dict[str, Any]
    changed: bool
    audit_key: str | None


class ModelRegistry:
    """An S3-backed model registry under s3://bucket/prefix (layout: serving.registry.layout)."""

    def __init__(self, bucket: str, prefix: str = "registry/", s3_client: Any = None, *,
                 sts_client: Any = None, transfer_config: TransferConfig | None = None,
                 identity: str | None = None, clock: Callable[[], datetime] | None = None,
                 fetch_settings: FetchSettings | None = None):
        if not bucket:
            raise RegistryError("no registry bucket given")
        self.layout = Layout(bucket, prefix)
        self.fetch_settings = fetch_settings or FetchSettings()
        self.s3 = s3_client or make_s3_client(self.fetch_settings)
        self.store = JsonStore(self.s3, bucket)
        self.transfer_config = transfer_config or DEFAULT_TRANSFER
        self._sts = sts_client
        self._identity = identity
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def identity(self) -> str:
        """Caller ARN from STS (or the local user), looked up once and only when writing."""
        if self._identity is None:
            self._identity = caller_identity(self._sts or boto3.client("sts"))
        return self._identity

    # -- reading -------------------------------------------------------------------------

    def models(self) -> list[str]:
        return self.store.subdirectories(self.layout.models_prefix)

    def versions(self, name: str) -> list[dict[str, Any]]:
        """Every registered version record of a model, oldest first. Half-uploaded ones
        (no manifest yet) are invisible."""
        check_name("model", name)
        records = []
        for version in self.store.subdirectories(self.layout.model_prefix(name)):
            if version == "stages":
                continue
            found = self.store.read(self.layout.manifest_key(name, version))
            if found:
                records.append(found[0])
        if not records:
            self._unknown_model(name)
        return sorted(records, key=lambda r: (r["registeredAt"], r["version"]))

    def stages(self, name: str) -> dict[str, dict[str, Any]]:
        """Stage pointers of a model that exist: {stage: pointer}."""
        check_name("model", name)
        found = {stage: self.store.read(self.layout.stage_key(name, stage)) for stage in STAGES}
        return {stage: doc[0] for stage, doc in found.items() if doc}

    def get(self, name: str, stage: str = "production", version: str | None = None) -> dict[str, Any]:
        """The version record for an explicit version, else for what the stage points at."""
        check_name("model", name)
        if version is None:
            check_stage(stage)
            pointer = self.store.read(self.layout.stage_key(name, stage))
            if pointer is None:
                self.versions(name)  # raises UnknownModel if there is no such model at all
                raise UnknownVersion(f"model {name!r} has no version in {stage}; promote one with "
                                     f"`llmops registry promote {name} VERSION --stage {stage}`")
            version = pointer[0]["version"]
        return self._manifest(name, version)

    def download(self, name: str, dest: Path | str, version: str | None = None, stage: str = "production",
                 progress: Progress | None = None) -> dict[str, Any]:
        """Download a version (or a stage's version) into dest, every file checksum-verified."""
        return self.fetch(name, dest, version=version, stage=stage, progress=progress).manifest

    def fetch(self, name: str, dest: Path | str, version: str | None = None, stage: str = "production",
              progress: Progress | None = None, manifest: dict[str, Any] | None = None) -> Download:
        """download(), also saying how many bytes moved (a resumed or repeated fetch moves fewer)."""
        fetch.check_dest(Path(dest))
        manifest = manifest or self.get(name, stage=stage, version=version)
        report = transfer.download(self.s3, self.layout, manifest, Path(dest), self.fetch_settings,
                                   progress or NoProgress())
        return Download(manifest, report)

    # -- writing -------------------------------------------------------------------------

    def register(self, name: str, version: str, source: str | Path, metadata: dict[str, Any] | None = None,
                 progress: Progress | None = None) -> Registration:
        """Upload a local directory (or copy an s3:// prefix) as name/version.

        Same content again is a no-op; different content is a VersionConflict and changes nothing."""
        check_name("model", name)
        check_name("version", version)
        metadata = check_metadata(metadata)
        progress = progress or NoProgress()
        source_text = str(source)
        files = (transfer.hash_s3(self.s3, source_text, progress) if source_text.startswith("s3://")
                 else transfer.hash_local(Path(source), progress))
        candidate = build_manifest(
            name=name, version=version, uri=self.layout.files_uri(name, version),
            files=[f.entry for f in files], metadata=metadata,
            registered_by=self.identity, registered_at=iso_timestamp(self._clock()))

        existing = self.store.read(self.layout.manifest_key(name, version))
        if existing:
            return self._same_or_conflict(existing[0], candidate)
        skip = transfer.already_uploaded(self.s3, self.layout, name, version, files)
        transfer.upload(self.s3, self.layout, name, version, files, skip, self.transfer_config, progress)
        transfer.verify_uploaded(self.s3, self.layout, name, version, files)
        if self.store.create(self.layout.manifest_key(name, version), candidate):
            return Registration(candidate, created=True)
        raced = self.store.read(self.layout.manifest_key(name, version))
        if raced is None:  # created and deleted under us: say so rather than guess
            raise VersionConflict(f"{name} {version}: the manifest changed during registration; retry")
        return self._same_or_conflict(raced[0], candidate)

    def promote(self, name: str, version: str, stage: str) -> Promotion:
        """Point stage at version with a compare-and-swap on the stage pointer, then audit it.

        No blind retry: if another promotion moved the pointer between our read and our
        write, we raise PromotionConflict naming it, unless it already points at our version."""
        check_name("model", name)
        check_name("version", version)
        check_stage(stage)
        manifest = self._manifest(name, version)
        key = self.layout.stage_key(name, stage)
        current = self.store.read(key)
        if current and current[0]["version"] == version:
            return Promotion(current[0], changed=False, audit_key=None)
        now = self._clock()
        pointer = {
            "name": name, "stage": stage, "version": version, "revision": manifest["revision"],
            "uri": manifest["uri"], "promotedBy": self.identity, "promotedAt": iso_timestamp(now),
            "previousVersion": current[0]["version"] if current else None,
        }
        swapped = (self.store.replace(key, pointer, etag=current[1]) if current
                   else self.store.create(key, pointer))
        if not swapped:
            return self._lost_promotion(name, version, stage, pointer["previousVersion"])
        audit_key = self.layout.audit_key(name, now, stage, version)
        try:
            written = self.store.create(audit_key, {**pointer, "event": "promote"})
        except RegistryError as exc:
            raise RegistryError(f"{stage} of {name} now points at {version}, but its audit record "
                                f"{audit_key} could not be written: {exc}") from exc
        if not written:
            raise RegistryError(f"{stage} of {name} now points at {version}, but the audit record "
                                f"{audit_key} already existed and was not overwritten")
        return Promotion(pointer, changed=True, audit_key=audit_key)

    # -- helpers -------------------------------------------------------------------------

    def _manifest(self, name: str, version: str) -> dict[str, Any]:
        check_name("version", version)
        found = self.store.read(self.layout.manifest_key(name, version))
        if found is None:
            known = [r["version"] for r in self.versions(name)]  # UnknownModel if none
            raise UnknownVersion(f"model {name!r} has no version {version!r}; "
                                 f"registered versions: {', '.join(known)}")
        return found[0]

    def _unknown_model(self, name: str) -> None:
        known = self.models()
        hint = f"registered models: {', '.join(known)}" if known else "the registry is empty"
        raise UnknownModel(f"unknown model {name!r} in s3://{self.layout.bucket}/{self.layout.prefix} "
                           f"({hint})")

    @staticmethod
    def _same_or_conflict(existing: dict[str, Any], candidate: dict[str, Any]) -> Registration:
        diff = differences(existing, candidate)
        if not diff:
            return Registration(existing, created=False)
        raise VersionConflict(
            f"{candidate['name']} {candidate['version']} is already registered with different content "
            f"(registered by {existing.get('registeredBy')} at {existing.get('registeredAt')}); "
            f"nothing was changed. Register it under a new version. Differences: " + "; ".join(diff))

    def _lost_promotion(self, name: str, version: str, stage: str, expected: str | None) -> Promotion:
        now = self.store.read(self.layout.stage_key(name, stage))
        if now and now[0]["version"] == version:  # a concurrent promotion did exactly what we wanted
            return Promotion(now[0], changed=False, audit_key=None)
        winner = (f"it now points at {now[0]['version']} (promoted by {now[0].get('promotedBy')} at "
                  f"{now[0].get('promotedAt')})") if now else "it was deleted"
        raise PromotionConflict(
            f"{stage} of {name} changed while promoting {version} (expected "
            f"{expected or 'no version'}): {winner}. Nothing was written; check "
            f"`llmops registry show {name} --stage {stage}` and promote again if {version} "
            "should still replace it")
