"""`llmops:storage`: the model bucket's retention and the registry's place in it."""

from __future__ import annotations

from pydantic import Field, field_validator

from vocabulary.config.base import Section


class StorageConfig(Section):
    """Model storage. Versions that are replaced stay recoverable for `noncurrentVersionDays`."""

    registry_prefix: str = "registry/"
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650)
    abort_multipart_days: int = Field(default=7, ge=1, le=30)
    access_log_days: int = Field(default=365, ge=1, le=3650)

    @field_validator("registry_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value.endswith("/") or value.startswith("/") or "//" in value:
            raise ValueError(f"{value!r} must be a relative key prefix ending in '/', e.g. registry/")
        return value
