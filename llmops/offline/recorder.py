"""Record every resource the program registers (type, name, parent, inputs, the options that
decide deploy behaviour), every invoke it makes, and the stack outputs."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
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
    #: resource options the engine acts on: customTimeouts, ignoreChanges, protect, provider
    options: dict[str, Any] = field(default_factory=dict)
    #: which of the environment's stacks registers it ("platform" or "workloads")
    stack: str = ""
    #: what the (mock) provider answered: ids, names, ARNs, URLs other resources refer to
    outputs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: inputs the provider SDK wraps as secret whatever their value (its schema marks them
    #: sensitive, e.g. aws.ssm.Parameter `value`): a secret mark there says nothing about
    #: whether the program's data was secret
    schema_secrets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The plan JSON entry; secret values are masked."""
        return {"stack": self.stack, "type": self.type, "name": self.name, "urn": self.urn,
                "parent": self.parent, "custom": self.custom,
                "dependencies": list(self.dependencies), "options": self.options,
                "inputs": mask(self.inputs, self.secret_paths)}


@dataclass(frozen=True)
class RecordedInvoke:
    """A data-source read the program makes at deploy time (e.g. the registry's stage pointer)."""

    token: str
    args: dict[str, Any]
    stack: str = ""


def resource_options(request) -> dict[str, Any]:
    """The options of a RegisterResourceRequest that change what the engine does."""
    options: dict[str, Any] = {}
    timeouts = {k: v for k in ("create", "update", "delete")
                if (v := getattr(request.customTimeouts, k, ""))}
    if timeouts:
        options["customTimeouts"] = timeouts
    if request.ignoreChanges:
        options["ignoreChanges"] = list(request.ignoreChanges)
    if request.protect:
        options["protect"] = True
    if request.deleteBeforeReplace:
        options["deleteBeforeReplace"] = True
    if request.provider:
        options["provider"] = request.provider.rsplit("::", 1)[0]  # the provider's URN
    return options


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


SECRET_MARK = "[secret]"


def mask(value: Any, secret_paths: tuple[str, ...], path: str = "", keep_shape: bool = False) -> Any:
    """`value` with every secret path replaced by "[secret]". With `keep_shape`, a secret
    mapping or list keeps its keys and length and only its leaves are replaced, so a masked
    Kubernetes Secret is still a valid manifest (`stringData` stays an object)."""
    if path and path in secret_paths:
        return _redact(value) if keep_shape else SECRET_MARK
    if isinstance(value, dict):
        return {k: mask(v, secret_paths, f"{path}.{k}" if path else k, keep_shape)
                for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, secret_paths, f"{path}[{i}]", keep_shape) for i, v in enumerate(value)]
    return value


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return None if value is None else SECRET_MARK


class RecordingMonitor(MockMonitor):
    """A mock monitor that keeps what the engine would have been asked to create."""

    def __init__(self, mocks, stack_label: str = ""):
        super().__init__(mocks)
        self.stack_label = stack_label
        self.recorded: list[RecordedResource] = []
        self.invokes: list[RecordedInvoke] = []
        self.outputs: dict[str, Any] = {}
        self.secret_outputs: tuple[str, ...] = ()
        self._stack_urn: str | None = None

    def RegisterResource(self, request):
        with _thread_loop_closed_after():
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
            dependencies=tuple(sorted(request.dependencies)), options=resource_options(request),
            stack=self.stack_label, outputs=decode(json_format.MessageToDict(response.object)),
            schema_secrets=tuple(request.additionalSecretOutputs)))
        return response

    def Invoke(self, request):
        args = decode(json_format.MessageToDict(request.args))
        self.invokes.append(RecordedInvoke(request.tok, args, self.stack_label))
        with _thread_loop_closed_after():
            return super().Invoke(request)

    def ReadResource(self, request):
        # a read of existing state (a StackReference) is a deploy-time read like an invoke
        self.invokes.append(RecordedInvoke(request.type, {"name": request.name, "id": request.id},
                                           self.stack_label))
        with _thread_loop_closed_after():
            return super().ReadResource(request)

    def RegisterResourceOutputs(self, request):
        if request.urn == self._stack_urn:
            secrets: list[str] = []
            self.outputs = decode(json_format.MessageToDict(request.outputs), "", secrets)
            self.secret_outputs = tuple(secrets)
        return super().RegisterResourceOutputs(request)


@contextlib.contextmanager
def _thread_loop_closed_after() -> Iterator[None]:
    """Pulumi's mock monitor answers in executor threads and gives each an event loop it
    never closes (Invoke, ReadResource, RegisterResource). Left to the garbage collector at
    interpreter exit, such a loop's close fails on its already-finalised socket and prints a
    traceback ("Exception ignored in BaseEventLoop.__del__"). Close the loop if this call
    created it."""
    try:
        asyncio.get_event_loop()
        had_loop = True
    except RuntimeError:  # a worker thread without a loop: Pulumi is about to make one
        had_loop = False
    try:
        yield
    finally:
        if not had_loop:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_event_loop()
                asyncio.set_event_loop(None)
                loop.close()
