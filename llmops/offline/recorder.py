"""Record every resource the program registers: type, name, parent, inputs, stack outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
ASSET_SIGS = {"c44067f5952c0a294b673a41bacd8c17", "0def7320c3a5731c473e5ecbe6d01bc7"}
SPECIAL_SIG = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
COMPUTED = "<computed>"


@dataclass(frozen=True)
class RecordedResource:
    """One registered resource as the provider would receive it."""

    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    secret_paths: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The plan JSON entry; secret values are masked."""
        return {"type": self.type, "name": self.name, "urn": self.urn, "parent": self.parent,
                "custom": self.custom, "dependencies": list(self.dependencies),
                "inputs": mask(self.inputs, self.secret_paths)}


def decode(value: Any, path: str = "", secrets: list[str] | None = None) -> Any:
    """Turn the wire form (signature objects, unknowns) back into plain values.

    Secrets are unwrapped (their paths appended to `secrets`), resource references become
    their URN, unknowns become the marker `<computed>`, integral floats become ints.
    """
    if isinstance(value, dict):
        sig = value.get(SPECIAL_SIG)
        if sig == SECRET_SIG:
            if secrets is not None:
                secrets.append(path)
            return decode(value.get("value"), path, secrets)
        if sig == RESOURCE_SIG:
            return value.get("urn")
        if sig in ASSET_SIGS:
            return {k: v for k, v in value.items() if k != SPECIAL_SIG}
        return {k: decode(v, f"{path}.{k}" if path else k, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v, f"{path}[{i}]", secrets) for i, v in enumerate(value)]
    if value == UNKNOWN:
        return COMPUTED
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def mask(value: Any, secret_paths: tuple[str, ...], path: str = "") -> Any:
    if path and path in secret_paths:
        return "[secret]"
    if isinstance(value, dict):
        return {k: mask(v, secret_paths, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secret_paths, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


class RecordingMonitor(MockMonitor):
    """A mock monitor that keeps what the engine would have been asked to create."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.outputs: dict[str, Any] = {}
        self.secret_outputs: tuple[str, ...] = ()
        self._stack_urn: str | None = None

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self._stack_urn = response.urn
            return response
        secrets: list[str] = []
        inputs = decode(json_format.MessageToDict(request.object), "", secrets)
        self.recorded.append(RecordedResource(
            urn=response.urn, type=request.type, name=request.name,
            parent=request.parent if request.parent and request.parent != self._stack_urn
            else None,
            custom=request.custom, inputs=inputs, secret_paths=tuple(secrets),
            dependencies=tuple(sorted(request.dependencies))))
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn == self._stack_urn:
            secrets: list[str] = []
            self.outputs = decode(json_format.MessageToDict(request.outputs), "", secrets)
            self.secret_outputs = tuple(secrets)
        return super().RegisterResourceOutputs(request)
