"""Properties of the transport, over raw HTTP bytes sent to a running gateway on loopback:
header names and values as arbitrary bytes, duplicate and conflicting headers, lengths and
encodings that lie, chunked framing right and wrong, `Expect: 100-continue`, and clients that
close (FIN or reset) at any byte offset. Whatever arrives:

- no 5xx (the model server behind is healthy, so a 5xx would be the client's doing);
- no ERROR log line and no traceback;
- a request that reached the gateway with the key gets exactly one audit line, whose status
  is the one the client saw; no request gets more than one;
- the key's token budget is never exceeded and every reservation is settled;
- once the client is gone, no connection, in-flight request or waiting gauge is left over.

Bounded: GATEWAY_FUZZ_EXAMPLES (default 50) examples, so it runs within `make test`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import socket
import time
import zlib

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from tests.gateway import rawhttp
from tests.gateway.conftest import KEYS, Loop
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

EXAMPLES = int(os.environ.get("GATEWAY_FUZZ_EXAMPLES", "50"))
#: `make test` runs the same examples every time (hypothesis's advice for CI); a deeper run
#: (GATEWAY_FUZZ_EXAMPLES=1500) explores afresh, and at that depth still finds rare races
#: (docs/gateway.md, "Known gaps").
EXPLORE = "GATEWAY_FUZZ_EXAMPLES" in os.environ
BUDGET = 3000
GOOD_AUTH = f"Bearer {KEYS['full']}".encode()
ROUTES = ("/generate", "/generate_stream", "/", "/v1/chat/completions", "/v1/completions")


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def fuzz_stack(request, tmp_path_factory):
    """The gateway on asyncio's loop and on uvloop (production's), each in its own thread."""
    loop = Loop(request.param)
    upstream = FakeBehaviour(name="small", reply="one two three four five six")
    runner, upstream_url = loop.run(loop.serve(create_fake_tgi(upstream)))
    audit = tmp_path_factory.mktemp("fuzz") / "audit.jsonl"
    config = GatewayConfig.model_validate({
        "models": {"small": {"backends": {"stable": {"url": upstream_url}}, "maxNewTokens": 50}},
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"],
                  "requestsPerMinute": 100_000, "tokensPerMinute": BUDGET}],
        "limits": {"bodyTimeoutS": 0.3, "maxBodyBytes": 4096, "idleTimeoutS": 2},
        "cache": {"enabled": True}, "auditLog": str(audit)})
    server, url = loop.run(loop.serve_gateway(create_app(config)))
    yield server, url, audit
    loop.run(server.close())
    loop.run(runner.cleanup())
    loop.stop()


# -- the request, piece by piece ---------------------------------------------------------------

token_bytes = st.binary(min_size=1, max_size=12)
any_bytes = st.binary(max_size=24)
header_name = st.one_of(st.sampled_from([b"X-Model", b"Content-Type", b"Authorization", b"Host",
                                         b"Content-Length", b"Transfer-Encoding",
                                         b"Content-Encoding", b"Expect", b"Connection"]),
                        token_bytes)


@st.composite
def bodies(draw, route: str) -> bytes:
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=64))
    if route == "/v1/chat/completions":
        body = {"model": "small", "messages": [{"role": "user", "content": draw(st.text(max_size=12))}]}
    elif route == "/v1/completions":
        body = {"model": "small", "prompt": draw(st.text(min_size=1, max_size=12))}
    else:
        body = {"inputs": draw(st.text(min_size=1, max_size=12)),
                "parameters": draw(st.fixed_dictionaries({}, optional={
                    "max_new_tokens": st.integers(-1, 60), "best_of": st.integers(1, 3),
                    "seed": st.integers(0, 2), "do_sample": st.booleans()}))}
    if draw(st.booleans()):
        body["stream"] = draw(st.booleans())
    return json.dumps(body).encode()


@st.composite
def framed(draw, body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Framing headers and the bytes on the wire: honest or not."""
    encoding = draw(st.sampled_from([None, b"gzip", b"deflate", b"br", b"identity", b"x-lie"]))
    headers: list[tuple[bytes, bytes]] = []
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
        if draw(st.booleans()):  # sometimes the encoding is true
            body = gzip.compress(body) if encoding == b"gzip" else (
                zlib.compress(body) if encoding == b"deflate" else body)
    kind = draw(st.sampled_from(["length", "length", "lying", "twice", "none", "chunked", "both"]))
    if kind in ("length", "both"):
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif kind == "lying":
        headers.append((b"Content-Length", str(max(0, len(body) + draw(st.integers(-5, 5)))).encode()))
    elif kind == "twice":
        headers += [(b"Content-Length", str(len(body)).encode()),
                    (b"Content-Length", str(len(body) + draw(st.integers(1, 3))).encode())]
    if kind in ("chunked", "both"):
        headers.append((b"Transfer-Encoding", draw(st.sampled_from([b"chunked", b"gzip, chunked",
                                                                     b"chunked, chunked", b"xchunked"]))))
        size = draw(st.integers(1, 16))
        pieces = [body[i:i + size] for i in range(0, len(body), size)]
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p) + draw(st.sampled_from([0, 0, 0, 1, -1])), p)
                        for p in pieces)
        body = wire + draw(st.sampled_from([b"0\r\n\r\n", b"", b"0\r\n", b"zz\r\n\r\n"]))
    return headers, body


