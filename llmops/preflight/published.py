"""The platform stack's outputs the checks need, read from its SSM mirror (the contract
applications use; vocabulary/outputs_schema.py), so preflight needs no Pulumi CLI or state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vocabulary.outputs_schema import parameter_name

if TYPE_CHECKING:
    from llmops.preflight.context import Context

NEEDED = ("modelBucket", "registryPrefix", "platformRepositoryUrl")


def read_platform_outputs(context: Context) -> dict[str, str]:
    """output name -> value for each of NEEDED the platform published (absent ones missing)."""
    cfg = context.config
    names = {parameter_name(cfg.project, cfg.environment, "platform", o): o for o in NEEDED}
    found = context.client("ssm").get_parameters(Names=sorted(names))["Parameters"]
    return {names[p["Name"]]: p["Value"] for p in found}


def missing_outputs_fix(context: Context) -> str:
    return (f"run the platform `up` first (`pulumi up --stack {context.stack}` at the repository "
            "root): its outputs are published to SSM under "
            f"{parameter_name(context.config.project, context.config.environment, 'platform', '')}")
