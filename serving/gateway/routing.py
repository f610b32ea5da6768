"""Which backend serves a request: weighted canary split (sticky per key), per-backend
circuit breakers, and a cap on in-flight requests per backend."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from serving.gateway.affinity import SESSION_HEADER, affinity_key
from serving.gateway.config import Breaker, ModelRoute
from serving.gateway.request import OPENAI_ROUTES

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
JSON_HEADERS = {"Content-Type": "application/json"}


class CircuitBreaker:
    """Opens after N consecutive failures; lets one probe through after the reset time.

    Every admission is settled: `success()`, `failure()`, or `release()` for a request that
    ended without a verdict (client gone, gateway error), so a probe can never be lost and
    leave the breaker refusing forever. A failure one request body may cause (a timeout, the
    model's own 5xx: `cause`, the body) is counted once per failure run per body, so one client
    cannot open it for everyone by repeating a request the model chokes on. Timeouts also name
    the `key`: they count only once at least two keys had them in the run, so one client's
    different slow requests cannot open it either (a server slow for everyone still does).
    """

    def __init__(self, config: Breaker, clock: Callable[[], float] = time.monotonic):
        self._threshold, self._reset = config.failure_threshold, config.reset_after_s
        self._clock = clock
        self.failures = 0
        self.opened_at: float | None = None
        self._probing = False
        self._causes: set[int] = set()
        self._keys: set[str] = set()   # keys with keyed failures (timeouts) in this run
        self._keyed = 0                # failures of this run counted only with two keys

    @property
    def state(self) -> int:
        if self.opened_at is None:
            return CLOSED
        return HALF_OPEN if self._clock() - self.opened_at >= self._reset else OPEN

    def acquire(self) -> bool | None:
        """None if refused; else whether this request is the half-open probe."""
        if self.opened_at is None:
            return False
        if not self._probing and self._clock() - self.opened_at >= self._reset:
            self._probing = True
            return True
        return None

    def allow(self) -> bool:
        return self.acquire() is not None

    def release(self, probe: bool) -> None:
        """The request ended without a verdict; a probe frees the slot for the next one."""
        if probe:
            self._probing = False

    def success(self) -> None:
        self.failures, self.opened_at, self._probing = 0, None, False
        self._causes.clear()
        self._keys.clear()
        self._keyed = 0

    def failure(self, cause: int | None = None, key: str | None = None) -> bool:
        """Record a failure; True when this failure opened the breaker."""
        if cause is not None and not self._probing:
            if cause in self._causes:
                return False
            self._causes.add(cause)
        self.failures += 1
        if key is not None:
            self._keys.add(key)
            self._keyed += 1
        counted = self.failures - (self._keyed if len(self._keys) < 2 else 0)
        if self._probing or (self.opened_at is None and counted >= self._threshold):
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
    router: str | None = None  # the track's prefix-aware router, for the OpenAI routes
    affinity: str | None = None  # "prompt-prefix": the router hashes a key of the prompt's start
    _urls: dict[tuple[str, str], URL] = field(default_factory=dict)

    def has_room(self) -> bool:
        return self.inflight < self.max_inflight

    def headers_for(self, route: str, body: dict[str, Any]) -> dict[str, str]:
        """The upstream request's headers: with affinity, the key the router places on (always
        the gateway's own, so a client cannot pick the replica; serving/gateway/affinity.py)."""
        if self.affinity and self.router and route in OPENAI_ROUTES:
            return {**JSON_HEADERS, SESSION_HEADER: affinity_key(route, body)}
        return JSON_HEADERS

    def url_for(self, route: str) -> URL:
        """The parsed URL of a route on this backend (parsed once, not per request)."""
        base = self.router if self.router and route in OPENAI_ROUTES else self.url
        url = self._urls.get((base, route))
        if url is None:
            url = self._urls[(base, route)] = URL(base + route)
        return url


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
                        name, track, backend.url, CircuitBreaker(breaker, clock), max_inflight,
                        router=backend.router, affinity=backend.router_affinity)

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
