"""Two plans compared the way a reviewer reads them: resources matched by (stack, type,
name), their inputs and options compared by property path, JSON documents inside strings
(IAM policies, Helm values) opened up, and each plan's own stack name replaced by `<env>`
so that dev against prod shows what differs between the environments, not their names."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from vocabulary.config import PRODUCT

ENV = "<env>"
MISSING = object()


def normaliser(stack: str):
    """A function that replaces the stack's name where the program composes it into names:
    URNs, `llmops-<stack>...`, `llmops/<stack>` paths, `(<stack>)`, and the bare value.
    `/dev/shm` or a host such as llm.dev.example.com are left alone."""
    s = re.escape(stack)
    patterns = [
        (re.compile(rf"urn:pulumi:{s}::"), f"urn:pulumi:{ENV}::"),
        (re.compile(rf"(?<={re.escape(PRODUCT)}[-/]){s}(?![A-Za-z0-9])"), ENV),
        (re.compile(rf"(?<={re.escape(PRODUCT)}-workloads/){s}(?![A-Za-z0-9])"), ENV),
        (re.compile(rf"\({s}\)"), f"({ENV})"),
    ]

    def normalise(value: Any) -> Any:
        if isinstance(value, dict):
            return {normalise(k): normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(v) for v in value]
        if isinstance(value, str):
            if value == stack:
                return ENV
            for pattern, replacement in patterns:
                value = pattern.sub(replacement, value)
        return value

    return normalise


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(property path, leaf value) pairs; a string holding a JSON object or list is opened
    (`policy{json}.Statement[0].Action`), so one changed action is one line."""
    if isinstance(value, str) and value[:1] in "{[":
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict | list):
            yield from flatten(parsed, f"{path}{{json}}")
            return
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            yield from flatten(item, f"{path}[{i}]")
    else:
        yield path, value


@dataclass
class ResourceChange:
    key: tuple[str, str, str]  # stack, type, name
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # path, before, after


@dataclass
class PlanDiff:
    before: str
    after: str
    added: list[tuple[str, str, str]]
    removed: list[tuple[str, str, str]]
    changed: list[ResourceChange]
    unchanged: int
    outputs: list[tuple[str, Any, Any]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.outputs)


def _resources(plan: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    normalise = normaliser(plan["stack"])
    out = {}
    for resource in plan["resources"]:
        key = (resource.get("stack", ""), resource["type"], normalise(resource["name"]))
        out[key] = {"inputs": normalise(resource.get("inputs", {})),
                    "options": normalise(resource.get("options", {}))}
    return out


def _compare(before: Any, after: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    old, new = dict(flatten(before, prefix)), dict(flatten(after, prefix))
    return [(path, old.get(path, MISSING), new.get(path, MISSING))
            for path in sorted(old.keys() | new.keys())
            if old.get(path, MISSING) != new.get(path, MISSING)]


def diff_plans(before: dict[str, Any], after: dict[str, Any]) -> PlanDiff:
    """Compare two plan documents (the `llmops plan --json` shape)."""
    old, new = _resources(before), _resources(after)
    changed, unchanged = [], 0
    for key in sorted(old.keys() & new.keys()):
        changes = (_compare(old[key]["inputs"], new[key]["inputs"])
                   + _compare(old[key]["options"], new[key]["options"], "(options)"))
        if changes:
            changed.append(ResourceChange(key, changes))
        else:
            unchanged += 1
    outputs = _compare(normaliser(before["stack"])(before.get("outputs", {})),
                       normaliser(after["stack"])(after.get("outputs", {})))
    return PlanDiff(before["stack"], after["stack"], sorted(new.keys() - old.keys()),
                    sorted(old.keys() - new.keys()), changed, unchanged, outputs)


def _shown(value: Any, width: int = 100) -> str:
    if value is MISSING:
        return "(absent)"
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def render(diff: PlanDiff) -> str:
    names = (f"'{diff.before}' and '{diff.after}' appear as {ENV}" if diff.before != diff.after
             else f"both of stack '{diff.before}'")
    lines = [f"Plan diff {diff.before} -> {diff.after} ({names}): {len(diff.added)} added, "
             f"{len(diff.removed)} removed, {len(diff.changed)} changed, {diff.unchanged} unchanged"]
    for sign, keys in (("+", diff.added), ("-", diff.removed)):
        if keys:
            lines.append("")
            lines += [f"{sign} [{stack}] {type_} {name}" for stack, type_, name in keys]
    for change in diff.changed:
        stack, type_, name = change.key
        lines += ["", f"~ [{stack}] {type_} {name}"]
        lines += [f"    {path}: {_shown(a)} -> {_shown(b)}" for path, a, b in change.changes]
    if diff.outputs:
        lines += ["", "~ stack outputs"]
        lines += [f"    {path}: {_shown(a)} -> {_shown(b)}" for path, a, b in diff.outputs]
    return "\n".join(lines)
