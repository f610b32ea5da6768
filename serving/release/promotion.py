"""Promote a canary's registry version and work out the stack change that completes it.

The registry write is the one from serving/registry (compare-and-swap on the stage pointer,
an audit record); this module only decides *which* version the canary runs and what the
stack file must say afterwards: no canary block, and a stable track that serves the
promoted version (unchanged when it already follows the promoted stage, pinned otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving.registry import ModelRegistry, Promotion
from serving.release import stackedit
from serving.release.errors import ReleaseError
from serving.release.stack import Stack


@dataclass(frozen=True)
class CanaryPromotion:
    record: dict[str, Any]        # the registry's version record of the canary
    promotion: Promotion
    new_text: str                 # the stack file after the change
    stable_follows_stage: bool    # True: the stable track picks the version up from the stage


def canary_record(registry: ModelRegistry, stack: Stack, model: str) -> dict[str, Any]:
    """The version record the model's canary track is configured to serve."""
    config = stack.model(model)
    if config.canary is None:
        raise ReleaseError(f"{stack.source}: model {model!r} has no canary; nothing to promote")
    ref = config.canary.registry
    record = (registry.get(model, stage=ref.stage) if ref.stage
              else registry.get(model, version=ref.version))
    if ref.revision and record.get("revision") != ref.revision:
        raise ReleaseError(f"{stack.source} pins the canary of {model!r} to revision {ref.revision}, "
                           f"but the registry's {record['version']} has revision {record.get('revision')}")
    return record


def stack_change(stack: Stack, model: str, record: dict[str, Any], stage: str) -> tuple[str, bool]:
    """The stack text with the canary promoted to stable, checked against the schema."""
    text = stack.path.read_text()
    new_text = stackedit.remove_canary(text, stack.source, model)
    stable = stack.model(model).registry
    follows = stable is not None and stable.stage == stage
    if not follows:
        new_text = stackedit.pin_registry(new_text, stack.source, model, record["version"],
                                          record["revision"])
    stackedit.validate(new_text, stack.name)
    return new_text, follows


def promote_canary(registry: ModelRegistry, stack: Stack, model: str, stage: str) -> CanaryPromotion:
    """Everything is checked (record, stack edit, schema) before the one registry write."""
    record = canary_record(registry, stack, model)
    new_text, follows = stack_change(stack, model, record, stage)
    promotion = registry.promote(model, record["version"], stage)
    return CanaryPromotion(record, promotion, new_text, follows)
