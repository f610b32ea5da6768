"""Per-environment policy configuration: policies/config/<stack>.yaml.

The YAML has exactly the shape the Pulumi CLI reads from `--policy-pack-config <file>.json`
(policy name -> level string, or an object with `enforcementLevel` and the policy's
properties), so one source serves both: the offline runner reads the YAML, and
`policies/config/<stack>.json` is generated from it for the CLI (`llmops policy config
--write`; a test fails when the two drift).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.catalog import ALL_RULES
from policies.rules import LEVELS, Level, Rule
from vocabulary.errors import LlmopsError
from vocabulary.strict_yaml import duplicate_keys, read_utf8

CONFIG_DIR = Path(__file__).resolve().parent / "config"
JSON_TYPES = {"array": list, "string": str, "boolean": bool, "integer": int,
              "number": (int, float), "object": dict}


class PolicyConfigError(LlmopsError):
    """A policy config file names an unknown policy, level or property."""


@dataclass(frozen=True)
class PackConfig:
    """Levels and properties per policy for one environment; missing ones use rule defaults."""

    source: str
    entries: Mapping[str, Any] = field(default_factory=dict)

    def level(self, rule: Rule) -> Level:
        entry = self.entries.get(rule.name)
        if isinstance(entry, str):
            return entry  # type: ignore[return-value]
        if isinstance(entry, Mapping) and "enforcementLevel" in entry:
            return entry["enforcementLevel"]
        return rule.enforcement

    def properties(self, rule: Rule) -> dict[str, Any]:
        entry = self.entries.get(rule.name)
        if isinstance(entry, Mapping):
            return {k: v for k, v in entry.items() if k != "enforcementLevel"}
        return {}

    def to_cli_json(self) -> str:
        """The file `pulumi preview --policy-pack-config` reads."""
        return json.dumps(dict(self.entries), indent=2) + "\n"


def config_path(stack: str, config_dir: Path = CONFIG_DIR) -> Path:
    return config_dir / f"{stack}.yaml"


def available_configs(config_dir: Path = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in config_dir.glob("*.yaml"))


def load_config(stack: str, config_dir: Path = CONFIG_DIR,
                rules: Sequence[Rule] = ALL_RULES) -> PackConfig:
    path = config_path(stack, config_dir)
    source = f"policies/config/{path.name}"
    if not path.is_file():
        known = ", ".join(available_configs(config_dir)) or "none"
        raise PolicyConfigError(f"no policy config for stack {stack!r}: {source} does not exist; "
                                f"configured stacks: {known}")
    text = read_utf8(path, source)
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyConfigError(f"{source} is not valid YAML: {exc}") from None
    # PyYAML keeps the last of two equal keys: a policy written twice would silently take
    # the level (or budget) of whichever block comes last
    repeated = duplicate_keys(text)
    if repeated:
        raise PolicyConfigError(f"{source} has {len(repeated)} problem(s):\n"
                                + "\n".join(f"  - {p}" for p in repeated))
    return parse_config(document, source, rules)


def parse_config(document: Any, source: str, rules: Sequence[Rule] = ALL_RULES) -> PackConfig:
    """Validate a config mapping against the rules; every problem listed at once."""
    if not isinstance(document, Mapping):
        raise PolicyConfigError(f"{source} must be a mapping of policy name to level or settings")
    by_name = {r.name: r for r in rules}
    problems: list[str] = []
    for name, entry in document.items():
        rule = by_name.get(name)
        if rule is None:
            close = difflib.get_close_matches(str(name), list(by_name), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"{name}: unknown policy{hint}")
            continue
        problems += _entry_problems(rule, entry)
    if problems:
        raise PolicyConfigError(f"{source} has {len(problems)} problem(s):\n"
                                + "\n".join(f"  - {p}" for p in problems))
    return PackConfig(source, dict(document))


def _entry_problems(rule: Rule, entry: Any) -> list[str]:
    allowed_levels = ", ".join(LEVELS)
    if isinstance(entry, str):
        return [] if entry in LEVELS else [f"{rule.name}: level {entry!r} is not one of {allowed_levels}"]
    if not isinstance(entry, Mapping):
        return [f"{rule.name}: expected a level ({allowed_levels}) or a mapping"]
    problems = []
    level = entry.get("enforcementLevel")
    if level is not None and level not in LEVELS:
        problems.append(f"{rule.name}.enforcementLevel: {level!r} is not one of {allowed_levels}")
    for key, value in entry.items():
        if key == "enforcementLevel":
            continue
        schema = rule.config_schema.get(key)
        if schema is None:
            known = ", ".join(sorted(rule.config_schema)) or "none"
            problems.append(f"{rule.name}.{key}: unknown property (allowed: {known})")
            continue
        expected = JSON_TYPES.get(schema.get("type", ""), object)
        if not isinstance(value, expected) or (isinstance(value, bool) and schema.get("type") != "boolean"):
            problems.append(f"{rule.name}.{key}: expected {schema.get('type')}, got {value!r}")
    return problems
