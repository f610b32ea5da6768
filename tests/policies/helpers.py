"""Shared helpers of the policy tests: evaluate one policy, record real SDK resources,
mutate a recorded plan."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pulumi

from llmops.offline.plan import record
from llmops.offline.recorder import RecordedResource
from policies.runner import Violation, evaluate
from policies.settings import PackConfig

#: Every policy at its default level (mandatory) with its default settings.
DEFAULTS = PackConfig("tests", {})


def violations_of(policy: str, resources: Iterable[Any], config: PackConfig = DEFAULTS) -> list[Violation]:
    return [v for v in evaluate(list(resources), config=config) if v.policy == policy]


def messages(policy: str, resources: Iterable[Any], config: PackConfig = DEFAULTS) -> list[str]:
    return [v.message for v in violations_of(policy, resources, config)]


def recorded(program: Callable[[], Any]) -> list[RecordedResource]:
    """Run a small program of real pulumi_aws / pulumi_kubernetes resources under the offline
    mocks: the inputs are exactly what the provider would receive (camelCase, SDK-made)."""
    return record(program).resources


def replace_inputs(resources: list[RecordedResource], type_token: str, name: str | None = None,
                   **changes: Any) -> list[RecordedResource]:
    """The plan with one recorded resource's inputs changed (how a bad setting would record)."""
    out, hit = [], 0
    for r in resources:
        if r.type == type_token and (name is None or r.name == name):
            r = dataclasses.replace(r, inputs={**r.inputs, **changes})
            hit += 1
        out.append(r)
    assert hit == 1, f"expected one {type_token} {name or ''}, changed {hit}"
    return out


def without(resources: list[RecordedResource], type_token: str) -> list[RecordedResource]:
    return [r for r in resources if r.type != type_token]


def as_plan_json(resources: Iterable[RecordedResource]) -> list[dict[str, Any]]:
    """Resources as `llmops plan --json` writes them (today: without dependencies)."""
    return json.loads(json.dumps([r.to_json() for r in resources]))


class Group(pulumi.ComponentResource):
    """A bare component to parent test resources, like the platform's components do."""

    def __init__(self, name: str, type_token: str = "llmops:test:Group"):
        super().__init__(type_token, name, None, None)


def doc(*statements: Mapping[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
