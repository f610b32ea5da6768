"""What a plan publishes for consumers: each stack's outputs and the SSM parameters that
mirror them, with secrets masked by what the *data* is, not by how the provider SDK ships it.

Why SSM values all looked secret: pulumi_aws's `aws.ssm.Parameter` wraps `value` in
`Output.secret` whatever it holds (the provider schema marks it sensitive, as it may be a
SecureString), so every value reached the recorder in a secret envelope and was masked. The
recorder now keeps those schema-level marks apart (`RecordedResource.schema_secrets`); here a
String parameter's value is shown unless the stack output it mirrors is itself a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmops.offline.plan import Plan
from llmops.offline.recorder import SECRET_MARK, RecordedResource, mask
from vocabulary.contract import PLATFORM_PROJECT, WORKLOADS_PROJECT

SSM_PARAMETER = "aws:ssm/parameter:Parameter"
PROJECTS = {"platform": PLATFORM_PROJECT, "workloads": WORKLOADS_PROJECT}


@dataclass(frozen=True)
class PublishedParameter:
    name: str
    type: str
    stack: str
    #: the value as AWS will store it, or "[secret]"
    shown: Any

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "stack": self.stack, "value": self.shown}


def stack_outputs(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each stack's outputs, secret ones masked."""
    return {label: mask(values, plan.secret_outputs) for label, values in plan.stack_outputs.items()}


def _mirrored_output_is_secret(plan: Plan, resource: RecordedResource, name: str) -> bool:
    """Whether the stack output a parameter mirrors (/<project>/<env>/<stack>/<output>) is a secret;
    a parameter that mirrors no output is treated as one."""
    key = name.rsplit("/", 1)[-1]
    outputs = plan.stack_outputs.get(resource.stack, {})
    return key not in outputs or key in plan.secret_outputs


def is_secret_value(plan: Plan, resource: RecordedResource) -> bool:
    inputs = resource.inputs
    if inputs.get("type") == "SecureString":
        return True
    if "insecureValue" in resource.secret_paths or (
            "value" in resource.secret_paths and "value" not in resource.schema_secrets):
        return True  # the program's data was secret
    return _mirrored_output_is_secret(plan, resource, str(inputs.get("name", "")))


def published_parameters(plan: Plan) -> list[PublishedParameter]:
    """The SSM parameters both stacks write, by name."""
    parameters = []
    for resource in plan.of_type(SSM_PARAMETER):
        inputs = resource.inputs
        # String parameters carry their value as `insecureValue` (components/published_outputs.py)
        value = inputs.get("insecureValue", inputs.get("value"))
        shown = SECRET_MARK if is_secret_value(plan, resource) else value
        parameters.append(PublishedParameter(str(inputs.get("name")), str(inputs.get("type")),
                                             resource.stack, shown))
    return sorted(parameters, key=lambda p: p.name)
