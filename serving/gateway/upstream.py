"""Talking to one model server: what can go wrong on the wire, named for the client.

Every transport failure becomes a `Fault` with a kind the router acts on ("down": nothing
accepted the request, try elsewhere; "broken": it had the request and answered badly or not
at all, not retried; "timeout") and a sentence for the client. Nothing here knows about
breakers or metrics; the caller counts.
"""

from __future__ import annotations

import errno
import json
from typing import Any

import aiohttp

#: What the gateway catches from aiohttp's client: every transport error it can raise.
TRANSPORT_ERRORS = (aiohttp.ClientError, OSError, ValueError)


class Fault(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind, self.detail = kind, detail


def fault_of(exc: BaseException, answered: bool) -> Fault:
    """Name a transport error. `answered`: the status line had arrived."""
    if isinstance(exc, TimeoutError):
        return Fault("timeout", "it did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Fault("down", "nothing accepted the connection")
    if isinstance(exc, aiohttp.ServerDisconnectedError) and not answered:
        # the request was sent: the server may have started on it, so it is not "down" (a
        # generation is not idempotent: not retried elsewhere). A pooled connection the
        # server closed while idle is the benign case; the pool's keep-alive is kept below
        # the model servers' own (app.py) so the gateway closes first.
        return Fault("broken", "it closed the connection without answering")
    if isinstance(exc, aiohttp.ClientPayloadError) or (
            isinstance(exc, aiohttp.ServerDisconnectedError) and answered):
        return Fault("broken", "its answer was cut short")
    if isinstance(exc, aiohttp.ClientResponseError):
        return Fault("broken", "it sent a malformed HTTP answer")
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return Fault("broken", "the connection was reset")
    return Fault("broken", f"its connection failed ({type(exc).__name__})")


def tgi_error(raw: bytes) -> dict[str, Any] | None:
    """The body if it is TGI's error shape, else None."""
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body
    return None


def json_body(raw: bytes) -> Any:
    """The parsed answer, or None if it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return None
