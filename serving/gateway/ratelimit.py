"""Per-key limits on requests and generated tokens per minute (sliding one-minute window)."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WINDOW_S = 60.0


@dataclass
class _Usage:
    requests: deque[float] = field(default_factory=deque)
    tokens: deque[tuple[float, int]] = field(default_factory=deque)
    token_total: int = 0


class RateLimiter:
    """Admit a request if the key is under both limits; tokens are charged after the fact."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._usage: dict[str, _Usage] = {}

    def _trim(self, usage: _Usage, now: float) -> None:
        while usage.requests and usage.requests[0] <= now - WINDOW_S:
            usage.requests.popleft()
        while usage.tokens and usage.tokens[0][0] <= now - WINDOW_S:
            usage.token_total -= usage.tokens.popleft()[1]

    def check(self, key_id: str, requests_per_minute: int, tokens_per_minute: int
              ) -> tuple[str, int] | None:
        """None if admitted (and counted); else (which limit, seconds until it frees up)."""
        now = self._clock()
        usage = self._usage.setdefault(key_id, _Usage())
        self._trim(usage, now)
        if len(usage.requests) >= requests_per_minute:
            return "requests", max(1, math.ceil(usage.requests[0] + WINDOW_S - now))
        if usage.token_total >= tokens_per_minute:
            return "tokens", max(1, math.ceil(usage.tokens[0][0] + WINDOW_S - now))
        usage.requests.append(now)
        return None

    def charge_tokens(self, key_id: str, tokens: int) -> None:
        if tokens > 0:
            usage = self._usage.setdefault(key_id, _Usage())
            usage.tokens.append((self._clock(), tokens))
            usage.token_total += tokens
