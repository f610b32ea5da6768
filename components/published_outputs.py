"""Stack outputs mirrored to SSM Parameter Store, for consumers that don't speak Pulumi
(CI jobs, Lambda functions, other teams' Terraform): /<project>/<env>/<outputName>."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pulumi
import pulumi_aws as aws


def parameter_prefix(project: str, environment: str) -> str:
    return f"/{project}/{environment}/"


def parameter_name(project: str, environment: str, key: str) -> str:
    return parameter_prefix(project, environment) + key


def _as_text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


class PublishedOutputs(pulumi.ComponentResource):
    """One String parameter per published output (never secrets: those stay in Pulumi)."""

    def __init__(self, name: str, project: str, environment: str,
                 outputs: Mapping[str, pulumi.Input], opts: pulumi.ResourceOptions | None = None):
        super().__init__("llmops:outputs:PublishedOutputs", name, None, opts)
        for key, value in outputs.items():
            aws.ssm.Parameter(
                f"{name}-{key}", name=parameter_name(project, environment, key), type="String",
                value=pulumi.Output.from_input(value).apply(_as_text),
                description=f"llmops stack output {key} ({environment})",
                opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})
