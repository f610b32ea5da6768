"""Cache of common deterministic queries: exact match on the normalised request, TTL, LRU.

Entries are scoped to one API key (the key id is part of the cache key): a hit would
otherwise tell one key what another asked. Bounded in entries and in bytes.
"""

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


def cache_key(key_id: str, model: str, route: str, inputs: Any, parameters: dict[str, Any]) -> str:
    normal = json.dumps([key_id, model, route, inputs, parameters], sort_keys=True,
                        separators=(",", ":"))
    return hashlib.sha256(normal.encode()).hexdigest()


class ResponseCache:
    def __init__(self, max_entries: int, ttl_s: float, max_bytes: int = 64 << 20,
                 max_entry_bytes: int = 1 << 20, clock: Callable[[], float] = time.monotonic):
        self._entries: OrderedDict[str, tuple[float, Any, int]] = OrderedDict()
        self._max, self._ttl, self._clock = max_entries, ttl_s, clock
        self.max_bytes, self.max_entry_bytes = max_bytes, max_entry_bytes
        self.size_bytes = 0

    def get(self, key: str) -> Any | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, value: Any, size: int) -> None:
        """Keep `value` (`size` bytes) unless one entry may not be that large."""
        if size > self.max_entry_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self._clock() + self._ttl, value, size)
        self.size_bytes += size
        while len(self._entries) > self._max or self.size_bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        self.size_bytes -= self._entries.pop(key)[2]

    def __len__(self) -> int:
        return len(self._entries)
