"""Registry errors: every one is an LlmopsError, so the CLI prints it cleanly and exits 1.

Each message names what was wrong (model, version, stage, file) and what the user can do."""

from __future__ import annotations

from vocabulary.errors import LlmopsError


class RegistryError(LlmopsError):
    """Base of every model-registry error; the registry is left as it was when raised."""


class InvalidName(RegistryError):
    """A model, version or stage name outside the allowed set."""


class SourceNotFound(RegistryError):
    """The local directory or S3 prefix to register does not exist or holds no files."""


class UnknownModel(RegistryError):
    """No version of this model is registered."""


class UnknownVersion(RegistryError):
    """The model exists but not this version (or no version holds the asked-for stage)."""


class VersionConflict(RegistryError):
    """The version is already registered (or partly uploaded) with different content."""


class PromotionConflict(RegistryError):
    """Another promotion changed the stage pointer between our read and our write."""


class ChecksumMismatch(RegistryError):
    """A downloaded file does not match the size or SHA-256 recorded in the manifest."""
