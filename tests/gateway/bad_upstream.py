"""A model server that misbehaves on the wire, written on raw sockets so it can do what no
well-behaved HTTP library would: reset, send a broken status line, cut a body short, answer
with a proxy's HTML page, or stall mid-body."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from dataclasses import dataclass, field

#: What the server does with the next request.
MODES = ("ok", "reset", "close", "bad_status", "truncated", "html", "html_200", "slow_body",
         "stream_ok", "stream_truncated", "stream_slow", "stream_garbage", "tgi_error")


@dataclass
class Misbehaviour:
    mode: str = "ok"
    text: str = "fine"
    requests: int = 0
    handlers: set = field(default_factory=set)   # live connection tasks, cancelled at teardown

    def stop(self) -> None:
        for task in list(self.handlers):
            task.cancel()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return await reader.readexactly(length)


def _response(status: str, body: bytes, content_type: str = "application/json",
              length: int | None = None) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n\r\n").encode() + body


def _event(i: int, text: str, last: bool) -> bytes:
    event = {"index": i, "token": {"id": i, "text": text, "logprob": -0.1, "special": False},
             "generated_text": text if last else None, "details": None}
    return b"data:" + json.dumps(event).encode() + b"\n\n"


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def make_handler(b: Misbehaviour):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        b.handlers.add(task)
        try:
            while True:
                try:
                    await _read_request(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                b.requests += 1
                if not await _answer(b, writer):
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            b.handlers.discard(task)
            writer.transport.abort()
    return handle


async def _answer(b: Misbehaviour, writer: asyncio.StreamWriter) -> bool:
    """Write one answer; False when the connection is done."""
    whole = json.dumps({"generated_text": b.text,
                        "details": {"generated_tokens": 1, "finish_reason": "length",
                                    "tokens": [{"id": 0, "text": b.text, "logprob": 0.0,
                                                "special": False}]}}).encode()
    stream_head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
    mode = b.mode
    if mode == "reset":
        _reset(writer)
        return False
    if mode == "close":
        return False
    if mode == "bad_status":
        writer.write(b"HTTP/1.1 2OO Fine\r\nContent-Length: 2\r\n\r\n{}")
    elif mode == "truncated":
        writer.write(_response("200 OK", whole[:10], length=len(whole)))
        await writer.drain()
        return False
    elif mode == "html":
        writer.write(_response("503 Service Unavailable", b"<html><body>upstream gone</body></html>",
                               "text/html"))
    elif mode == "html_200":
        writer.write(_response("200 OK", b"<html><body>login</body></html>", "text/html"))
    elif mode == "tgi_error":
        writer.write(_response("500 Internal Server Error", json.dumps(
            {"error": "Request failed during generation", "error_type": "generation"}).encode()))
    elif mode == "slow_body":
        writer.write(_response("200 OK", whole[:5], length=len(whole)))
        await writer.drain()
        await asyncio.sleep(3600)
    elif mode.startswith("stream"):
        writer.write(stream_head + _event(0, b.text, mode != "stream_ok" and False))
        if mode == "stream_ok":
            writer.write(_event(1, " end", True))
        elif mode == "stream_garbage":
            writer.write(b"data:{not json\n\n" + b"x" * 200_000 + b"\n\n")
        elif mode == "stream_slow":
            await writer.drain()
            await asyncio.sleep(3600)
        await writer.drain()
        return False  # truncated: the stream ends without its final event
    else:
        writer.write(_response("200 OK", whole))
    await writer.drain()
    return True


async def start_bad_upstream(b: Misbehaviour) -> tuple[asyncio.AbstractServer, str]:
    server = await asyncio.start_server(make_handler(b), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"
