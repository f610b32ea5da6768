"""Prometheus metrics of the gateway; one registry per app so instances don't share state."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


class GatewayMetrics:
    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry = CollectorRegistry()
        self.requests = Counter("llm_requests", "Requests by outcome",
                                ["model", "backend", "route", "status_class"], registry=r)
        self.failed = Counter("llm_requests_failed", "Failed requests by reason",
                              ["model", "backend", "route", "reason"], registry=r)
        self.duration = Histogram("llm_request_duration_seconds", "End-to-end request duration",
                                  ["model", "backend", "route"], buckets=DURATION_BUCKETS, registry=r)
        self.ttft = Histogram("llm_time_to_first_token_seconds", "Time to the first streamed token",
                              ["model", "backend"], buckets=TTFT_BUCKETS, registry=r)
        self.active = Gauge("llm_active_connections", "Requests in flight", ["model"], registry=r)
        self.tokens = Counter("llm_tokens_generated", "Tokens generated (TGI's counts)",
                              ["model", "backend"], registry=r)
        self.cache_hits = Counter("llm_cache_hits", "Cache hits", ["model"], registry=r)
        self.cache_misses = Counter("llm_cache_misses", "Cache misses (cacheable requests)",
                                    ["model"], registry=r)
        self.rate_limited = Counter("llm_rate_limited", "Requests refused by a key's limit",
                                    ["model", "limit"], registry=r)
        self.breaker_state = Gauge("llm_circuit_breaker_state", "0 closed, 1 half-open, 2 open",
                                   ["model", "backend"], registry=r)
        self.breaker_opened = Counter("llm_circuit_breaker_opened", "Breaker openings",
                                      ["model", "backend"], registry=r)
        self.canary = Counter("llm_canary_requests", "Requests by release track",
                              ["model", "backend"], registry=r)
        self.waiting = Gauge("llm_requests_waiting", "Requests waiting for or being sent to a "
                             "backend of this model (cold-start holds included): the "
                             "scale-from-zero signal", ["model"], registry=r)
        self.connections = Gauge("llm_gateway_open_connections", "Open client connections",
                                 registry=r)
        self.shed = Counter("llm_gateway_shed", "Connections and requests refused with 503 by "
                            "this process's caps or its drain", ["reason"], registry=r)
        self.fallback = Counter("llm_fallback", "Requests served by a fallback model",
                                ["model", "fallback_model"], registry=r)

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: label sets come from config (models,
        tracks, routes), so this stays small, and the hot path skips prometheus' lookup."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
