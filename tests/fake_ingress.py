"""A fake of what sits between an application and the gateway (the ALB / an ingress): it
forwards requests and streams to the gateway, and can answer like one mid-rollout (503 with
Retry-After and an HTML body) or drop a client's connection in the middle of a stream."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

UNAVAILABLE_PAGE = ("<html><head><title>503 Service Temporarily Unavailable</title></head>"
                    "<body><center><h1>503 Service Temporarily Unavailable</h1></center></body></html>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class IngressBehaviour:
    target: str                               # the gateway's base URL
    unavailable: int = 0                      # answer the next N requests with a 503
    retry_after: str | None = "0"             # its Retry-After (None: no header)
    drop_stream_after_events: int | None = None  # close the client's connection mid-stream
    requests: list[str] = field(default_factory=list)   # paths, as received
    forwarded: int = 0


def create_fake_ingress(b: IngressBehaviour) -> web.Application:
    async def forward(request: web.Request) -> web.StreamResponse:
        b.requests.append(request.path)
        if b.unavailable > 0:
            b.unavailable -= 1
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else {}
            return web.Response(status=503, text=UNAVAILABLE_PAGE, content_type="text/html",
                                headers=headers)
        b.forwarded += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with aiohttp.ClientSession() as session, session.request(
                request.method, b.target + request.path_qs, headers=headers,
                data=await request.read()) as upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP})
            await response.prepare(request)
            events = 0
            async for line in upstream.content:
                if b.drop_stream_after_events is not None and line.startswith(b"data:"):
                    if events == b.drop_stream_after_events:
                        request.transport.close()
                        return response
                    events += 1
                await response.write(line)
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    return app
