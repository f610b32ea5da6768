"""API keys that grant models the gateway does not serve: a typo in a key's `models` (or a
model removed from `llmops:models`) would leave that team with 403s nobody saw coming. Checked
where the keys file and the models meet: the stack config (`llmops:gatewayApiKeys` against
`llmops:models`) and the gateway's own config load (keys file against its `models`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

KEYS_CONFIG_KEY = "llmops:gatewayApiKeys"
ALL_MODELS = "*"


def grant_problems(keys: Any, models: Sequence[str]) -> list[str]:
    """One problem per key (a `{id, models, ...}` mapping) granting a model not in `models`;
    entries of other shapes are left to the keys file's own schema."""
    problems = []
    for index, key in enumerate(keys if isinstance(keys, list) else []):
        granted = key.get("models") if isinstance(key, Mapping) else None
        if not isinstance(granted, list):
            continue
        unknown = [m for m in granted if m != ALL_MODELS and m not in models]
        if not unknown:
            continue
        who = f"keys[{index}] ({key['id']})" if isinstance(key.get("id"), str) else f"keys[{index}]"
        what = "a model that is" if len(unknown) == 1 else "models that are"
        problems.append(f"{who}: grants {', '.join(map(repr, unknown))}, {what} not configured; "
                        f"configured models: {', '.join(models) or 'none'} (or '{ALL_MODELS}' for all)")
    return problems


def stack_key_problems(values: Mapping[str, Any]) -> list[str]:
    """`llmops:gatewayApiKeys` (the keys file as a secret string) against `llmops:models`.
    A value that is not a keys document (the offline plan's placeholder) is not checked here;
    the gateway refuses a malformed keys file when it starts."""
    text = values.get(KEYS_CONFIG_KEY)
    if not isinstance(text, str):
        return []
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # the secret's text is never echoed, only where it broke
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        return [f"{KEYS_CONFIG_KEY}: not valid YAML{where}; it holds the gateway's keys file"]
    keys = document.get("keys") if isinstance(document, Mapping) else document
    models = [m["name"] for m in values.get("llmops:models") or []
              if isinstance(m, Mapping) and isinstance(m.get("name"), str)]
    return [f"{KEYS_CONFIG_KEY}: {p}" for p in grant_problems(keys, models)]
