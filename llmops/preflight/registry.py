"""Every model version the workloads stack will resolve at deploy time exists in the registry:
each `stage:` has a version promoted to it, each pinned version is registered with the
pinned revision. Read through serving/registry, the code that wrote it."""

from __future__ import annotations

from collections.abc import Iterator

from llmops.preflight.context import Context
from llmops.preflight.published import missing_outputs_fix
from llmops.preflight.result import Check, failed, passed
from serving.registry import ModelRegistry, RegistryError
from vocabulary.config import PlatformConfig
from vocabulary.config.serving import RegistryRef


def references(config: PlatformConfig) -> Iterator[tuple[str, str, RegistryRef]]:
    """(model, track, reference) of every version a model deployment serves."""
    for model in config.models:
        if model.registry is not None:
            yield model.name, "stable", model.registry
        if model.canary is not None:
            yield model.name, "canary", model.canary.registry
        if model.blue_green is not None:
            yield model.name, "blue", model.blue_green.blue
            yield model.name, "green", model.blue_green.green


def registry_versions(context: Context) -> list[Check]:
    outputs = context.platform_outputs
    refs = list(references(context.config))
    if not refs:
        return []
    if "modelBucket" not in outputs:
        return [failed("registry", "the platform published no modelBucket", missing_outputs_fix(context))]
    registry = ModelRegistry(outputs["modelBucket"], outputs.get("registryPrefix", "registry/"),
                             s3_client=context.client("s3"), identity="preflight (read-only)")
    checks = []
    for name, track, ref in refs:
        label = f"model {name} ({track})"
        wanted = f"stage {ref.stage}" if ref.stage else f"version {ref.version}"
        try:
            record = registry.get(name, stage=ref.stage or "production", version=ref.version)
        except RegistryError as exc:
            fix = (f"`llmops registry promote {name} VERSION --stage {ref.stage}`" if ref.stage else
                   f"`llmops registry register {name} {ref.version} DIR` (or pin a registered version)")
            checks.append(failed(label, f"{wanted}: {exc}", f"run {fix}"))
            continue
        if ref.revision and record.get("revision") != ref.revision:
            checks.append(failed(label, f"{wanted} has revision {record.get('revision')}, the config "
                                 f"pins {ref.revision}", "pin the registered revision in "
                                 f"stacks/Pulumi.{context.stack}.yaml"))
            continue
        checks.append(passed(label, f"{wanted} -> {record['version']} (revision {record.get('revision')})"))
    return checks
