"""The gateway's routing config, generated from the stack's models and their releases, so
the canary split in config is what the gateway enforces."""

from __future__ import annotations

from typing import Any

import yaml

from stacks.config.serving import ModelConfig


def routing_document(routes: dict[str, dict[str, Any]], models: list[ModelConfig]) -> str:
    """YAML for the gateway (serving/gateway/config.py): each model's engine (the API its
    backends speak: tgi or vllm) and its stable (and canary) backend with its weight; API keys
    come from the mounted Secret next to it."""
    document: dict[str, Any] = {"models": {}, "keysFile": "keys.yaml", "auditLog": "-"}
    for model in models:
        route = routes[model.name]
        entry: dict[str, Any] = {"engine": model.engine, "backends": {"stable": {"url": route["stable"]}}}
        if "canary" in route:
            entry["backends"]["canary"] = {"url": route["canary"], "weight": route["canaryWeight"]}
        document["models"][model.name] = entry
    return yaml.safe_dump(document, sort_keys=True)
