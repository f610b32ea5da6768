"""Relaying a model's SSE stream to the client as it arrives.

Without redaction the relay works on whole chunks (every complete line that has arrived,
one write per chunk): tokens, errors and the final event are found with byte searches
(JSON strings cannot hold a raw newline, so `\\ndata:` only ever starts an event). With
redaction it works line by line, since every event's text has to be rewritten.

Upstream failures (reset, truncation, a line too long, a stall past the read timeout) and a
stream that ends without its final event both make the stream "broken": the client gets
TGI's `incomplete_generation` error event. A client that leaves ends the relay quietly and
aborts the upstream request; it is not the model server's fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from serving.gateway.redaction import StreamRedaction
from serving.gateway.upstream import TRANSPORT_ERRORS

INCOMPLETE = (b"data:" + json.dumps({
    "error": "the model server closed the stream before the generation finished",
    "error_type": "incomplete_generation"}).encode() + b"\n\n")
CLIENT_GONE = (ConnectionResetError, aiohttp.ClientConnectionResetError)


@dataclass
class StreamOutcome:
    tokens: int = 0
    failed: bool = False        # the stream carried (or ended with) an error event
    broken: bool = False        # the model server broke it: counts against its breaker
    client_left: bool = False
    usage: int | None = None    # completion_tokens of an OpenAI usage chunk, if one came
    recorded: list[bytes] | None = field(default_factory=list)
    recorded_bytes: int = 0


class _Recorder:
    def __init__(self, outcome: StreamOutcome, limit: int | None):
        self.outcome, self.limit = outcome, limit
        if limit is None:
            outcome.recorded = None

    def add(self, data: bytes) -> None:
        out = self.outcome
        if out.recorded is not None and self.limit is not None:
            out.recorded.append(data)
            out.recorded_bytes += len(data)
            if out.recorded_bytes > self.limit:  # too large to cache: stop holding it
                out.recorded = None


def errors_in(data: bytes) -> int:
    """Error events in complete SSE lines: TGI's `error_type`, or vLLM's `{"error":{...}}`
    (pydantic's compact JSON; the bytes cannot occur unescaped inside a token's text)."""
    return data.count(b'"error_type"') + data.count(b'{"error":{') + data.count(b'{"error": {')


def usage_in(data: bytes) -> int | None:
    """completion_tokens from the last OpenAI usage chunk in `data` (vLLM sends it last when
    the client asked for `stream_options.include_usage`), or None."""
    found = None
    for line in data.split(b"\n"):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                event = json.loads(line[5:])
            except ValueError:
                continue
            usage = event.get("usage") if isinstance(event, dict) else None
            tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
            if type(tokens) is int:
                found = max(0, tokens)
    return found


def stream_finished(last: bytes) -> bool:
    """Whether the last event of a stream is the one that ends it (TGI or OpenAI)."""
    if last.startswith(b"data: [DONE]"):
        return True
    try:
        event = json.loads(last[5:]) if last.startswith(b"data:") else None
    except ValueError:
        return False
    return isinstance(event, dict) and (event.get("generated_text") is not None or "error" in event)


async def relay_stream(response: web.StreamResponse, upstream: aiohttp.ClientResponse,
                       redaction: StreamRedaction | None, record_limit: int | None,
                       first_token: Callable[[], None],
                       outcome: StreamOutcome | None = None) -> StreamOutcome:
    """Copy the upstream stream to `response` (already prepared). `outcome` is filled in as
    the relay goes, so a caller that is cancelled still knows what was sent."""
    outcome = outcome if outcome is not None else StreamOutcome()
    recorder = _Recorder(outcome, record_limit)
    relay = _relay_lines if redaction is not None else _relay_chunks
    try:
        last = await relay(response, upstream, redaction, outcome, recorder, first_token)
    except CLIENT_GONE:
        upstream.close()  # the client left: abort the upstream request, don't drain it
        outcome.client_left = True
        return outcome
    if last is None or (not outcome.failed and not stream_finished(last)):
        outcome.broken = True
    if outcome.broken:
        outcome.failed = True
        try:
            await response.write(INCOMPLETE)
        except CLIENT_GONE:
            outcome.client_left = True
    return outcome


async def _relay_chunks(response, upstream, _redaction, outcome, recorder, first_token) -> bytes | None:
    """Returns the last data line, or None if reading the upstream failed."""
    carry, last, started = b"", b"", False
    while True:
        try:
            chunk = await upstream.content.readany()
        except TRANSPORT_ERRORS:
            return None
        if not chunk:
            break
        data = carry + chunk
        end = data.rfind(b"\n") + 1
        head, carry = data[:end], data[end:]
        if not head:
            continue
        events = head.count(b"\ndata:") + head.startswith(b"data:")
        if events:
            if not started:
                started = True
                first_token()
            found = head.rfind(b"\ndata:")
            last = head[found + 1:] if found >= 0 else head
            errors = errors_in(head)
            if errors:
                outcome.failed = True
            outcome.tokens += events - errors - head.count(b"data: [DONE]")
            if b'"usage"' in head:
                usage = usage_in(head)
                outcome.usage = usage if usage is not None else outcome.usage
        await response.write(head)
        recorder.add(head)
    if carry:
        await response.write(carry)
        recorder.add(carry)
        if carry.startswith(b"data:"):
            last = carry
    return last.strip()


async def _relay_lines(response, upstream, redaction, outcome, recorder, first_token) -> bytes | None:
    last, started = b"", False
    while True:
        try:
            line = await upstream.content.readline()
        except TRANSPORT_ERRORS:
            return None
        if not line:
            break
        if line.startswith(b"data:"):
            last = line
            if line.startswith(b"data: [DONE]"):
                for held in redaction.rest():
                    await response.write(held)
                    recorder.add(held)
            else:
                if not started:
                    started = True
                    first_token()
                line = redaction.line(line)
                if errors_in(line):
                    outcome.failed = True
                else:
                    outcome.tokens += 1
                if b'"usage"' in line:
                    usage = usage_in(line)
                    outcome.usage = usage if usage is not None else outcome.usage
        await response.write(line)
        recorder.add(line)
    return last.strip()
