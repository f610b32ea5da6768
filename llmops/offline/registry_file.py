"""The offline registry (`offline-registry.yaml` beside the stack files): what the plan's
mocks answer when the program reads a model's stage pointer or manifest from S3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vocabulary.errors import LlmopsError
from vocabulary.stackfile import display_path
from vocabulary.strict_yaml import duplicate_keys, read_utf8

FILE_NAME = "offline-registry.yaml"


def load_offline_registry(stacks_dir: Path, needed: bool) -> tuple[dict[str, Any], str]:
    """The registry entries and how messages name their file.

    `needed` is true when the stack serves models: then a missing file is an error of its
    own, not a "model not in the registry" later on.
    """
    path = stacks_dir / FILE_NAME
    source = display_path(path)
    if not path.exists():
        if needed:
            raise LlmopsError(
                f"{source} does not exist: the offline plan answers the registry reads of "
                f"llmops:models from it; put one beside the Pulumi.<stack>.yaml files in "
                f"{display_path(stacks_dir)} (see stacks/{FILE_NAME} for its layout)")
        return {}, source
    text = read_utf8(path, source)
    try:
        registry = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LlmopsError(f"{source} is not valid YAML: {exc}") from None
    repeated = duplicate_keys(text)
    if repeated:
        raise LlmopsError(f"{source}: " + "; ".join(repeated))
    if not isinstance(registry, dict):
        raise LlmopsError(f"{source} must map model names to their stages and versions")
    return registry, source
