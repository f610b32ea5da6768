"""One client request as the gateway understands it, from its first byte to its end.

A `Call` is created before anything is checked, filled in as the request gets further
(key, model, body, reservation, backend), and closed exactly once by `Endings.end`: whatever
the outcome, that one function writes the audit line, settles the key's budget and records
the request's metrics, so refusals, answers, upstream failures and clients that left cannot
be accounted differently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from serving.gateway.audit import AuditLog
from serving.gateway.config import ApiKey
from serving.gateway.errors import Refusal
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.request import Checked

LOG = logging.getLogger("llmops.gateway")
#: Outcomes that are not failures of the gateway or of a model server: the client left, or
#: the model itself refused the request (its own 4xx, passed through).
NOT_FAILURES = frozenset({"ok", "client_gone", "model_refused"})
#: The outcome of a stream the model server broke after the client got its 200.
UPSTREAM_CUT = "upstream_cut"
CLIENT_GONE = 499  # nginx's convention for "the client closed the connection"


@dataclass
class Call:
    route: str
    model_hint: str | None = None   # what the client named before it was checked (audit only)
    key: ApiKey | None = None
    model: str | None = None        # a configured model, once resolved
    body: dict[str, Any] = field(default_factory=dict)
    checked: Checked | None = None
    stream: bool = False
    raw: bytes = b""
    cache_key: str | None = None
    tokens: int = 0
    reserved: int = 0
    per_copy: int = 0               # the token limit of each sequence the request may generate
    admitted: bool = False          # passed auth, access, checks and the key's limits
    backend: str = "none"
    answered_by: str = ""           # the model whose backend answered (the fallback's, if used)
    responding: bool = False        # a streamed response has started: no other answer possible
    cut: bool = False               # the drain window ended it (Gateway.cut_streams)
    notes: list[str] = field(default_factory=list)  # decisions on the way (fallbacks refused)
    response: Any = None            # the streamed response, once prepared
    waiting: Any = None             # the llm_requests_waiting child this call holds up
    started: float = field(default_factory=time.perf_counter)
    # how it ended
    status: int = 0
    outcome: str = ""
    reason: str | None = None
    ended: bool = False

    def finish(self, status: int, outcome: str, reason: str | None = None) -> None:
        """Record how the request ended (the last word wins until `Endings.end` runs)."""
        self.status, self.outcome, self.reason = status, outcome, reason

    def refused(self, refusal: Refusal) -> None:
        self.finish(refusal.status, refusal.reason, refusal.error)

    def gone(self) -> None:
        """The client left; an answer already complete keeps its outcome."""
        if not self.status or self.outcome == "streaming":
            self.finish(CLIENT_GONE, "client_gone", "the client closed the connection")


class Endings:
    """The one place a request ends."""

    def __init__(self, metrics: GatewayMetrics, limiter: RateLimiter, audit: AuditLog):
        self.metrics, self.limiter, self.audit = metrics, limiter, audit
        self._warned: set[str] = set()

    def _settled_tokens(self, call: Call) -> int:
        """The tokens the key pays for: what the answer reported or carried, never more than
        the request reserved (n x its token limit). A model server's count is not trusted
        beyond that: an absurd one would lock the key out and inflate the token metric."""
        if call.tokens <= call.reserved:
            return max(0, call.tokens)
        model = call.answered_by or call.model or "unknown"
        if model not in self._warned:
            self._warned.add(model)
            LOG.warning("model %r reported %d generated tokens, more than the %d the request "
                        "reserved; counted as %d (logged once per model)", model, call.tokens,
                        call.reserved, call.reserved)
        return call.reserved

    def end(self, call: Call) -> None:
        if call.ended:
            return
        call.ended = True
        if not call.status:  # nothing recorded an outcome: a gateway bug on the way out
            call.finish(500, "internal_error", "the request ended without an outcome")
        status, m = call.status, self.metrics
        model = call.model or "unknown"
        m.child(m.requests, model, call.backend, call.route, f"{status // 100}xx").inc()
        if call.model is not None:
            m.child(m.duration, model, call.backend, call.route).observe(
                time.perf_counter() - call.started)
        if call.outcome not in NOT_FAILURES:
            m.failed.labels(model, call.backend, call.route, call.outcome).inc()
        call.tokens = self._settled_tokens(call)
        if call.tokens:
            m.child(m.tokens, model, call.backend).inc(call.tokens)
        if call.key is not None and (call.reserved or call.tokens):
            self.limiter.settle(call.key.id, call.reserved, call.tokens)
        reason = call.reason if call.outcome != "ok" else None
        if call.notes:
            reason = "; ".join([*call.notes, *([reason] if reason else [])])
        self.audit.record(call.key.id if call.key else None, call.model or call.model_hint,
                          call.route, call.admitted, reason, status=status, outcome=call.outcome,
                          answered_by=call.answered_by if call.answered_by not in ("", call.model)
                          else None)
