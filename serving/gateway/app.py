"""The gateway's HTTP app: TGI's API (and the OpenAI-compatible routes) in front of TGI and
vLLM model servers.

A request names its model with the `X-Model` header or a `model` body field; with one model
configured (or `defaultModel`), it may omit it. Every request is authenticated, checked
against the process's caps and drain, read and checked, rate limited, optionally served
from cache, then routed to a backend (stable or canary), with fallback to a secondary model
when the primary is overloaded or its breaker is open. However it ends, `Endings.end` (in
`call.py`) writes its one audit line, settles its budget and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http import HttpVersion11
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.gateway.audit import AuditLog
from serving.gateway.auth import KeyStore
from serving.gateway.cache import ResponseCache, cache_key, is_deterministic
from serving.gateway.call import UPSTREAM_CUT, Call, Endings
from serving.gateway.codings import DECODED
from serving.gateway.config import ApiKey, GatewayConfig
from serving.gateway.engines import VLLM, model_error, route_refusal
from serving.gateway.errors import ClientGone, Refusal, shown
from serving.gateway.metrics import GatewayMetrics
from serving.gateway.ratelimit import RateLimiter
from serving.gateway.redaction import StreamRedaction, redact_payload
from serving.gateway.request import OPENAI_ROUTES, check_body, model_field, parse_json, read_body
from serving.gateway.routing import BackendState, Router
from serving.gateway.streaming import StreamOutcome, relay_stream
from serving.gateway.upstream import TRANSPORT_ERRORS, Fault, fault_of, json_body

STREAM_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                  "X-Accel-Buffering": "no"}
#: TGI's response headers worth passing through (timings, token counts).
PASS_HEADERS = ("x-compute-time", "x-total-time", "x-validation-time", "x-queue-time",
                "x-inference-time", "x-time-per-token", "x-prompt-tokens", "x-generated-tokens",
                "x-compute-type")
APP_STATE = web.AppKey("gateway", object)
LOG = logging.getLogger("llmops.gateway")
#: Faults that mean "no replica is there (yet)": what a cold-start hold waits out.
COLD_FAULTS = ("down", "not_ready")
INFERENCE_PATHS = ("/generate", "/generate_stream", "/", *OPENAI_ROUTES)
OPEN_PATHS = ("/health", "/ready", "/info", "/metrics")
UPSTREAM_KEEPALIVE_S = 4.0
#: The event a stream gets when the drain window ends before it does: TGI's error shape on
#: TGI's routes, OpenAI's error object on the OpenAI routes (the shape vLLM streams, engines.py).
_CUT_MESSAGE = ("this gateway replica shut down before the generation finished (its drain window "
                "ended); retry")
CUT_BY_DRAIN = (b"\ndata:" + json.dumps({
    "error": _CUT_MESSAGE, "error_type": "unavailable"}).encode() + b"\n\n")
CUT_BY_DRAIN_OPENAI = (b"\ndata:" + json.dumps({"error": {
    "message": _CUT_MESSAGE, "type": "ServiceUnavailableError", "param": None, "code": 503}}).encode()
    + b"\n\n")
#: What a token count too long to read stands for: more than any reservation (settled at it).
ABSURD_COUNT = 10**18


class Overloaded(Exception):
    """The backend answered 429: it is full, which is not a fault."""


@dataclass
class Attempts:
    """What happened on the way through a model's backends (and its fallback's)."""

    full: bool = False
    open: bool = False
    cold_for: float | None = None     # seconds a cold-start hold waited in vain
    faults: list[Fault] = field(default_factory=list)

    def refusal(self, model: str) -> Refusal:
        if self.full:
            return Refusal(429, f"model {model!r} is overloaded; retry later", "overloaded",
                           "overloaded", {"Retry-After": "1"})
        if self.cold_for is not None:
            return Refusal(503, f"model {model!r} is starting: no replica was ready within "
                           f"{self.cold_for:g} s; retry later", "unavailable", "cold_start",
                           {"Retry-After": str(max(1, math.ceil(self.cold_for)))})
        # a "broken" fault never gets here: it is answered at once (Gateway._try_model)
        return Refusal(503, f"no healthy backend for model {model!r}", "unavailable",
                       "circuit_open" if self.open and not self.faults else "upstream_error")


class Gateway:
    """One gateway process: the state its decisions share (keys, budgets, cache, breakers,
    metrics) and the handlers that apply them in order: authenticate, shed (drain, caps),
    read and check, reserve, cache, route (with fallback), relay (with redaction), end."""

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
        self.endings = Endings(self.metrics, self.limiter, self.audit)
        self.deny = [re.compile(p, re.IGNORECASE) for p in config.limits.deny_patterns]
        self.session: aiohttp.ClientSession | None = None
        self.inflight = 0
        self.max_inflight = config.limits.max_inflight_requests  # lowered to fit the fd limit
        self.draining = False
        self._warned: set[str] = set()
        self._streams: dict[int, tuple[Call, asyncio.Task]] = {}  # streams the client sees
        for backend in self.router.backends.values():  # read at scrape time: never stale
            self.metrics.breaker_state.labels(backend.model, backend.track).set_function(
                lambda breaker=backend.breaker: breaker.state)
        for model in config.models:  # exported at 0 from the start, as a scaler expects
            self.metrics.child(self.metrics.waiting, model).set(0)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, _app: web.Application) -> None:
        limits = self.config.limits
        self.session = aiohttp.ClientSession(
            # keep-alive below vLLM's own 5 s (vLLM 0.34.0 envs.py VLLM_HTTP_TIMEOUT_KEEP_ALIVE):
            # the gateway drops an idle connection before the model server closes it, so a
            # request is not sent on a connection being closed (fault_of: not retried)
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=UPSTREAM_KEEPALIVE_S),
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(total=None, connect=limits.connect_timeout_s,
                                          sock_read=limits.request_timeout_s))

    async def stop(self, _app: web.Application) -> None:
        if self.session:
            await self.session.close()
        self.audit.close()

    def begin_drain(self) -> None:
        """Readiness fails and new requests get 503 with Retry-After; in-flight ones finish."""
        self.draining = True

    async def cut_streams(self, timeout_s: float = 1.0) -> None:
        """End the streams still running when the drain window is over: each gets an error
        event and a proper end of its chunked body (handle_inference), not a dropped
        connection mid-body."""
        tasks = []
        for call, task in list(self._streams.values()):
            call.cut = True
            task.cancel()
            tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight (True) or `timeout_s` passed (False)."""
        deadline = time.monotonic() + timeout_s
        while self.inflight > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # -- the request's path --------------------------------------------------------------
    async def handle_inference(self, request: web.Request) -> web.StreamResponse:
        call = Call(request.path)
        self.inflight += 1
        try:
            return await self._handle(request, call)
        except Refusal as refusal:
            call.refused(refusal)
            return refusal.response()
        except ClientGone:
            call.gone()
            return _gone()
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client leaves,
            if self.draining and not call.status:  # or the drain window is over
                call.finish(503, "cut_by_drain", "the drain window ended before the answer")
            elif self.draining and call.outcome == "streaming":  # the client saw its 200
                call.finish(200, "cut_by_drain", "the drain window ended mid-stream")
                if call.cut:
                    await _end_cut_stream(call.response, call.route in OPENAI_ROUTES)
            call.gone()
            raise
        except Exception:  # a gateway bug: log it, answer in TGI's shape if nothing was sent
            LOG.exception("unexpected error on %s", request.path)
            refusal = Refusal(500, "the gateway failed on this request; the error is in its log",
                              "internal", "internal_error")
            call.refused(refusal)
            return call.response if call.response is not None else refusal.response()
        finally:  # in flight until it has ended: its audit line is written before a drain
            self._streams.pop(id(call), None)  # (or anything else counting requests in
            try:                               # flight) can see it gone
                self._stop_waiting(call)
                self.endings.end(call)
            finally:
                self.inflight -= 1

    async def _handle(self, request: web.Request, call: Call) -> web.StreamResponse:
        call.model_hint = request.headers.get("X-Model", "")[:100] or None
        call.key = self._authenticate(request)
        if request.transport is None or request.transport.is_closing():
            raise ClientGone  # it closed right after its headers: nothing to forward or answer
        shed = self._shed(request)
        if shed is not None:
            self.metrics.shed.labels("inflight" if shed.reason == "overloaded" else "draining").inc()
            raise shed
        _check_framing(request)
        limits = self.config.limits
        raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        body = parse_json(raw)
        model = call.model = self._model_of(request, body)
        if not self.keys.allows(call.key, model):
            raise Refusal(403, f"key {call.key.id!r} may not use model {model!r}", "unauthorized",
                          "unauthorized")
        route = self.config.models[model]
        refusal = route_refusal(route.engine, model, call.route)
        if refusal is not None:
            raise refusal
        call.checked = check_body(call.route, body, model, route.max_new_tokens, self.deny)
        if route.redact_pii and call.checked.token_texts:
            raise _token_texts_refused(model, call.checked.token_texts)
        call.body, call.raw, call.stream = body, raw, call.checked.stream
        self._admit(call)
        active = self.metrics.child(self.metrics.active, model)
        active.inc()
        try:
            return await self._serve(request, call)
        finally:
            active.dec()

    def _authenticate(self, request: web.Request) -> ApiKey:
        """The key, from the headers alone (before the body is read). Authorization is not a
        list header (RFC 9110 11.6.2): two of them are refused, not guessed between."""
        given = request.headers.getall("Authorization", ())
        if len(given) > 1:
            raise Refusal(400, f"send one Authorization header (got {len(given)})", "validation",
                          "unauthorized", close=not request.content.is_eof())
        key = self.keys.authenticate(given[0] if given else None)
        if key is None:
            raise Refusal(401, "missing or invalid API key (Authorization: Bearer <key>)",
                          "unauthorized", "unauthorized", close=not request.content.is_eof())
        return key

    def _shed(self, request: web.Request) -> Refusal | None:
        """503 with Retry-After while draining or beyond the process's in-flight cap."""
        limits = self.config.limits
        retry = {"Retry-After": str(limits.retry_after_s)}
        if self.draining:
            return Refusal(503, "this gateway replica is shutting down; retry (another replica "
                           "answers)", "unavailable", "draining", retry, close=True)
        if self.inflight > self.max_inflight:
            return Refusal(503, f"the gateway is at its limit of {self.max_inflight} "
                           "requests in flight; retry later", "overloaded", "overloaded", retry,
                           close=not request.content.is_eof())
        return None

    async def expect_continue(self, request: web.Request) -> web.StreamResponse | None:
        """`Expect: 100-continue`: invite the body only from a key that is let in; anything
        else is answered (and audited) by the normal path before the body is sent. aiohttp's
        default (web_urldispatcher.py `_default_expect_handler`) invites every client."""
        if request.version != HttpVersion11:
            return None
        if request.headers.get("Expect", "").lower() != "100-continue":
            return await self.handle_inference(request)  # 401 or 417, audited, TGI's shape
        try:
            self._authenticate(request)
        except Refusal:
            return await self.handle_inference(request)
        if self._shed(request) is not None:
            return await self.handle_inference(request)
        try:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        except ConnectionError:  # the client already closed (its FIN or reset came with the
            # headers): end it where every request ends (client_gone), not as aiohttp's
            # "Error handling request" (http_writer.py `_write` raises on a closing transport)
            return await self.handle_inference(request)
        request.writer.output_size = 0  # as aiohttp's own handler does: the body starts after
        return None

    def _model_of(self, request: web.Request, body: dict[str, Any]) -> str:
        named = request.headers.getall("X-Model", ())
        if len(named) > 1:  # not a list header: refused, not guessed between
            raise Refusal(400, f"send one X-Model header (got {len(named)})", "validation",
                          "validation")
        model = (named[0] if named else None) or model_field(body)
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

    def _admit(self, call: Call) -> None:
        """Reserve what the request may generate (n x max tokens) against the key's budget."""
        key, checked = call.key, call.checked
        copies, budget = checked.copies, key.tokens_per_minute
        per_copy = checked.max_new_tokens
        if per_copy is None:  # no limit named: the model's cap, within the key's budget
            per_copy = max(1, min(self.config.models[call.model].max_new_tokens, budget // copies))
        reserve = copies * per_copy
        if reserve > budget:
            raise Refusal(422, f"this request may generate {reserve} tokens ({copies} x {per_copy}); "
                          f"key {key.id!r} may generate {budget} per minute", "validation",
                          "validation")
        limited = self.limiter.check(key.id, key.requests_per_minute, budget, reserve)
        if limited:
            which, retry_after = limited
            self.metrics.rate_limited.labels(call.model, which).inc()
            raise Refusal(429, f"rate limit exceeded: {which} per minute for key {key.id!r}",
                          "overloaded", "rate_limited", {"Retry-After": str(retry_after)})
        call.reserved, call.per_copy, call.admitted = reserve, per_copy, True

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
                call.notes.append(f"fallback to {fallback!r} not allowed for this key")
                break
            if route_refusal(self.config.models[fallback].engine, fallback, call.route):
                call.notes.append(f"fallback to {fallback!r} skipped: it does not serve {call.route}")
                break
            if self.config.models[fallback].redact_pii and call.checked.token_texts:
                call.notes.append(f"fallback to {fallback!r} skipped: it redacts PII and the request "
                                  f"asks for {call.checked.token_texts}")
                break
            self.metrics.fallback.labels(call.model, fallback).inc()
            model = fallback
        raise attempts.refusal(call.model)

    async def _try_model(self, request: web.Request, call: Call, model: str,
                         attempts: Attempts) -> web.StreamResponse | None:
        """The model's backends in order; with `coldStart`, while every one of them refuses
        connections or answers 503, retry with backoff for up to `holdSeconds`."""
        self._stop_waiting(call)
        waiting = self.metrics.child(self.metrics.waiting, model)
        hold = self.config.models[model].cold_start
        deadline = time.monotonic() + hold.hold_seconds if hold else 0.0
        pause = 0.1
        while True:
            self._wait_on(call, waiting)
            cold = True
            for backend in self.router.candidates(model, call.key.id):
                if not backend.has_room():
                    attempts.full, cold = True, False
                    continue
                probe = backend.breaker.acquire()
                if probe is None:
                    attempts.open, cold = True, False
                    continue
                try:
                    return await self._forward(request, call, backend, probe)
                except Fault as fault:
                    attempts.faults.append(fault)
                    cold = cold and fault.kind in COLD_FAULTS
                    if fault.kind == "timeout":
                        raise Refusal(504, f"model {call.model!r} did not answer in time",
                                      "timeout", "timeout") from None
                    if fault.kind == "broken":  # it may have the request: a generation is not
                        # idempotent, so it is not retried on the other track or the fallback
                        raise Refusal(502, f"the model server for {backend.model!r} failed: "
                                      f"{fault.detail}", "unavailable", "upstream_error") from None
                except Overloaded:
                    attempts.full = True
                    return None
            left = deadline - time.monotonic()
            if hold is None or not cold:
                return None
            if left <= 0:
                attempts.cold_for = hold.hold_seconds
                return None
            self._wait_on(call, waiting)  # again after a 503 answer: the request still waits
            await asyncio.sleep(min(pause, left))
            pause = min(pause * 2, 2.0)

    @staticmethod
    def _wait_on(call: Call, waiting) -> None:
        if call.waiting is None:
            call.waiting = waiting
            waiting.inc()

    def _stop_waiting(self, call: Call) -> None:
        if call.waiting is not None:
            call.waiting.dec()
            call.waiting = None

    async def _forward(self, request: web.Request, call: Call, backend: BackendState,
                       probe: bool) -> web.StreamResponse:
        """Send the call to one backend and relay its answer; raises Fault or Overloaded."""
        route = self.config.models[backend.model]
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
                                                   headers=backend.headers_for(call.route, call.body))
                self._stop_waiting(call)
                streaming = (call.stream and upstream.status == 200
                             and upstream.content_type == "text/event-stream")
                raw = b"" if streaming else await upstream.read()
            except TRANSPORT_ERRORS as exc:
                fault = fault_of(exc, answered=upstream is not None)
                if not (route.cold_start and fault.kind == "down"):  # scaled to zero: expected
                    settled = True
                    # a timeout counts once per failure run per body, as a model's 5xx does,
                    # and needs a second key's: one key's slow requests cannot open the breaker
                    timeout = fault.kind == "timeout"
                    self._backend_failed(backend, call, cause=hash(payload) if timeout else None,
                                         key=call.key.id if timeout else None)
                raise fault from None
            if upstream.status == 429:
                settled = True
                backend.breaker.success()
                raise Overloaded
            if upstream.status == 503 and route.cold_start:
                raise Fault("not_ready", "it has no ready replica (503)")
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
                try:
                    return self._relay_whole(call, upstream, raw)
                except (ValueError, TypeError, RecursionError) as exc:  # the answer's fault:
                    LOG.warning("model %r sent an answer the gateway could not relay: %r",
                                backend.model, exc)  # a 502 naming it, never a 500
                    message = f"the model server for {backend.model!r} sent an answer that could not be read"
                    call.finish(502, "upstream_error", message)
                    return web.json_response({"error": message, "error_type": "unavailable"},
                                             status=502)
            return answer
        finally:
            backend.inflight -= 1
            if not settled:
                backend.breaker.release(probe)
            if upstream is not None:
                upstream.release()

    def _payload(self, call: Call, model: str) -> bytes:
        """The body for `model`'s server: the client's bytes untouched when possible; else
        without `model` on TGI routes (TGI rejects unknown fields), with `model` set to the
        served name for vLLM, and with the token limit the request reserved when the client
        named none or named more than this model's cap (a fallback's may be lower)."""
        route, checked = self.config.models[model], call.checked
        requested = checked.max_new_tokens
        limit = min(call.per_copy, route.max_new_tokens)
        needs_limit = requested is None or requested > route.max_new_tokens
        if call.route == "/v1/completions" and call.body.get("max_tokens") is None:
            needs_limit = True  # vLLM's completions read only max_tokens (default 16)
        if checked.openai:
            needs_model = route.engine == VLLM and call.body.get("model") != model
        else:
            needs_model = "model" in call.body
        if not needs_limit and not needs_model:
            return call.raw
        body = dict(call.body)
        if checked.openai:
            if route.engine == VLLM:
                body["model"] = model
            if needs_limit:  # every limit vLLM may read, so none is left above the cap
                named = [f for f in ("max_tokens", "max_completion_tokens") if body.get(f) is not None]
                for name in {"max_tokens", *named}:
                    body[name] = limit
        else:
            body.pop("model", None)
            if needs_limit:
                body["parameters"] = {**(body.get("parameters") or {}), "max_new_tokens": limit}
        return json.dumps(body).encode()

    def _check_answer(self, call: Call, backend: BackendState, status: int, content_type: str,
                      raw: bytes, payload: bytes) -> web.Response | None:
        """None for an answer to relay; else the error to send (fault counted)."""
        error = model_error(raw) if status >= 400 else None
        if status >= 500 and error is not None:  # the model's own error: pass it on
            self._backend_failed(backend, call, cause=hash(payload))
            call.finish(status, "upstream_error", "the model server answered with an error")
            return web.json_response(error, status=status)
        if status >= 400 and error is None:
            shape = "an OpenAI" if self.config.models[backend.model].engine == VLLM else "a TGI"
            problem = f"answered {status} without {shape} error body"
        elif call.stream and status < 400:  # a stream was asked for: a whole answer is not one
            problem = (f"answered {status} with {shown(content_type or 'no content type', 40)} "
                       "instead of an event stream")
        elif status < 400 and content_type != "application/json" and json_body(raw) is None:
            problem = f"answered {status} with a body that is not JSON"
        else:
            return None
        self._backend_failed(backend, call)
        message = f"the model server for {backend.model!r} {problem}"
        call.finish(502, "upstream_error", message)
        return web.json_response({"error": message, "error_type": "unavailable"}, status=502)

    def _backend_failed(self, backend: BackendState, call: Call, cause: int | None = None,
                        key: str | None = None) -> None:
        """Count a failure against the backend's breaker (the request's outcome is counted
        once, where it ends)."""
        if backend.breaker.failure(cause, key):
            self.metrics.breaker_opened.labels(backend.model, backend.track).inc()

    # -- responses -------------------------------------------------------------------------
    def _relay_whole(self, call: Call, upstream: aiohttp.ClientResponse, raw: bytes) -> web.Response:
        headers = {h: upstream.headers[h] for h in PASS_HEADERS if h in upstream.headers}
        if upstream.status == 200:
            counted = upstream.headers.get("x-generated-tokens")
            if call.checked.copies > 1 or not (counted or "0").isascii() or not (counted or "0").isdigit():
                counted = None  # TGI's header counts the best sequence (the body has them all);
                # a header that is not a count is not read: the body's count is
            redact = self.config.models[call.answered_by].redact_pii
            payload: Any = json_body(raw) if redact or not counted else None  # parse only if needed
            call.tokens = self._tokens(call, payload, counted)
            if redact and payload is not None:
                raw = json.dumps(redact_payload(payload)).encode()
            if call.cache_key and call.answered_by == call.model:  # never a fallback's words
                self.cache.put(call.cache_key, ("whole", raw, headers), len(raw))
        if upstream.status < 400:
            call.finish(upstream.status, "ok")
        else:
            call.finish(upstream.status, "model_refused", "the model server refused the request")
        return web.Response(body=raw, status=upstream.status, headers=headers,
                            content_type="application/json")

    def _tokens(self, call: Call, payload: Any, header: str | None) -> int:
        tokens = generated_tokens(payload, header)
        if tokens < 0:  # an engine's bug must not turn a good answer into a 500
            if call.answered_by not in self._warned:
                self._warned.add(call.answered_by)
                LOG.warning("model %r reported a negative generated token count (%d); counted as "
                            "0 (logged once per model)", call.answered_by, tokens)
            return 0
        return tokens

    async def _relay_stream(self, request: web.Request, call: Call,
                            upstream: aiohttp.ClientResponse) -> tuple[web.StreamResponse, bool]:
        """Relay SSE events as they arrive; False if the model server broke the stream."""
        response = call.response = web.StreamResponse(status=200, headers=STREAM_HEADERS)
        call.responding = True
        call.finish(200, "streaming")
        try:
            await response.prepare(request)
        except ConnectionError:
            upstream.close()
            call.gone()
            return response, True
        self._streams[id(call)] = (call, asyncio.current_task())
        redaction = StreamRedaction() if self.config.models[call.answered_by].redact_pii else None
        cacheable = call.cache_key is not None and call.answered_by == call.model
        ttft = self.metrics.child(self.metrics.ttft, call.model, call.backend)
        outcome = StreamOutcome()
        try:
            await relay_stream(
                response, upstream, redaction, self.cache.max_entry_bytes if cacheable else None,
                lambda: ttft.observe(time.perf_counter() - call.started), outcome)
        finally:  # cancelled (the client left) or not: the key pays for what was sent
            call.tokens = max(0, outcome.usage if outcome.usage is not None else outcome.tokens)
        if outcome.client_left:
            call.gone()
            return response, True
        if outcome.recorded is not None and not outcome.failed:
            self.cache.put(call.cache_key, ("stream", outcome.recorded), outcome.recorded_bytes)
        # the client got its 200 when the stream started: that is the status recorded, the
        # outcome says how it ended (counted as a failure all the same)
        if outcome.broken:
            call.finish(200, UPSTREAM_CUT, "the model server broke the stream after it started")
        elif outcome.failed:
            call.finish(200, "upstream_error", "the stream ended with an error event")
        else:
            call.finish(200, "ok")
        await _end_stream(response)
        return response, not outcome.broken

    async def _replay(self, request: web.Request, call: Call, hit) -> web.StreamResponse:
        if hit[0] == "stream":
            response = call.response = web.StreamResponse(
                status=200, headers={**STREAM_HEADERS, "X-Cache": "hit"})
            call.responding = True
            call.finish(200, "streaming")
            self._streams[id(call)] = (call, asyncio.current_task())
            try:
                await response.prepare(request)
                for line in hit[1]:
                    await response.write(line)
            except ConnectionError:
                call.gone()
                return response
            call.finish(200, "ok")
            await _end_stream(response)
            return response
        _, raw, headers = hit
        call.finish(200, "ok")
        return web.Response(body=raw, headers={**headers, "X-Cache": "hit"},
                            content_type="application/json")

    async def handle_other(self, request: web.Request) -> web.Response:
        """Every other method and path: `GET /v1/models` (the `openai` client's
        `models.list()`: the models this key may use), else TGI-shaped 404/405. Authenticated
        first, like every inference route, audited, and charged to the key's requests per
        minute (each writes an audit line); the metrics' route label is fixed ("/v1/models" or
        "unknown") so client paths cannot add series."""
        listing = request.path == "/v1/models" and request.method in ("GET", "HEAD")
        call = Call("/v1/models" if listing else "unknown")
        close = not request.content.is_eof()  # the body is never read
        try:
            key = call.key = self._authenticate(request)
            # requests only: a listing or a 404 generates nothing, so no token budget applies
            limited = self.limiter.check(key.id, key.requests_per_minute, sys.maxsize)
            if limited:
                self.metrics.rate_limited.labels("unknown", limited[0]).inc()
                raise Refusal(429, f"rate limit exceeded: requests per minute for key {key.id!r}",
                              "overloaded", "rate_limited", {"Retry-After": str(limited[1])},
                              close=close)
            if listing:
                models = [m for m in self.config.models if self.keys.allows(key, m)]
                call.admitted = True
                call.finish(200, "ok")
                return web.json_response({"object": "list", "data": [
                    {"id": m, "object": "model", "owned_by": "llmops"} for m in models]})
            path = request.path
            allowed = ("POST" if path in INFERENCE_PATHS else
                       "GET" if path in OPEN_PATHS or path == "/v1/models" else None)
            if allowed:
                raise Refusal(405, f"{shown(request.method, 20)} is not allowed on {request.path}; "
                              f"use {allowed}", "validation", "validation", {"Allow": allowed}, close=close)
            raise Refusal(404, f"no route {shown(request.path)}; inference routes: "
                          f"{', '.join(INFERENCE_PATHS)} (POST), GET /v1/models", "validation",
                          "validation", close=close)
        except Refusal as refusal:
            call.refused(refusal)
            return refusal.response()
        finally:
            self.endings.end(call)

    # -- open routes -----------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        """Liveness: the process answers (also while draining)."""
        return web.json_response({"status": "ok", "models": list(self.config.models)})

    async def ready(self, _request: web.Request) -> web.Response:
        """Readiness: fails first when the process starts draining."""
        if self.draining:
            return web.json_response({"status": "draining"}, status=503)
        return web.json_response({"status": "ready"})

    async def info(self, request: web.Request) -> web.Response:
        model = request.headers.get("X-Model")
        if model in self.config.models:
            route = self.config.models[model]
            if route.engine == VLLM:  # vLLM has no /info; its model list is /v1/models
                return web.json_response({"model_id": model, "engine": VLLM})
            url = route.backends.stable.url
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


def _check_framing(request: web.Request) -> None:
    """Refuse what aiohttp would hand over unread: an unknown `Expect` (HTTP/1.1) and a
    `Content-Encoding` the gateway does not decode (codings.py; RFC 9110 15.5.16: 415)."""
    expect = request.headers.get("Expect")
    if expect is not None and request.version == HttpVersion11 and expect.lower() != "100-continue":
        raise Refusal(417, f"unknown Expect {shown(expect, 40)}; only 100-continue is supported",
                      "validation", "validation", close=not request.content.is_eof())
    codings = request.headers.getall("Content-Encoding", ())
    if len(codings) > 1 or (codings and codings[0].strip().lower() not in DECODED):
        raise Refusal(415, f"Content-Encoding {shown(', '.join(codings), 40)} is not supported; "
                      "send the body as it is or gzip or deflate it", "validation", "validation",
                      close=not request.content.is_eof())


def _token_texts_refused(model: str, field_name: str) -> Refusal:
    """Per-token texts (logprobs, top tokens) cannot be redacted exactly: a token split across
    PII has no redacted form, so a redactPii model refuses to send them."""
    return Refusal(422, f"model {model!r} redacts PII from its answers, so it does not return "
                   f"per-token texts; remove {field_name!r}", "validation", "validation")


async def _never_continue(_request: web.Request) -> None:
    """`Expect: 100-continue` on a route that never reads a body: the answer (404, 405, the
    model list) is sent without inviting the body; aiohttp's default handler would invite it."""
    return None


def _gone() -> web.Response:
    """What a handler returns for a client that left: aiohttp's write of it fails quietly
    (web_protocol.py `finish_response` treats ConnectionError as a premature disconnect)."""
    response = web.Response(status=499)
    response.force_close()
    return response


async def _end_cut_stream(response: web.StreamResponse, openai: bool) -> None:
    """The drain's error event (after a blank line, in case the cut fell inside an event) and
    the chunked body's end; a client that left already is not an error."""
    with contextlib.suppress(ConnectionError, RuntimeError):
        await response.write(CUT_BY_DRAIN_OPENAI if openai else CUT_BY_DRAIN)
        await response.write_eof()


async def _end_stream(response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionError):  # the client left after the last event:
        await response.write_eof()               # the answer was complete


def generated_tokens(payload: Any, header: str | None) -> int:
    """Tokens an answer reports (TGI's header or details, best_of sequences included, or
    OpenAI's usage); anything unreadable counts as 0."""
    if header and header.isascii() and header.isdigit():  # "²" is a digit to isdigit, not to int
        return int(header) if len(header) <= 18 else ABSURD_COUNT  # no 5000-digit int() either
    if isinstance(payload, list):
        return sum(generated_tokens(p, None) for p in payload)
    if not isinstance(payload, dict):
        return 0
    details = payload.get("details")
    if isinstance(details, dict):
        tokens = _count(details.get("generated_tokens"))
        others = details.get("best_of_sequences")
        if isinstance(others, list):
            tokens += sum(_count(s.get("generated_tokens")) for s in others if isinstance(s, dict))
        return tokens
    usage = payload.get("usage")
    if isinstance(usage, dict):
        return _count(usage.get("completion_tokens"))
    return 0


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def create_app(config: GatewayConfig) -> web.Application:
    gateway = Gateway(config)
    app = web.Application(client_max_size=config.limits.max_body_bytes + 1)
    app[APP_STATE] = gateway
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    for path in INFERENCE_PATHS:
        app.router.add_post(path, gateway.handle_inference, expect_handler=gateway.expect_continue)
    app.router.add_get("/health", gateway.health)
    app.router.add_get("/ready", gateway.ready)
    app.router.add_get("/info", gateway.info)
    app.router.add_get("/metrics", gateway.metrics_endpoint)
    app.router.add_route("*", "/{tail:.*}", gateway.handle_other,  # last: everything else;
                         expect_handler=_never_continue)   # its body is never read
    return app
