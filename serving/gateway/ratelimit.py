"""Per-key limits on requests and generated tokens per minute (sliding one-minute window).

Tokens are reserved when a request is admitted (its max_new_tokens, at most the key's whole
budget) and settled when it ends (the reservation is replaced by what TGI generated), so
concurrent requests cannot together spend more than the key has.
"""

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
    reserved: int = 0


class RateLimiter:
    """Admit a request if the key is under both limits with room for its reservation."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._usage: dict[str, _Usage] = {}

    def _trim(self, usage: _Usage, now: float) -> None:
        while usage.requests and usage.requests[0] <= now - WINDOW_S:
            usage.requests.popleft()
        while usage.tokens and usage.tokens[0][0] <= now - WINDOW_S:
            usage.token_total -= usage.tokens.popleft()[1]

    def check(self, key_id: str, requests_per_minute: int, tokens_per_minute: int,
              reserve: int = 0) -> tuple[str, int] | None:
        """None if admitted (counted, `reserve` tokens held); else (which limit, seconds
        until it frees up)."""
        now = self._clock()
        usage = self._usage.setdefault(key_id, _Usage())
        self._trim(usage, now)
        if len(usage.requests) >= requests_per_minute:
            return "requests", max(1, math.ceil(usage.requests[0] + WINDOW_S - now))
        spoken_for = usage.token_total + usage.reserved
        if spoken_for >= tokens_per_minute or spoken_for + reserve > tokens_per_minute:
            frees = usage.tokens[0][0] + WINDOW_S - now if usage.tokens else 1
            return "tokens", max(1, math.ceil(frees))
        usage.requests.append(now)
        usage.reserved += reserve
        return None

    def settle(self, key_id: str, reserved: int, tokens: int) -> None:
        """Release a reservation and charge what was generated."""
        usage = self._usage.setdefault(key_id, _Usage())
        usage.reserved -= reserved
        if tokens > 0:
            usage.tokens.append((self._clock(), tokens))
            usage.token_total += tokens
