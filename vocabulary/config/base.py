"""The base every config section derives from, and the one error type bad config raises.

Pydantic (v2) was chosen over dataclasses because it gives, for free and in one pass:
strict types, rejection of unknown keys, the key path of every problem, and *all* problems
at once instead of the first. Sections only declare fields and cross-field checks.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pulumi
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel


class Section(BaseModel):
    """A block of stack configuration: camelCase keys in YAML, snake_case in Python."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        strict=True,
    )


class ConfigError(pulumi.RunError):
    """Bad stack configuration. Raised before any resource is registered.

    Subclasses `pulumi.RunError` so a real `pulumi up` prints the message without a traceback.
    """

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        noun = "problem" if count == 1 else "problems"
        lines = [f"{source} has {count} configuration {noun}:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def repeated(values: Iterable[str]) -> list[str]:
    """The values that appear more than once, sorted (for "must be unique" checks)."""
    seen: set[str] = set()
    dupes: set[str] = set()
    for value in values:
        (dupes if value in seen else seen).add(value)
    return sorted(dupes)


def size_order_problem(min_size: int, desired_size: int, max_size: int) -> str | None:
    """Node group sizes must be ordered; the message shows the values as given."""
    if min_size <= desired_size <= max_size:
        return None
    return (f"sizes must satisfy minSize <= desiredSize <= maxSize; got "
            f"{min_size} <= {desired_size} <= {max_size}")


def key_path(loc: Iterable[str | int]) -> str:
    """Render a pydantic location as the key path a user types: `llmops:network.subnets[1]`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """Walk the schema along `loc` and list the keys the model at that place accepts."""
    current: Any = model
    for part in loc:
        inner = _inner_model(current)  # an optional section is its model
        if isinstance(part, str) and _is_model(inner) and not _is_mapping(current):
            field = _field_by_alias(inner, part)
            if field is None:
                return None
            current = field.annotation
        else:  # a list index or a dict key: step into the container's item type
            current = inner
    current = _inner_model(current)
    if _is_model(current):
        return sorted(f.alias or name for name, f in current.model_fields.items()
                      if not (f.json_schema_extra or {}).get("derived"))
    return None


def _is_mapping(annotation: Any) -> bool:
    """`dict[str, X]` (or `dict[...] | None`): its keys are data, not field names."""
    origin = typing.get_origin(annotation)
    if origin in (dict, Mapping):
        return True
    return origin in (typing.Union, types.UnionType) and any(
        _is_mapping(arg) for arg in typing.get_args(annotation))


def _is_model(value: Any) -> bool:
    return isinstance(value, type) and issubclass(value, BaseModel)


def _field_by_alias(model: type[BaseModel], key: str):
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _inner_model(annotation: Any) -> Any:
    """Find the model class inside `X | None`, `list[X]`, `dict[str, X]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def describe_errors(model: type[BaseModel], error: ValidationError) -> list[str]:
    """One readable line per problem: key path, the bad value, what is allowed."""
    problems: list[str] = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        path = key_path(loc) or "(top level)"
        kind = item["type"]
        value = item.get("input")
        if kind == "extra_forbidden":
            allowed = _allowed_keys(model, loc[:-1]) or []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            parts = ["unknown key"]
            if close:
                parts.append(f"did you mean {close[0]}?")
            if allowed:
                parts.append(f"allowed keys: {', '.join(allowed)}")
            problems.append(f"{path}: {'; '.join(parts)}")
        elif kind == "missing":
            problems.append(f"{path}: required value is missing")
        elif kind == "value_error":
            message = str(item["msg"]).removeprefix("Value error, ")
            for line in message.splitlines():
                # root-level checks name their own key paths
                problems.append(line if not loc else f"{path}: {line}")
        else:
            problems.append(f"{path}: {item['msg']} (got {_shown(value)})")
    return problems