@st.composite
def raw_request(draw) -> tuple[bytes, bool, int | None]:
    """(bytes, sent with exactly one Authorization header holding the valid key, byte offset
    to close at or None)."""
    route = draw(st.sampled_from(ROUTES))
    body = draw(bodies(route))
    headers, wire_body = draw(framed(body))
    auth = draw(st.sampled_from(["good", "good", "good", "bad", "bytes", "none", "twice"]))
    if auth in ("good", "twice"):
        headers.append((b"Authorization", GOOD_AUTH))
    if auth == "twice":
        headers.append((b"Authorization", b"Bearer sk-other"))
    elif auth == "bad":
        headers.append((b"Authorization", b"Bearer " + draw(any_bytes)))
    elif auth == "bytes":
        headers.append((b"Authorization", draw(any_bytes)))
    if draw(st.booleans()):
        headers.append((b"X-Model", draw(st.one_of(st.just(b"small"), any_bytes))))
    if draw(st.integers(0, 5)) == 0:
        headers.append((b"Expect", draw(st.sampled_from([b"100-continue", b"nothing"]))))
    if draw(st.integers(0, 2)) == 0:  # noise: most of it makes the request unreadable to aiohttp
        headers += draw(st.lists(st.tuples(header_name, any_bytes), min_size=1, max_size=3))
    headers = draw(st.permutations(headers))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
    head = b"POST " + route.encode() + b" " + version + b"\r\nHost: gateway\r\n"
    head += b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    data = head + b"\r\n" + wire_body
    cut = draw(st.one_of(st.none(), st.none(), st.integers(0, len(data))))
    keys = [value for name, value in headers if name.lower() == b"authorization"]
    return data, keys == [GOOD_AUTH], cut


# -- the properties ----------------------------------------------------------------------------

def _audit(path) -> list[dict]:
    with open(path) as lines:
        return [json.loads(line) for line in lines]


def _quiet(server, accepted: int, timeout: float = 5.0) -> bool:
    """No connection, request or waiting gauge left once the client is gone. The client's
    connection must have been accepted first (`accepted`: the count before it was opened):
    a client that closes at once can be done before the gateway's loop has even accepted
    it, and its request would then be handled, and audited, during the next example."""
    gateway = server.gateway
    deadline = time.time() + timeout
    while time.time() < deadline:
        if (server.counted.accepted > accepted and not server.runner.server.connections
                and server.open_connections == 0 and gateway.inflight == 0):
            return True
        time.sleep(0.01)
    return False


def _send(url: str, data: bytes, cut: int | None) -> tuple[int, bool]:
    """Send; with `cut`, close there (FIN or reset); else read the answer: its status (0: none)
    and whether the gateway's code gave it (JSON or SSE; aiohttp's parser answers text)."""
    with socket.create_connection(rawhttp.address(url), timeout=5) as sock:
        if cut is not None:
            sock.sendall(data[:cut])
            if cut % 2:
                rawhttp.reset(sock)
            return 0, False
        sock.sendall(data)
        status, headers, _ = rawhttp.read_answer(sock, timeout=5)
        kind = headers.get("content-type", "")
        return status, kind.startswith(("application/json", "text/event-stream"))


@given(request=raw_request())
@settings(max_examples=EXAMPLES, deadline=None, derandomize=not EXPLORE,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@pytest.mark.long_pole
def test_no_transport_abuse_causes_a_5xx_a_traceback_a_lost_audit_line_or_a_leak(fuzz_stack, caplog,
                                                                                 request):
    server, url, audit = fuzz_stack
    caplog.clear()
    caplog.set_level(logging.INFO)
    data, keyed, cut = request
    before, accepted = len(_audit(audit)), server.counted.accepted
    status, from_gateway = _send(url, data, cut)
    event(f"status {status}" if cut is None else "closed early")
    assert _quiet(server, accepted), "a connection or request outlived its client"
    lines = [line for line in _audit(audit)[before:] if line["key_id"] == "full"]
    assert status < 500, (status, data[:300])
    assert len(lines) <= 1, lines
    assert all(line["status"] < 500 for line in lines), lines
    if cut is None and keyed and lines:
        assert lines[0]["status"] == status or (status == 200 and lines[0]["outcome"] == "ok")
    if keyed and from_gateway:  # aiohttp's parser refusals (text) never reach the gateway's code
        assert len(lines) == 1, (status, data[:300])
    usage = server.gateway.limiter._usage.get("full")
    if usage is not None:
        assert usage.reserved == 0 and usage.token_total <= BUDGET
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], problems
    assert server.gateway.metrics.waiting.labels("small")._value.get() == 0
