"""Cache of common deterministic queries: exact match on the normalised request, TTL, LRU."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

#: Parameters that make TGI sample (and so give different answers to the same prompt).
SAMPLING = ("temperature", "top_k", "top_p", "typical_p")


def is_deterministic(parameters: dict[str, Any]) -> bool:
    """Greedy decoding, or sampling with a fixed seed."""
    if parameters.get("seed") is not None:
        return True
    sampling = parameters.get("do_sample") or any(parameters.get(p) is not None for p in SAMPLING)
    return not sampling and not (parameters.get("best_of") or 1) > 1


def cache_key(model: str, route: str, inputs: Any, parameters: dict[str, Any]) -> str:
    normal = json.dumps([model, route, inputs, parameters], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(normal.encode()).hexdigest()


class ResponseCache:
    def __init__(self, max_entries: int, ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = (self._clock() + self._ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
