"""Read a stack's `Pulumi.<stack>.yaml` the way the Pulumi CLI hands it to the program."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vocabulary.errors import LlmopsError
from vocabulary.strict_yaml import duplicate_keys, read_utf8

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STACKS_DIR = PROJECT_ROOT / "stacks"
#: Offline stand-in for `secure:` values: the plan cannot decrypt them and does not need to.
OFFLINE_SECRET = "offline-placeholder-secret"
DELETE = object()  # an override value that removes the key


@dataclass
class StackConfig:
    """A stack's config as typed values (not yet validated) and which keys are secret."""

    stack: str
    source: str
    values: dict[str, Any]
    secret_keys: set[str] = field(default_factory=set)

    def runtime_values(self) -> dict[str, str]:
        """As the CLI passes them: strings, structured values JSON-encoded."""
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in self.values.items()}

    def with_overrides(self, overrides: dict[str, Any]) -> StackConfig:
        """A copy with dotted-path overrides applied: {"llmops:network.azCount": 3}."""
        values = copy.deepcopy(self.values)
        for path, value in overrides.items():
            _set_path(values, path, value)
        return StackConfig(self.stack, self.source, values, set(self.secret_keys))


def display_path(path: Path) -> str:
    """How a message names a file: relative to the working directory when it is below it
    (`stacks/Pulumi.dev.yaml`), else absolute, so `--stacks-dir` errors name the real file."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def available_stacks(stacks_dir: Path = STACKS_DIR) -> list[str]:
    return sorted(p.name[len("Pulumi."):-len(".yaml")] for p in stacks_dir.glob("Pulumi.*.yaml"))


def read_stack_config(stack: str, stacks_dir: Path = STACKS_DIR) -> StackConfig:
    """The environment file: the platform stack's config, which both stacks read."""
    path = stacks_dir / f"Pulumi.{stack}.yaml"
    source = display_path(path)
    if not path.exists():
        known = ", ".join(available_stacks(stacks_dir)) or "none"
        raise LlmopsError(f"no stack {stack!r}: {source} does not exist; stacks: {known}")
    return _read(stack, path, source)


def read_workloads_config(stack: str, stacks_dir: Path = STACKS_DIR) -> StackConfig:
    """The workloads stack's own config (stacks/workloads/Pulumi.<stack>.yaml): its secrets.
    Absent before `pulumi stack init` there, which is fine offline."""
    path = stacks_dir / "workloads" / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return StackConfig(stack, display_path(path), {})
    return _read(stack, path, display_path(path))


def _read(stack: str, path: Path, source: str) -> StackConfig:
    """UTF-8 text, valid YAML, each key once (else the last would win without a word)."""
    text = read_utf8(path, source)
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise LlmopsError(f"{source} is not valid YAML: {exc}") from None
    repeated = duplicate_keys(text, strip_prefix="config.")
    if repeated:
        from vocabulary.config import ConfigError  # here: this module stays light for the pods

        raise ConfigError(source, repeated)
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise LlmopsError(f"{source} has no `config:` mapping")
    secret_keys: set[str] = set()
    values = {str(k): _unwrap_secure(str(k), v, secret_keys) for k, v in config.items()}
    return StackConfig(stack, source, values, secret_keys)


def _unwrap_secure(key: str, value: Any, secret_keys: set[str]) -> Any:
    """Replace `{secure: ...}` (anywhere in a value) with the offline placeholder."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            secret_keys.add(key)
            return OFFLINE_SECRET
        return {k: _unwrap_secure(key, v, secret_keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap_secure(key, v, secret_keys) for v in value]
    return value


def _set_path(values: dict[str, Any], path: str, value: Any) -> None:
    """Set (or with DELETE remove) a dotted path; a list index equal to its length appends."""
    key, _, rest = path.partition(".")
    if not rest:
        if value is DELETE:
            values.pop(key, None)
        else:
            values[key] = value
        return
    node = values.setdefault(key, {})
    parts = rest.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        if int(last) == len(node):
            node.append(value)
        else:
            node[int(last)] = value
    elif value is DELETE:
        node.pop(last, None)
    else:
        node[last] = value
