"""The storage layout contract: the only place that knows S3 key shapes.

The infrastructure reads these keys with `aws.s3.get_object`, so they must not change:

    {prefix}models/{name}/{version}/files/<relative path>   weights
    {prefix}models/{name}/{version}/manifest.json           version record
    {prefix}models/{name}/stages/{stage}.json               stage pointer
    {prefix}audit/{name}/<UTC timestamp>-<stage>-<version>.json   one per promotion
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from serving.registry.errors import InvalidName

#: Stages a version can be promoted to; the stage pointer keys are named after them.
STAGES = ("staging", "production")

#: Model and version names: a letter or digit, then letters, digits, '.', '_' or '-'; 1-128 chars.
#: One S3 key segment, safe in a URL and a shell, never '.' or '..'.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
NAME_RULE = "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit"

#: Version names that would collide with a sibling key under models/<name>/.
RESERVED_VERSIONS = frozenset({"stages"})


def check_name(kind: str, value: str) -> str:
    """Return value if it is a safe model/version name, else raise InvalidName saying the rule."""
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise InvalidName(f"invalid {kind} name {value!r}: use {NAME_RULE}")
    if kind == "version" and value in RESERVED_VERSIONS:
        raise InvalidName(f"invalid version name {value!r}: it is reserved for the stage pointers")
    return value


def check_stage(stage: str) -> str:
    """Return stage if promotion to it is allowed, else raise InvalidName listing the stages."""
    if stage not in STAGES:
        raise InvalidName(f"unknown stage {stage!r}: allowed stages are {', '.join(STAGES)}")
    return stage


def check_relative_path(path: str) -> str:
    """A manifest file path must stay inside the version's files/ prefix and a download dir."""
    parts = path.split("/") if isinstance(path, str) else [""]
    if not path or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise InvalidName(f"unsafe file path {path!r} in model files: paths must be relative, "
                          "without '.' or '..' segments")
    return path


def normalise_prefix(prefix: str) -> str:
    """'' stays ''; anything else gets exactly one trailing '/' and no leading '/'."""
    prefix = (prefix or "").strip("/")
    return f"{prefix}/" if prefix else ""


@dataclass(frozen=True)
class Layout:
    """Key builder for one registry (bucket + prefix)."""

    bucket: str
    prefix: str = "registry/"

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", normalise_prefix(self.prefix))

    @property
    def models_prefix(self) -> str:
        return f"{self.prefix}models/"

    def model_prefix(self, name: str) -> str:
        return f"{self.models_prefix}{name}/"

    def version_prefix(self, name: str, version: str) -> str:
        return f"{self.model_prefix(name)}{version}/"

    def files_prefix(self, name: str, version: str) -> str:
        return f"{self.version_prefix(name, version)}files/"

    def file_key(self, name: str, version: str, path: str) -> str:
        return f"{self.files_prefix(name, version)}{path}"

    def files_uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self.files_prefix(name, version)}"

    def manifest_key(self, name: str, version: str) -> str:
        return f"{self.version_prefix(name, version)}manifest.json"

    def stage_key(self, name: str, stage: str) -> str:
        return f"{self.model_prefix(name)}stages/{stage}.json"

    def audit_key(self, name: str, when: datetime, stage: str, version: str) -> str:
        return f"{self.prefix}audit/{name}/{audit_timestamp(when)}-{stage}-{version}.json"


def audit_timestamp(when: datetime) -> str:
    """Compact, lexically sortable UTC timestamp for audit keys: 20250131T120000.123456Z."""
    return when.strftime("%Y%m%dT%H%M%S.%fZ")


def iso_timestamp(when: datetime) -> str:
    """ISO 8601 UTC with a Z, as written into records: 2025-01-31T12:00:00.123456Z."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """'s3://bucket/some/prefix' -> ('bucket', 'some/prefix/'); the prefix is a directory."""
    rest = uri[len("s3://"):] if uri.startswith("s3://") else ""
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InvalidName(f"invalid S3 source {uri!r}: expected s3://bucket/prefix/")
    return bucket, normalise_prefix(key)
