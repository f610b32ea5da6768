"""The gateway's listener: a cap on open connections, quiet accept errors, file descriptors
enough for both, and a drain on SIGTERM.

- Beyond `maxConnections` a new connection is answered `503` with `Retry-After` and closed at
  once, so it never holds a descriptor or a handler; the cap counts connections from their
  acceptance (a burst accepted in one pass cannot slip past it) and, with the listen backlog,
  sits below the descriptor limit (raised at start up to the hard limit), so `accept()` does
  not fail with EMFILE.
- Connections that send no complete request for `idleTimeoutS` (idle keep-alive, or headers
  that never finish) are closed: aiohttp 3.14 arms its keep-alive timer when a connection is
  made and closes it if the handler is still waiting for a request (web_protocol.py
  `connection_made`, `_process_keepalive`).
- aiohttp's `handler_cancellation` is on: a client that leaves cancels its handler, which
  cancels the upstream request (web_protocol.py `connection_lost`).
- asyncio logs "socket.accept() out of system resource" with a traceback every time accept
  fails that way (selector_events.py `_accept_connection`); the loop's exception handler
  here lets one such line through per `ACCEPT_LOG_EVERY_S` with the count it held back.
- Drain: readiness fails and new requests get 503 with Retry-After, while in-flight requests
  and streams finish (up to the drain window); then the listener closes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import http_parser, web

from serving.gateway.app import APP_STATE
from serving.gateway.logs import quiet_parser_errors

LOG = logging.getLogger("llmops.gateway")
ACCEPT_LOG_EVERY_S = 10.0
#: Descriptors the process needs besides client and upstream connections (listener, logs,
#: audit file, config, the event loop's own).
FD_HEADROOM = 64
#: The listen backlog at most: also the most connections asyncio accepts in one pass.
ACCEPT_BATCH = 128
OVERLOADED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
              b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s")


def _overloaded_answer(retry_after: int, cap: int) -> bytes:
    body = (b'{"error": "the gateway is at its limit of %d open connections; retry later", '
            b'"error_type": "overloaded"}' % cap)
    return OVERLOADED % (retry_after, len(body), body)


class _Refuse(asyncio.Protocol):
    """A connection beyond the cap: one 503, then closed (the request is not read)."""

    def __init__(self, answer: bytes):
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self._answer)  # type: ignore[attr-defined]
        transport.close()

    def data_received(self, data: bytes) -> None:
        pass


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one connection, held in the cap's count from its creation until
    the transport reports the connection lost (the transport calls only these methods)."""

    __slots__ = ("_cap", "_counted", "_handler")

    def __init__(self, handler: asyncio.Protocol, cap: ConnectionCap):
        self._handler, self._cap, self._counted = handler, cap, True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._cap.open -= 1
        self._handler.connection_lost(exc)


class ConnectionCap:
    """The protocol factory the listener uses: aiohttp's below the cap, `_Refuse` above it.

    It keeps its own count, raised here and lowered in `connection_lost`: aiohttp's
    `Server.connections` lists a handler only from its `connection_made` (web_server.py,
    aiohttp 3.14.5), and asyncio accepts up to `backlog` connections in one pass, calls this
    factory for each of them in turn and only then runs their `connection_made`, scheduled
    with call_soon (CPython 3.11 selector_events.py `_accept_connection`,
    `_accept_connection2`, `_SelectorSocketTransport.__init__`), so against aiohttp's list a whole
    burst would be let in."""

    def __init__(self, server: web.Server, cap: int, retry_after: int, on_shed):
        self.server, self.cap, self._on_shed = server, cap, on_shed
        self._answer = _overloaded_answer(retry_after, cap)
        self.open = 0
        self.accepted = 0  # every connection accepted, refused ones included

    def __call__(self) -> asyncio.Protocol:
        self.accepted += 1
        if self.open >= self.cap:
            self._on_shed()
            return _Refuse(self._answer)
        self.open += 1
        return _Counted(self.server(), self)


class AcceptErrorLog:
    """The loop's exception handler: accept failures at most once per interval."""

    def __init__(self, every_s: float = ACCEPT_LOG_EVERY_S, clock=time.monotonic):
        self.every_s, self._clock = every_s, clock
        self._last = -every_s
        self.held = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != "socket.accept() out of system resource":
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if now - self._last < self.every_s:
            self.held += 1
            return
        exc = context.get("exception")
        LOG.error("accept() failed: %s (out of file descriptors or memory; %d more such failures "
                  "in the last %.0f s not logged)", exc, self.held, self.every_s)
        self._last, self.held = now, 0


def ensure_fd_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to `needed` (up to the hard limit); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return needed if soft == resource.RLIM_INFINITY else soft


