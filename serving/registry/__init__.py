"""The S3 model registry: versioned weights with checksummed manifests, stage pointers
updated by compare-and-swap, and an immutable promotion audit log. See docs/registry.md."""

from serving.registry.core import ModelRegistry, Promotion, Registration
from serving.registry.errors import (
    ChecksumMismatch,
    InvalidName,
    PromotionConflict,
    RegistryError,
    SourceNotFound,
    UnknownModel,
    UnknownVersion,
    VersionConflict,
)
from serving.registry.layout import NAME_RULE, STAGES, Layout
from serving.registry.progress import NoProgress, Progress, TextProgress

__all__ = [
    "NAME_RULE", "STAGES", "ChecksumMismatch", "InvalidName", "Layout", "ModelRegistry", "NoProgress",
    "Progress", "Promotion", "PromotionConflict", "Registration", "RegistryError", "SourceNotFound",
    "TextProgress", "UnknownModel", "UnknownVersion", "VersionConflict",
]
