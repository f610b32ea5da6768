"""The gateway's HTTP app: TGI's API (and the OpenAI-compatible routes) in front of TGI.

A request names its model with the `X-Model` header or a `model` body field; with one model
configured (or `defaultModel`), it may omit it. Every request is authenticated, rate limited,
checked, optionally served from cache, then routed to a backend (stable or canary), with
fallback to a secondary model when the primary is overloaded or its breaker is open.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.gateway.audit import AuditLog
from serving.gateway.auth import KeyStore
from serving.gateway.cache import ResponseCache, cache_key, is_deterministic
from serving.gateway.config import ApiKey, GatewayConfig
from serving.gateway.errors import Refusal, shown
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.redaction import StreamRedaction, redact_payload
from serving.gateway.request import OPENAI_ROUTES, Checked, check_body, model_field, parse_json, read_body
from serving.gateway.routing import BackendState, Router
from serving.gateway.streaming import relay_stream
from serving.gateway.upstream import TRANSPORT_ERRORS, Fault, fault_of, json_body, tgi_error

STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                  "X-Accel-Buffering": "no"}
#: TGI's response headers worth passing through (timings, token counts).
PASS_HEADERS = ("x-compute-time", "x-total-time", "x-validation-time", "x-queue-time",
                "x-inference-time", "x-time-per-token", "x-prompt-tokens", "x-generated-tokens",
                "x-compute-type")
APP_STATE = web.AppKey("gateway", object)
LOG = logging.getLogger("llmops.gateway")


@dataclass
class Call:
    """One client request as the gateway understands it."""

    route: str
    model: str
    key: ApiKey
    body: dict[str, Any]
    checked: Checked
    stream: bool
    raw: bytes = b""
    cache_key: str | None = None
    tokens: int = 0
    reserved: int = 0
    backend: str = "none"
    answered_by: str = ""         # the model whose backend answered (the fallback's, if used)
    responding: bool = False      # a streamed response has started: no other answer possible
    started: float = field(default_factory=time.perf_counter)


JSON_HEADERS = {"Content-Type": "application/json"}


class Overloaded(Exception):
    """The backend answered 429: it is full, which is not a fault."""


@dataclass
class Attempts:
    """What happened on the way through a model's backends (and its fallback's)."""

    full: bool = False
    open: bool = False
    faults: list[Fault] = field(default_factory=list)

    def refusal(self, model: str) -> Refusal:
        if self.full:
            return Refusal(429, f"model {model!r} is overloaded; retry later", "overloaded",
                           "overloaded", {"Retry-After": "1"})
        broken = [f for f in self.faults if f.kind == "broken"]
        if broken:
            return Refusal(502, f"the model server for {model!r} failed: {broken[-1].detail}",
                           "unavailable", "upstream_error")
        return Refusal(503, f"no healthy backend for model {model!r}", "unavailable",
                       "circuit_open" if self.open and not self.faults else "upstream_error")


class Gateway:
    """One gateway process: the state its decisions share (keys, budgets, cache, breakers,
    metrics) and the handlers that apply them in order: authenticate, read and check,
    reserve, cache, route (with fallback), relay (with redaction), settle."""

    def __init__(self, config: GatewayConfig):
        self.config = config
        self.keys = KeyStore(config.keys)
        self.limiter = RateLimiter()
        self.cache = ResponseCache(config.cache.max_entries, config.cache.ttl_s,
                                   config.cache.max_bytes, config.cache.max_entry_bytes)
        self.router = Router(config.models, config.breaker, config.limits.max_inflight_per_backend,
                             seed=config.seed)
        self.metrics = GatewayMetrics()
        self.audit = AuditLog(config.audit_log)
        self.deny = [re.compile(p, re.IGNORECASE) for p in config.limits.deny_patterns]
        self.session: aiohttp.ClientSession | None = None
        for backend in self.router.backends.values():  # read at scrape time: never stale
            self.metrics.breaker_state.labels(backend.model, backend.track).set_function(
                lambda breaker=backend.breaker: breaker.state)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, _app: web.Application) -> None:
        limits = self.config.limits
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=60),
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, connect=limits.connect_timeout_s,
                                          sock_read=limits.request_timeout_s))

    async def stop(self, _app: web.Application) -> None:
        if self.session:
            await self.session.close()
        self.audit.close()

    # -- request parsing -------------------------------------------------------------------
    async def _parse(self, request: web.Request) -> Call:
        """Authenticate first (from headers alone), then read and check the body."""
        key = self.keys.authenticate(request.headers.get("Authorization"))
        if key is None:
            self.audit.record(None, request.headers.get("X-Model", "")[:100] or None, request.path,
                              False, "unauthenticated")
            raise Refusal(401, "missing or invalid API key (Authorization: Bearer <key>)",
                          "unauthorized", "unauthorized", close=not request.content.is_eof())
        limits = self.config.limits
        raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        body = parse_json(raw)
        model = self._model_of(request, body)
        self._authorize(key, model, request.path)
        checked = check_body(request.path, body, model, self.config.models[model].max_new_tokens,
                             self.deny)
        return Call(route=request.path, model=model, key=key, body=body, checked=checked,
                    stream=checked.stream, raw=raw)

    def _model_of(self, request: web.Request, body: dict[str, Any]) -> str:
        model = request.headers.get("X-Model") or model_field(body)
        if model is None:
            model = self.config.default_model or (
                next(iter(self.config.models)) if len(self.config.models) == 1 else None)
        if model is None:
            raise Refusal(422, "name a model with the X-Model header or a 'model' field; models: "
                          + ", ".join(self.config.models), "validation", "validation")
        if model not in self.config.models:
            raise Refusal(404, f"unknown model {shown(model)}; models: {', '.join(self.config.models)}",
                          "validation", "validation")
        return model

    def _authorize(self, key: ApiKey, model: str, action: str) -> None:
        if not self.keys.allows(key, model):
            self.audit.record(key.id, model, action, False, "model not allowed")
            raise Refusal(403, f"key {key.id!r} may not use model {model!r}", "unauthorized",
                          "unauthorized")
        self.audit.record(key.id, model, action, True)

    def _cacheable(self, call: Call) -> str | None:
        if not self.config.cache.enabled:
            return None
        params = call.checked.parameters
        if call.checked.openai:
            deterministic = params.get("seed") is not None or params.get("temperature") == 0
            inputs: Any = None
        else:
            deterministic = is_deterministic(params)
            inputs = call.body["inputs"]
        if not deterministic:
            return None
        mode = "stream" if call.stream else "whole"
        return cache_key(call.key.id, call.model, f"{call.route}:{mode}", inputs, params)

    # -- handlers --------------------------------------------------------------------------
    async def handle_inference(self, request: web.Request) -> web.StreamResponse:
        model = "unknown"
        call: Call | None = None
        try:
            call = await self._parse(request)
            model = call.model
            self._rate_limit(call)
            self.metrics.child(self.metrics.active, model).inc()
            try:
                return await self._serve(request, call)
            finally:
                self.metrics.child(self.metrics.active, model).dec()
                self.limiter.settle(call.key.id, call.reserved, call.tokens)
        except Refusal as refusal:
            return self._refused(request, call, model, refusal)
        except Exception:  # a gateway bug: log it, answer in TGI's shape if nothing was sent
            if call is not None and call.responding:
                raise
            LOG.exception("unexpected error on %s", request.path)
            return self._refused(request, call, model, Refusal(
                500, "the gateway failed on this request; the error is in its log", "internal",
                "internal_error"))

    def _refused(self, request: web.Request, call: Call | None, model: str,
                 refusal: Refusal) -> web.Response:
        backend = call.backend if call else "none"
        self.metrics.failed.labels(model, backend, request.path, refusal.reason).inc()
        self.metrics.child(self.metrics.requests, model, backend, request.path,
                           f"{refusal.status // 100}xx").inc()
        return refusal.response()

    def _rate_limit(self, call: Call) -> None:
        key = call.key
        requested = call.checked.max_new_tokens or self.config.models[call.model].max_new_tokens
        reserve = min(requested, key.tokens_per_minute)
        limited = self.limiter.check(key.id, key.requests_per_minute, key.tokens_per_minute, reserve)
        if limited:
            which, retry_after = limited
            self.metrics.rate_limited.labels(call.model, which).inc()
            self.audit.record(key.id, call.model, call.route, False, f"rate limit ({which})")
            raise Refusal(429, f"rate limit exceeded: {which} per minute for key {key.id!r}",
                          "overloaded", "rate_limited", {"Retry-After": str(retry_after)})
        call.reserved = reserve

    async def _serve(self, request: web.Request, call: Call) -> web.StreamResponse:
        call.cache_key = self._cacheable(call)
        if call.cache_key:
            hit = self.cache.get(call.cache_key)
            if hit is not None:
                self.metrics.child(self.metrics.cache_hits, call.model).inc()
                call.backend = "cache"
                return await self._replay(request, call, hit)
            self.metrics.child(self.metrics.cache_misses, call.model).inc()
        return await self._route(request, call)

    async def _route(self, request: web.Request, call: Call) -> web.StreamResponse:
        """Try the model's backends, then its fallback (if the key may use it)."""
        model = call.model
        attempts = Attempts()
        while True:
            answer = await self._try_model(request, call, model, attempts)
            if answer is not None:
                return answer
            fallback = self.config.models[model].fallback
            if model != call.model or fallback is None:
                break
            if not self.keys.allows(call.key, fallback):
                self.audit.record(call.key.id, fallback, call.route, False,
                                  f"fallback from {model!r} not allowed for this key")
                break
            self.audit.record(call.key.id, fallback, call.route, True, f"fallback from {model!r}")
            self.metrics.fallback.labels(call.model, fallback).inc()
            model = fallback
        raise attempts.refusal(call.model)

    async def _try_model(self, request: web.Request, call: Call, model: str,
                         attempts: Attempts) -> web.StreamResponse | None:
        for backend in self.router.candidates(model, call.key.id):
            if not backend.has_room():
                attempts.full = True
                continue
            probe = backend.breaker.acquire()
            if probe is None:
                attempts.open = True
                continue
            try:
                return await self._forward(request, call, backend, probe)
            except Fault as fault:
                attempts.faults.append(fault)
                if fault.kind == "timeout":
                    raise Refusal(504, f"model {call.model!r} did not answer in time", "timeout",
                                  "timeout") from None
            except Overloaded:
                attempts.full = True
                break
        return None

    async def _forward(self, request: web.Request, call: Call, backend: BackendState,
                       probe: bool) -> web.StreamResponse:
        """Send the call to one backend and relay its answer; raises Fault or Overloaded."""
        payload = self._payload(call, backend.model)
        track = backend.track if backend.model == call.model else "fallback"
        call.backend, call.answered_by = track, backend.model
        self.metrics.child(self.metrics.canary, call.model, track).inc()
        backend.inflight += 1
        upstream: aiohttp.ClientResponse | None = None
        settled = False
        try:
            try:
                upstream = await self.session.post(backend.url_for(call.route), data=payload,
                                                   headers=JSON_HEADERS)
                streaming = (call.stream and upstream.status == 200
                             and upstream.content_type == "text/event-stream")
                raw = b"" if streaming else await upstream.read()
            except TRANSPORT_ERRORS as exc:
                fault = fault_of(exc, answered=upstream is not None)
                settled = True
                self._backend_failed(backend, call)
                raise fault from None
            if upstream.status == 429:
                settled = True
                backend.breaker.success()
                raise Overloaded
            if streaming:
                settled = True
                backend.breaker.success()
                response, complete = await self._relay_stream(request, call, upstream)
                if not complete:
                    self._backend_failed(backend, call)
                return response
            answer = self._check_answer(call, backend, upstream.status, upstream.content_type, raw,
                                        payload)
            settled = True
            if answer is None:
                backend.breaker.success()
                return self._relay_whole(call, upstream, raw)
            return answer
        finally:
            backend.inflight -= 1
            if not settled:
                backend.breaker.release(probe)
            if upstream is not None:
                upstream.release()

    def _payload(self, call: Call, model: str) -> bytes:
        """The body for `model`'s server: the client's bytes untouched when possible; else
        without `model` (TGI rejects unknown fields) and with the token limit the request
        reserved when the client named none (so TGI cannot generate past the reservation)."""
        limit_missing = call.checked.max_new_tokens is None
        if not limit_missing and ("model" not in call.body or call.checked.openai):
            return call.raw
        body = dict(call.body)
        limit = min(call.reserved or self.config.models[model].max_new_tokens,
                    self.config.models[model].max_new_tokens)
        if call.checked.openai:
            body["max_tokens"] = limit
        else:
            body.pop("model", None)
            if limit_missing:
                body["parameters"] = {**(body.get("parameters") or {}), "max_new_tokens": limit}
        return json.dumps(body).encode()

    def _check_answer(self, call: Call, backend: BackendState, status: int, content_type: str,
                      raw: bytes, payload: bytes) -> web.Response | None:
        """None for an answer to relay; else the TGI-shaped error to send (fault counted)."""
        error = tgi_error(raw) if status >= 400 else None
        if status >= 500 and error is not None:  # the model's own error: pass it on
            self._backend_failed(backend, call, cause=hash(payload))
            self._finish(call, status)
            return web.json_response(error, status=status)
        if status >= 400 and error is None:
            problem = f"answered {status} without a TGI error body"
        elif status < 400 and content_type != "application/json" and json_body(raw) is None:
            problem = f"answered {status} with a body that is not JSON"
        else:
            return None
        self._backend_failed(backend, call)
        self._finish(call, 502)
        return web.json_response({"error": f"the model server for {backend.model!r} {problem}",
                                  "error_type": "unavailable"}, status=502)

    def _backend_failed(self, backend: BackendState, call: Call, cause: int | None = None) -> None:
        """Count a failure against the backend's breaker (the request's outcome is counted
        once, where it is answered)."""
        if backend.breaker.failure(cause):
            self.metrics.breaker_opened.labels(backend.model, backend.track).inc()

    # -- responses -------------------------------------------------------------------------
    def _relay_whole(self, call: Call, upstream: aiohttp.ClientResponse, raw: bytes) -> web.Response:
        headers = {h: upstream.headers[h] for h in PASS_HEADERS if h in upstream.headers}
        if upstream.status == 200:
            counted = upstream.headers.get("x-generated-tokens")
            redact = self.config.models[call.answered_by].redact_pii
            payload: Any = json_body(raw) if redact or not counted else None  # parse only if needed
            call.tokens = generated_tokens(payload, counted)
            if redact and payload is not None:
                raw = json.dumps(redact_payload(payload)).encode()
            if call.cache_key and call.answered_by == call.model:  # never a fallback's words
                self.cache.put(call.cache_key, ("whole", raw, headers), len(raw))
        self._finish(call, upstream.status)
        return web.Response(body=raw, status=upstream.status, headers=headers,
                            content_type="application/json")

    async def _relay_stream(self, request: web.Request, call: Call,
                            upstream: aiohttp.ClientResponse) -> tuple[web.StreamResponse, bool]:
        """Relay SSE events as they arrive; False if the model server broke the stream."""
        response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
        call.responding = True
        await response.prepare(request)
        redaction = StreamRedaction() if self.config.models[call.answered_by].redact_pii else None
        cacheable = call.cache_key is not None and call.answered_by == call.model
        ttft = self.metrics.child(self.metrics.ttft, call.model, call.backend)
        outcome = await relay_stream(
            response, upstream, redaction, self.cache.max_entry_bytes if cacheable else None,
            lambda: ttft.observe(time.perf_counter() - call.started))
        call.tokens = outcome.tokens
        if outcome.client_left:
            self._finish(call, 499)
            return response, True
        if outcome.recorded is not None and not outcome.failed:
            self.cache.put(call.cache_key, ("stream", outcome.recorded), outcome.recorded_bytes)
        self._finish(call, 500 if outcome.failed else 200)
        await response.write_eof()
        return response, not outcome.broken

    async def _replay(self, request: web.Request, call: Call, hit) -> web.StreamResponse:
        if hit[0] == "stream":
            response = web.StreamResponse(status=200, headers={**STREAM_HEADERS, "X-Cache": "hit"})
            await response.prepare(request)
            for line in hit[1]:
                await response.write(line)
            await response.write_eof()
            self._finish(call, 200)
            return response
        _, raw, headers = hit
        self._finish(call, 200)
        return web.Response(body=raw, headers={**headers, "X-Cache": "hit"},
                            content_type="application/json")

    def _finish(self, call: Call, status: int) -> None:
        m = self.metrics
        m.child(m.requests, call.model, call.backend, call.route, f"{status // 100}xx").inc()
        self.metrics.child(self.metrics.duration, call.model, call.backend, call.route).observe(
            time.perf_counter() - call.started)
        if status >= 500:
            self.metrics.failed.labels(call.model, call.backend, call.route, "upstream_error").inc()
        if call.tokens:
            self.metrics.child(self.metrics.tokens, call.model, call.backend).inc(call.tokens)

    # -- open routes -----------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "models": list(self.config.models)})

    async def info(self, request: web.Request) -> web.Response:
        model = request.headers.get("X-Model")
        if model in self.config.models:
            url = self.config.models[model].backends.stable.url
            try:
                async with self.session.get(url + "/info") as upstream:
                    return web.Response(body=await upstream.read(), status=upstream.status,
                                        content_type="application/json")
            except (aiohttp.ClientError, TimeoutError):
                return Refusal(502, f"model {model!r} did not answer /info", "unavailable",
                               "upstream_error").response()
        return web.json_response({"router": "llmops-gateway", "models": list(self.config.models)})

    async def metrics_endpoint(self, _request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})


def generated_tokens(payload: Any, header: str | None) -> int:
    if header and header.isdigit():
        return int(header)
    if isinstance(payload, list):
        return sum(generated_tokens(p, None) for p in payload)
    if isinstance(payload, dict):
        if isinstance(payload.get("details"), dict):
            return int(payload["details"].get("generated_tokens", 0))
        if isinstance(payload.get("usage"), dict):
            return int(payload["usage"].get("completion_tokens", 0))
    return 0


def create_app(config: GatewayConfig) -> web.Application:
    gateway = Gateway(config)
    app = web.Application(client_max_size=config.limits.max_body_bytes + 1)
    app[APP_STATE] = gateway
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    for path in ("/generate", "/generate_stream", "/", *OPENAI_ROUTES):
        app.router.add_post(path, gateway.handle_inference)
    app.router.add_get("/health", gateway.health)
    app.router.add_get("/info", gateway.info)
    app.router.add_get("/metrics", gateway.metrics_endpoint)
    return app
