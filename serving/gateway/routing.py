"""Which backend serves a request: weighted canary split (sticky per key), per-backend
circuit breakers, and a cap on in-flight requests per backend."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from serving.gateway.config import Breaker, ModelRoute

CLOSED, HALF_OPEN, OPEN = 0, 1, 2


class CircuitBreaker:
    """Opens after N consecutive failures; lets one probe through after the reset time."""

    def __init__(self, config: Breaker, clock: Callable[[], float] = time.monotonic):
        self._threshold, self._reset = config.failure_threshold, config.reset_after_s
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> int:
        if self.opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self.opened_at >= self._reset else OPEN

    def allow(self) -> bool:
        state = self.state
        if state == CLOSED:
            return True
        if state == HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self._probing = 0, None, False

    def failure(self) -> bool:
        """Record a failure; True when this failure opened the breaker."""
        self.failures += 1
        if self._probing or (self.opened_at is None and self.failures >= self._threshold):
            self.opened_at, self._probing = self._clock(), False
            return True
        return False


@dataclass
class BackendState:
    model: str
    track: str      # stable | canary
    url: str
    breaker: CircuitBreaker
    max_inflight: int
    inflight: int = 0

    def has_room(self) -> bool:
        return self.inflight < self.max_inflight


def canary_bucket(key_id: str) -> int:
    """A stable 0-99 bucket per key, so sticky keys always see the same track."""
    return int.from_bytes(hashlib.sha256(key_id.encode()).digest()[:4], "big") % 100


class Router:
    def __init__(self, models: dict[str, ModelRoute], breaker: Breaker, max_inflight: int,
                 seed: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.routes = models
        self._random = random.Random(seed)
        self.backends: dict[tuple[str, str], BackendState] = {}
        for name, route in models.items():
            for track in ("stable", "canary"):
                backend = getattr(route.backends, track)
                if backend is not None:
                    self.backends[(name, track)] = BackendState(
                        name, track, backend.url, CircuitBreaker(breaker, clock), max_inflight)

    def pick_track(self, model: str, key_id: str) -> str:
        route = self.routes[model]
        canary = route.backends.canary
        if canary is None or canary.weight == 0:
            return "stable"
        roll = canary_bucket(key_id) if route.sticky else self._random.randrange(100)
        return "canary" if roll < canary.weight else "stable"

    def candidates(self, model: str, key_id: str) -> list[BackendState]:
        """Backends to try in order: the chosen track first, then the other track."""
        first = self.pick_track(model, key_id)
        order = [first] + [t for t in ("stable", "canary") if t != first]
        return [self.backends[(model, t)] for t in order if (model, t) in self.backends]
