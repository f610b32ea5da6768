"""Model servers for the release tests, built on the gateway tests' TGI-protocol fake
(tests/gateway/fake_tgi.py) so they speak TGI on the wire, with two additions a release
needs: answers that depend on the prompt (a model that knows some answers), and TGI's
`/metrics` (tgi_request_* with the names and units TGI exports)."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

#: The bucket bounds TGI's metrics exporter uses for its duration histograms are not ours to
#: know; these cover fake and real per-token times (milliseconds to a second).
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def answer_book(behaviour: FakeBehaviour, answers: dict[str, str], default: str):
    """Middleware: the fake's reply for this request is the book's answer to its prompt.

    The fake's handler reads `behaviour.reply` right after re-reading the (cached) body, with
    no await that could yield in between, so concurrent requests cannot see each other's reply.
    """
    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.method == "POST":
            body = await request.json()
            behaviour.reply = answers.get(body.get("inputs"), default)
        return await handler(request)

    return middleware


def tgi_metrics(behaviour: FakeBehaviour, extra_delay_s: float = 0.0):
    """Middleware + /metrics: TGI's per-request mean time per token histogram, in seconds."""
    registry = CollectorRegistry()
    tpot = Histogram("tgi_request_mean_time_per_token_duration", "mean time per token, per request",
                     buckets=TPOT_BUCKETS, registry=registry)

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.method != "POST":
            return await handler(request)
        tokens = max(len(behaviour.reply.split(" ")), 1)  # read before any await
        started = time.perf_counter()
        if extra_delay_s:
            await asyncio.sleep(extra_delay_s)  # a slower model: every request takes longer
        response = await handler(request)
        if response.status < 400:
            tpot.observe((time.perf_counter() - started) / tokens)
        return response

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return middleware, metrics


def fake_model(behaviour: FakeBehaviour, *, answers: dict[str, str] | None = None,
               extra_delay_s: float = 0.0) -> web.Application:
    """A fake TGI server: the gateway tests' fake plus prompt-dependent answers and /metrics."""
    app = create_fake_tgi(behaviour)
    if answers is not None:
        app.middlewares.append(answer_book(behaviour, answers, default=behaviour.reply))
    middleware, metrics = tgi_metrics(behaviour, extra_delay_s)
    app.middlewares.append(middleware)
    app.router.add_get("/metrics", metrics)
    return app


def not_tgi(status: int, body: str, content_type: str = "application/json") -> web.Application:
    """A server on the endpoint's URL that answers something other than TGI's protocol."""
    async def answer(_request: web.Request) -> web.Response:
        return web.Response(status=status, body=body.encode(), content_type=content_type)

    app = web.Application()
    app.router.add_post("/", answer)
    return app

