"""`run_plan`: the real program under Pulumi mocks, every resource recorded.

This is the harness behind `llmops plan` and behind the tests: one code path for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings as runtime_settings

from llmops.offline.mocks import OfflineMocks
from llmops.offline.recorder import RecordedInvoke, RecordedResource, RecordingMonitor, mask
from llmops.offline.registry_file import load_offline_registry
from llmops.offline.secrets import SecretProblems, SecretStatus, secret_statuses
from vocabulary.config import PRODUCT, PlatformConfig, parse_platform_config, secret_config_keys
from vocabulary.contract import PLATFORM_PROJECT, WORKLOADS_PROJECT, platform_stack_name
from vocabulary.stackfile import (
    OFFLINE_SECRET,
    STACKS_DIR,
    StackConfig,
    read_stack_config,
    read_workloads_config,
)

#: The organization the offline engine reports (as a self-managed backend does).
OFFLINE_ORGANIZATION = "organization"

#: The environment's two stacks, in deploy order: (label, Pulumi project).
STACKS = (("platform", PLATFORM_PROJECT), ("workloads", WORKLOADS_PROJECT))


@dataclass
class Plan:
    """What `pulumi up` would create for one environment (both stacks), as recorded offline."""

    stack: str
    config: PlatformConfig
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: tuple[str, ...] = ()
    #: each stack's own outputs ({"platform": {...}, "workloads": {...}})
    stack_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: each stack's secret output names ({"platform": ("kubeconfig",), ...})
    stack_secret_outputs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    invokes: list[RecordedInvoke] = field(default_factory=list)
    #: the secrets the stack reads; offline every one is a placeholder, set or not
    secrets: list[SecretStatus] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]

    def one(self, type_token: str, name: str | None = None) -> RecordedResource:
        """The single resource of a type (and name): fails loudly when there is not exactly one."""
        found = [r for r in self.of_type(type_token) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_token)]
            raise LookupError(f"expected one {type_token} named {name!r}, found {names}")
        return found[0]

    def children_of(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def in_stack(self, label: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.stack == label]

    @property
    def custom_resources(self) -> list[RecordedResource]:
        return [r for r in self.resources if r.custom]

    def counts_by_type(self) -> Counter[str]:
        return Counter(r.type for r in self.resources)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "resources": [r.to_json() for r in self.resources],
                "outputs": {label: mask(values, self.secret_outputs)
                            for label, values in self.stack_outputs.items()},
                "invokes": [{"stack": i.stack, "token": i.token, "args": i.args}
                            for i in self.invokes]}

    def write_json(self, path: Path) -> None:
        """Into an existing directory (the CLI checks it before planning)."""
        path.write_text(json.dumps(self.to_json(), indent=2, sort_keys=False) + "\n")


def run_plan(stack: str, overrides: dict[str, Any] | None = None,
             stack_config: StackConfig | None = None, stacks_dir: Path = STACKS_DIR) -> Plan:
    """Validate the environment's config, then run both stacks' programs under mocks.

    The platform program runs first; its outputs answer the workloads program's
    `StackReference`, as the platform stack's state does in a real deploy. `overrides` are
    dotted config paths ({"llmops:network.azCount": 3}); tests use them to plan a shipped
    stack with one setting changed. Raises `ConfigError` before anything runs.
    """
    stack_config = stack_config or read_stack_config(stack, stacks_dir)
    # Secrets live encrypted in the workloads stack's own config, not in the environment
    # file; offline, stand in for the ones that are absent so the rest can be planned.
    workloads_file = read_workloads_config(stack, stacks_dir)
    secret_problems = SecretProblems(stack_config, workloads_file)
    stack_config = stack_config.with_overrides(secret_problems.workloads_values)
    stack_config.secret_keys.update(workloads_file.secret_keys)
    stack_config = stack_config.with_overrides(
        {key: OFFLINE_SECRET for key in secret_config_keys() if key not in stack_config.values})
    stack_config.secret_keys.update(secret_config_keys())
    if overrides:
        stack_config = stack_config.with_overrides(overrides)
    with secret_problems.reported_with_config_errors():
        config = parse_platform_config(stack_config.values, project=PRODUCT, stack=stack,
                                       source=stack_config.source)
    secret_problems.check(config)
    missing = [k for k in config.monitoring_secret_keys() if k not in stack_config.values]
    stack_config = stack_config.with_overrides({key: OFFLINE_SECRET for key in missing})
    stack_config.secret_keys.update(config.monitoring_secret_keys())

    from stacks.platform_stack import main as platform_main  # what `pulumi up` runs
    from stacks.workloads_stack import main as workloads_main

    registry, registry_source = load_offline_registry(stacks_dir, needed=bool(config.models))
    runtime = stack_config.runtime_values()
    platform = record(platform_main, stack=stack, project=PLATFORM_PROJECT, label="platform",
                      region=config.region, config=runtime, secret_keys=stack_config.secret_keys,
                      mocks=OfflineMocks(region=config.region, registry=registry,
                                         registry_source=registry_source))
    workloads_mocks = OfflineMocks(region=config.region, registry=registry,
                                   registry_source=registry_source)
    workloads_mocks.stack_references[platform_stack_name(config, OFFLINE_ORGANIZATION)] = (
        platform.outputs, platform.secret_outputs)
    workloads = record(workloads_main, stack=stack, project=WORKLOADS_PROJECT, label="workloads",
                       region=config.region, config=runtime, secret_keys=stack_config.secret_keys,
                       mocks=workloads_mocks)
    recordings = {"platform": platform, "workloads": workloads}
    return Plan(stack=stack, config=config,
                resources=sorted(platform.resources + workloads.resources, key=lambda r: r.urn),
                outputs={**platform.outputs, **workloads.outputs},
                secret_outputs=platform.secret_outputs + workloads.secret_outputs,
                stack_outputs={label: r.outputs for label, r in recordings.items()},
                stack_secret_outputs={label: r.secret_outputs for label, r in recordings.items()},
                secrets=secret_statuses(config, workloads_file),
                invokes=platform.invokes + workloads.invokes)


def _settle(loop: asyncio.AbstractEventLoop) -> None:
    """After the program failed: cancel the registrations still pending and retrieve every
    task's exception, so asyncio does not log "Task was destroyed but it is pending!" or
    "exception was never retrieved" tracebacks after the one error the user should read."""
    for task in asyncio.all_tasks(loop):
        if task.done() and not task.cancelled():
            task.exception()  # marks it retrieved
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks and not loop.is_running():
        # best effort: the program's own error is what propagates
        with contextlib.suppress(BaseException):
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


@dataclass
class Recording:
    """Everything a program registered under mocks."""

    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: tuple[str, ...]
    invokes: list[RecordedInvoke] = field(default_factory=list)

    def of_type(self, type_token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_token]


def record(program: Callable[[], Any], *, stack: str = "test", project: str = PLATFORM_PROJECT,
           label: str = "", region: str = "us-west-2", config: dict[str, str] | None = None,
           secret_keys: Iterable[str] = (), mocks: OfflineMocks | None = None) -> Recording:
    """Run `program` under offline mocks and return what it registered.

    `run_plan` uses it for whole stacks; component tests use it for one component.
    """
    mocks = mocks or OfflineMocks(region=region)
    monitor = RecordingMonitor(mocks, stack_label=label)
    # Pulumi's runtime drives the main thread's event loop; asyncio.run() elsewhere in the
    # process leaves none set, so give every recording a fresh one.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runtime_settings.ROOT.set(None)  # no stack transformation leaks from a previous run
    pulumi.runtime.set_all_config(dict(config or {}), secret_keys=sorted(secret_keys))
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=False, monitor=monitor,
                             organization=OFFLINE_ORGANIZATION)

    @pulumi.runtime.test
    def run():
        program()
        # Under mocks the root stack registered its (then empty) outputs at set_mocks time;
        # register the exports now so the monitor records them, secrets marked.
        root = runtime_settings.get_root_resource()
        root.register_outputs(dict(root.outputs))

    try:
        run()
    except KeyboardInterrupt:
        raise  # leave at once; the CLI exits without tearing the runtime down
    except BaseException:
        _settle(loop)
        raise
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    # Registration order varies from run to run (async); URN order makes plans diffable.
    resources = sorted(monitor.recorded, key=lambda r: r.urn)
    return Recording(resources, dict(monitor.outputs), monitor.secret_outputs, monitor.invokes)
