"""Races the exploratory transport fuzzing found (GATEWAY_FUZZ_EXAMPLES=1500), each made
deterministic here: the gateway's loop is held still while the client's bytes (and its close)
reach the kernel, so the loop then sees them in one go, in the order that lost the race."""

from __future__ import annotations

import logging
import socket
import threading
import time

import requests

from tests.gateway import rawhttp
from tests.gateway.conftest import KEYS, audit_lines, until

BODY = b'{"inputs": "What is the capital of France?"}'


def _hold_loop(stack, seconds: float) -> threading.Event:
    """Block the gateway's event loop for `seconds`; the event is set once it is blocked."""
    blocked = threading.Event()

    def block() -> None:
        blocked.set()
        time.sleep(seconds)
    stack.loop.loop.call_soon_threadsafe(block)
    assert blocked.wait(5)
    return blocked


def test_a_client_that_closes_right_after_its_expect_100_continue_headers_is_client_gone_not_an_error(
        stack, caplog):
    """The fuzz example: a whole request with `Expect: 100-continue` and the client's FIN
    right behind it. aiohttp closes the transport on the FIN before the handler writes
    `100 Continue`; that write raised out of the expect handler, so aiohttp logged "Error
    handling request" with a traceback and the keyed request left no audit line."""
    caplog.set_level(logging.INFO)
    headers = {"Authorization": f"Bearer {KEYS['full']}", "X-Model": "small",
               "Expect": "100-continue"}
    request = rawhttp.post("/generate", BODY, headers)
    before = len(audit_lines(stack))
    forwarded = len(stack.upstreams["small"].requests)
    _hold_loop(stack, 0.3)
    with socket.create_connection(rawhttp.address(stack.url)) as sock:
        sock.sendall(request)  # then closed (FIN) while the loop is still held
    lines = until(lambda: audit_lines(stack)[before:])
    assert [(line["key_id"], line["status"], line["outcome"]) for line in lines] == [
        ("full", 499, "client_gone")]
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == []
    assert len(stack.upstreams["small"].requests) == forwarded, "a request whose client left was forwarded"


def test_a_request_is_in_flight_until_its_audit_line_is_written(stack):
    """A drain (or a test reading the audit file from another thread) waits for the requests
    in flight to reach zero; a request used to leave that count before its audit line was
    written, so "nothing in flight" could be seen with its line still missing."""
    gateway = stack.gateway
    seen: list[int] = []
    record = gateway.audit.record

    def spy(*args, **kwargs):
        seen.append(gateway.inflight)
        return record(*args, **kwargs)
    gateway.audit.record = spy
    ok = requests.post(f"{stack.url}/generate", data=BODY, headers=stack.headers("full", "small"),
                       timeout=5)
    refused = requests.post(f"{stack.url}/generate", data=BODY, headers=stack.headers("full", "nope"),
                            timeout=5)
    assert (ok.status_code, refused.status_code) == (200, 404)
    assert seen == [1, 1]
