"""The gateway's routing config, generated from the stack's models and their releases, so
the canary split in config is what the gateway enforces."""

from __future__ import annotations

import math
from typing import Any

import yaml

from components.cold_start import estimate
from components.engines.pod import engine_facts
from components.router import affinity_of
from vocabulary.config.serving import ModelConfig

#: The gateway holds a request for a scaled-to-zero model at most this long (its ColdStart
#: setting's limit).
MAX_HOLD_S = 900


def cold_start_hold_s(model: ModelConfig) -> int:
    """How long the gateway holds a request while a model scales up from zero: a fresh node's
    whole start (components/cold_start.py, the model's engine), within the gateway's limit."""
    return min(MAX_HOLD_S, math.ceil(estimate(model, engine_facts(model)).fresh_s))


def routing_document(routes: dict[str, dict[str, Any]], models: list[ModelConfig]) -> str:
    """YAML for the gateway (serving/gateway/config.py): each model's engine (the API its
    backends speak: tgi or vllm), its stable (and canary) backend with its weight and, for a
    model with more than one replica, the track's prefix-aware router; for a
    model that may scale to zero how long to hold a request while it starts; API keys come
    from the mounted Secret next to it."""
    document: dict[str, Any] = {"models": {}, "keysFile": "keys.yaml", "auditLog": "-"}
    for model in models:
        route = routes[model.name]
        entry: dict[str, Any] = {"engine": model.engine, "backends": {"stable": {"url": route["stable"]}}}
        if "canary" in route:
            entry["backends"]["canary"] = {"url": route["canary"], "weight": route["canaryWeight"]}
        # each track's prefix-aware router (components/router.py), for the OpenAI routes
        for track, router in route.get("routers", {}).items():
            entry["backends"][track]["router"] = router
            if affinity_of(model):  # the key a consistent_hash router places on (TGI)
                entry["backends"][track]["routerAffinity"] = affinity_of(model)
        if model.replicas.min == 0:
            entry["coldStart"] = {"holdSeconds": cold_start_hold_s(model)}
        document["models"][model.name] = entry
    return yaml.safe_dump(document, sort_keys=True)