@dataclass
class GatewayServer:
    """One running gateway: its app, runner and listener."""

    app: web.Application
    runner: web.AppRunner
    listener: asyncio.AbstractServer
    max_connections: int
    counted: ConnectionCap | None = None  # the connections held against the cap

    @property
    def open_connections(self) -> int:
        return self.counted.open if self.counted is not None else 0

    @property
    def url(self) -> str:
        host, port = self.listener.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def gateway(self):
        return self.app[APP_STATE]

    async def drain(self, window_s: float) -> bool:
        """Fail readiness, refuse new requests with 503, let in-flight ones finish (up to
        `window_s`); True if they all did."""
        self.gateway.begin_drain()
        return await self.gateway.wait_idle(window_s)

    async def close(self, timeout_s: float = 1.0) -> None:
        self.listener.close()
        self.runner.server.pre_shutdown()  # idle keep-alive connections go now
        await self.runner.cleanup()


async def start_server(app: web.Application, host: str, port: int,
                       max_connections: int | None = None) -> GatewayServer:
    """Start the gateway on host:port with its caps (the config's unless overridden)."""
    gateway = app[APP_STATE]
    limits = gateway.config.limits
    cap = max_connections or limits.max_connections
    # the listen backlog is also how many connections asyncio accepts in one pass before any
    # is answered (selector_events.py `_accept_connection`): a burst may hold that many
    # descriptors beyond the cap until the refused ones are closed
    backlog = min(cap, ACCEPT_BATCH)
    needed = cap + backlog + limits.max_inflight_requests + FD_HEADROOM
    available = ensure_fd_limit(needed)
    if needed > available:
        spare = available - limits.max_inflight_requests - FD_HEADROOM
        fitted = max(1, spare - min(ACCEPT_BATCH, spare // 2))
        backlog = max(1, min(fitted, ACCEPT_BATCH))
        LOG.warning("the file descriptor limit is %d: open connections capped at %d instead of %d",
                    available, fitted, cap)
        cap = fitted
    quiet_parser_errors()
    # lingering_time=0: a refusal whose body was never read closes its connection once the
    # answer is written; aiohttp would otherwise read and discard that body for up to 10 s
    # first, even when the response says `Connection: close` (web_protocol.py `start`, the
    # "lingering close" branch, which only `RequestHandler.force_close` skips), 3.14.5
    # auto_decompress=False: the gateway decodes request bodies itself (codings.py), so a
    # coding aiohttp cannot decode reaches it to be refused in its own shape
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                           keepalive_timeout=limits.idle_timeout_s, shutdown_timeout=1.0,
                           lingering_time=0, auto_decompress=False)
    await runner.setup()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrorLog())
    factory = ConnectionCap(runner.server, cap, limits.retry_after_s,
                            gateway.metrics.shed.labels("connections").inc)
    gateway.metrics.connections.set_function(lambda: factory.open)
    listener = await loop.create_server(factory, host, port, reuse_address=True, backlog=backlog)
    return GatewayServer(app, runner, listener, cap, factory)


def run(main: Coroutine[Any, Any, None], loop: str = "uvloop") -> None:
    """Run the gateway's main coroutine to its end on the named event loop: uvloop (libuv),
    production's, which took 12-20 % off the gateway's CPU per request in bench/gateway.py's
    same-run comparisons (docs/gateway.md, Performance), or asyncio's own.

    The loops differ when accept() fails. asyncio logs it (`AcceptErrorLog` rate-limits that)
    and retries a second later. libuv handles EMFILE/ENFILE itself (libuv src/unix/stream.c
    `uv__server_io`, `uv__emfile_trick`: it frees a reserved descriptor, accepts and closes
    the waiting connections, and keeps listening) and logs nothing; any other accept error
    reaches uvloop, which closes the listener (uvloop 0.23.0 handles/streamserver.pyx
    `UVStreamServer._fatal_error`), so /health fails on it and the kubelet restarts the pod.
    The connection cap keeps the process below its descriptor limit on either loop."""
    if loop == "uvloop":
        import uvloop
        uvloop.run(main)
    else:
        asyncio.run(main)


async def serve_until_signalled(app: web.Application, host: str, port: int, drain_s: float,
                                max_connections: int | None = None) -> None:
    """Run until SIGTERM/SIGINT, then drain for up to `drain_s` and stop."""
    server = await start_server(app, host, port, max_connections)
    print(f"llmops gateway listening on {server.url} (at most {server.max_connections} "
          f"connections; {type(asyncio.get_running_loop()).__module__.split('.')[0]} event loop)",
          flush=True)
    # http_parser.py defines HttpRequestParserC only when its C extension loads
    if getattr(http_parser, "HttpRequestParserC", None) is not http_parser.HttpRequestParser:
        LOG.warning("aiohttp's C HTTP parser (llhttp) is not in use: every request is parsed "
                    "in Python, several times slower")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    LOG.info("draining: readiness fails, new requests get 503, in-flight ones have %.0f s", drain_s)
    if not await server.drain(drain_s):
        LOG.warning("drain window over with %d requests still in flight; they are cut",
                    server.gateway.inflight)
    await server.close()
