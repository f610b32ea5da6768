"""Each model's start on its GPU shape, from the config alone: the phases of a fresh node's
start, the warm-node total, the budgets the stack gives its pods, and the room its weights
take in the node cache. `llmops cold-start` prints it; docs/cold-start.md tabulates it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from components.cold_start import ColdStart, describe, estimate, facts_for
from components.engines.pod import engine_facts, start_budgets
from components.serving import smallest_node
from llmops.offline.text_table import table
from vocabulary.config import PlatformConfig
from vocabulary.config.placement import (
    cache_entry_gib,
    node_disk_gib,
    pools_of_shape,
    shape_cache_reserve_gib,
)


@dataclass(frozen=True)
class ModelStart:
    """One model on the smallest node of its shape (what every pod must fit)."""

    model: str
    engine: str
    instance: str
    start: ColdStart
    prepulled: ColdStart       # the same start with both images already on the node
    startup_probe_s: int
    await_s: int
    cache_entry_gib: int
    cache_room_gib: int        # the tightest node's disk minus the fill reserve

    def to_json(self) -> dict[str, Any]:
        phases = {_camel(k.removesuffix("_s")): round(v, 1) for k, v in asdict(self.start).items()
                  if k.endswith("_s")}
        return {"model": self.model, "engine": self.engine, "instance": self.instance,
                "weightsGB": round(self.start.weights_gb, 1), "phasesSeconds": phases,
                "freshSeconds": round(self.start.fresh_s),
                "freshPrepulledSeconds": round(self.prepulled.fresh_s),
                "warmSeconds": round(self.start.warm_s), "startupProbeSeconds": self.startup_probe_s,
                "awaitSeconds": self.await_s, "cacheEntryGiB": self.cache_entry_gib,
                "cacheRoomGiB": self.cache_room_gib}


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(word.capitalize() for word in rest)


def model_starts(config: PlatformConfig) -> list[ModelStart]:
    rows = []
    for model in config.models:
        instance = smallest_node(config.gpu_pools, model.gpu_shape).smallest
        facts = facts_for(instance, engine_facts(model))
        budgets = start_budgets(model, instance)
        pools = pools_of_shape(config.gpu_pools, model.gpu_shape)
        rows.append(ModelStart(
            model=model.name, engine=model.engine, instance=instance.name, start=estimate(model, facts),
            prepulled=estimate(model, replace(facts, images_prepulled=True)),
            startup_probe_s=budgets.startup_probe_s, await_s=budgets.await_s,
            cache_entry_gib=cache_entry_gib(model),
            cache_room_gib=min(node_disk_gib(p) for p in pools) - shape_cache_reserve_gib(pools)))
    return rows


def render(config: PlatformConfig, rows: list[ModelStart]) -> str:
    lines = [f"Cold start of stack {config.environment!r}: each model on the smallest node of its "
             "GPU shape (components/cold_start.py; planning figures, docs/cold-start.md)", ""]
    head = ["model", "engine", "instance", "weights", "boot", "images", "fetch", "load", "warm-up",
            "fresh node", "pre-pulled", "warm node", "probe", "await", "cache entry/room"]
    body = [[r.model, r.engine, r.instance, f"{r.start.weights_gb:.1f} GB", describe(r.start.node_boot_s),
             describe(r.start.image_pull_s), describe(r.start.weights_fetch_s),
             describe(r.start.gpu_load_s), describe(r.start.warmup_s), describe(r.start.fresh_s),
             describe(r.prepulled.fresh_s), describe(r.start.warm_s), f"{r.startup_probe_s} s",
             f"{r.await_s} s", f"{r.cache_entry_gib}/{r.cache_room_gib} GiB"] for r in rows]
    lines += table([head, *body], right=set(range(3, len(head))))
    lines += ["", "fresh node = boot + images + fetch + container start + load + warm-up.",
              "warm node (images present, the version in its cache) = container start + load + warm-up.",
              "The startup probe covers load + warm-up; the engine's await adds node provisioning."]
    return "\n".join(lines)
