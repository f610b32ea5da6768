"""Defects an adversarial review of the gateway found, one test each (each fails on the gateway
before its fix): the connection cap under a burst, model servers' token counts beyond what the
request reserved, the status audited for a stream the model server cut, refusals that kept
their connection open, and two `X-Model` headers."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import requests

from serving.gateway.app import create_app
from serving.gateway.auth import hash_key
from serving.gateway.config import GatewayConfig
from tests.gateway import rawhttp
from tests.gateway.conftest import KEYS, audit_lines
from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

BODY = b'{"inputs": "What is the capital of France?"}'
HUGE = 10**30


def _auth(key: str = "full", model: str = "small") -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[key]}", "X-Model": model,
            "Content-Type": "application/json"}


def _until(check, timeout: float = 5.0):
    """Poll for a state the gateway reaches after the client has its answer (bounded)."""
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def _metric(stack, line_start: str) -> float:
    text = requests.get(f"{stack.url}/metrics", timeout=5).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)]
    return sum(values)


# -- D1: the connection cap holds against a burst -------------------------------------------

@pytest.fixture
def capped(loop, tmp_path):
    upstream = FakeBehaviour(name="small", reply="ok")
    runner, upstream_url = loop.run(loop.serve(create_fake_tgi(upstream)))
    config = GatewayConfig.model_validate({
        "models": {"small": {"backends": {"stable": {"url": upstream_url}}}},
        "keys": [{"id": "full", "sha256": hash_key(KEYS["full"]), "models": ["*"]}],
        "limits": {"maxConnections": 3, "idleTimeoutS": 0.5},
        "auditLog": str(tmp_path / "audit.jsonl")})
    server, url = loop.run(loop.serve_gateway(create_app(config)))
    yield server, url
    loop.run(server.close())
    loop.run(runner.cleanup())


def _answers(clients: list[socket.socket]) -> list[int]:
    """Each client's status: 503 for a refused connection, 0 for one held (it is closed by the
    idle timeout without an answer; the socket timeout only detects a hang)."""
    statuses = []
    for sock in clients:
        status, headers, _ = rawhttp.read_answer(sock, timeout=10)
        if status == 503:
            assert headers["retry-after"] == "1"
        statuses.append(status)
        sock.close()
    return statuses


def test_a_burst_accepted_in_one_pass_holds_at_most_the_cap_and_the_rest_get_503(loop, capped):
    """asyncio calls the listener's factory for a whole batch of accepted connections before
    any of them is made (selector_events.py `_accept_connection2`); this burst is 50 at once."""
    server, _ = capped
    pairs = [socket.socketpair() for _ in range(50)]

    async def burst() -> tuple[int, int]:
        running = asyncio.get_running_loop()
        await asyncio.gather(*(running.connect_accepted_socket(server.counted, ours)
                               for ours, _ in pairs))
        return server.open_connections, len(server.runner.server.connections)

    assert loop.run(burst()) == (3, 3)
    statuses = _answers([theirs for _, theirs in pairs])
    assert (statuses.count(503), statuses.count(0)) == (47, 3)


def test_a_burst_of_tcp_connections_while_the_loop_is_busy_holds_at_most_the_cap(loop, capped):
    """The connections all wait in the listen queue (the loop is held busy) and are accepted in
    one pass; the listen queue holds one more than the backlog, so the burst is cap + 1."""
    server, url = capped
    busy, go = threading.Event(), threading.Event()

    def hold_the_loop() -> None:
        busy.set()
        go.wait(10)
    loop.loop.call_soon_threadsafe(hold_the_loop)
    assert busy.wait(10)
    try:
        clients = [socket.create_connection(rawhttp.address(url), timeout=10) for _ in range(4)]
    finally:
        go.set()
    statuses = _answers(clients)
    assert (statuses.count(503), statuses.count(0)) == (1, 3)
    assert server.open_connections == 0  # all closed: the count came back down


# -- D2: a model server's token count is settled at most at the reservation -------------------

CASES = {
    "tgi whole": ("/generate", {"inputs": "q", "parameters": {"max_new_tokens": 5}}),
    "tgi stream": ("/generate_stream", {"inputs": "q", "parameters": {"max_new_tokens": 5}}),
    "openai whole": ("/v1/completions", {"model": "small", "prompt": "q", "max_tokens": 5}),
    "openai stream": ("/v1/completions", {"model": "small", "prompt": "q", "max_tokens": 5,
                                          "stream": True, "stream_options": {"include_usage": True}}),
}


@pytest.mark.parametrize("case", CASES)
def test_an_absurd_token_count_is_settled_at_the_reservation_and_the_key_is_not_locked_out(
        stack, caplog, case):
    path, body = CASES[case]
    small = stack.upstreams["small"]
    small.generated_tokens = small.usage_tokens = HUGE    # the header, details and usage say 1e30
    small.reply = " ".join(["word"] * 12)                  # and the stream has 12 events, not 5
    for i in range(3):  # tokens40 may generate 40 a minute: 3 x 5 fit only if each counts 5
        prompt = {"inputs" if "inputs" in body else "prompt": f"question {i}"}  # never from cache
        response = requests.post(f"{stack.url}{path}", headers=_auth("tokens40"),
                                 json={**body, **prompt}, timeout=10)
        assert response.status_code == 200, response.text
    usage = stack.gateway.limiter._usage["tokens40"]
    assert _until(lambda: usage.reserved == 0)  # a stream's end is settled after its last byte
    assert usage.token_total == 15
    assert _metric(stack, 'llm_tokens_generated_total{backend="stable",model="small"}') == 15
    warnings = [r.getMessage() for r in caplog.records if "reserved; counted as" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("model 'small' reported ")
    assert warnings[0].endswith("more than the 5 the request reserved; counted as 5 (logged once "
                                "per model)")


# -- D3: a stream the model server cuts is audited with the 200 the client saw ----------------

def test_a_stream_the_model_server_cuts_is_audited_with_the_200_the_client_saw(stack):
    small = stack.upstreams["small"]
    small.reply, small.break_stream_after = "one two three four", 2
    with requests.post(f"{stack.url}/generate_stream", headers=_auth(), data=BODY, stream=True,
                       timeout=10) as response:
        events = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert json.loads(events[-1][5:])["error_type"] == "incomplete_generation"
    assert _until(lambda: len(audit_lines(stack)) == 1)  # written once the stream has ended
    line = audit_lines(stack)[-1]
    assert (line["status"], line["outcome"]) == (200, "upstream_cut")
    assert _metric(stack, 'llm_requests_total{backend="stable",model="small",route="/generate_stream",'
                          'status_class="2xx"}') == 1
    assert _metric(stack, 'llm_requests_failed_total{backend="stable",model="small",'
                          'reason="upstream_cut",route="/generate_stream"}') == 1


# -- D4: a refusal whose body was never read closes its connection ----------------------------

def _closed_by_the_gateway(sock: socket.socket) -> bool:
    """True when the gateway closes the connection; the client never closes it (the timeout
    only detects a connection left open)."""
    sock.settimeout(5)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_a_401_to_expect_100_continue_closes_the_connection(stack):
    head = rawhttp.post("/generate", b"", {"Authorization": "Bearer wrong", "X-Model": "small",
                                            "Expect": "100-continue"}, length=len(BODY))
    with socket.create_connection(rawhttp.address(stack.url), timeout=5) as sock:
        sock.sendall(head)
        assert rawhttp.read_answer(sock)[0] == 401
        assert _closed_by_the_gateway(sock)


def test_a_401_before_the_rest_of_the_body_closes_the_connection(stack):
    request = rawhttp.post("/generate", BODY[:10], {"Authorization": "Bearer wrong"}, length=len(BODY))
    with socket.create_connection(rawhttp.address(stack.url), timeout=5) as sock:
        sock.sendall(request)
        assert rawhttp.read_answer(sock)[0] == 401
        assert _closed_by_the_gateway(sock)


def test_a_408_for_a_body_that_never_arrives_closes_the_connection(stack):
    request = rawhttp.post("/generate", BODY[:10], _auth(), length=len(BODY))
    with socket.create_connection(rawhttp.address(stack.url), timeout=5) as sock:
        sock.sendall(request)
        assert rawhttp.read_answer(sock)[0] == 408
        assert _closed_by_the_gateway(sock)


# -- D5: two X-Model headers ------------------------------------------------------------------

def test_two_x_model_headers_are_refused_not_guessed_between(stack):
    request = rawhttp.post("/generate", BODY, [("Authorization", f"Bearer {KEYS['full']}"),
                                               ("X-Model", "small"), ("X-Model", "llama")])
    status, _, body = rawhttp.exchange(stack.url, request)
    assert (status, json.loads(body)) == (400, {"error": "send one X-Model header (got 2)",
                                                "error_type": "validation"})
    assert audit_lines(stack)[-1]["outcome"] == "validation"
    assert stack.upstreams["small"].requests == [] and stack.upstreams["llama-stable"].requests == []



# -- D6: what aiohttp would hand over unread, and a whole answer to a stream ------------------

def test_a_content_encoding_aiohttp_does_not_decode_is_a_415_in_tgis_shape(stack):
    request = rawhttp.post("/generate", BODY, {**_auth(), "Content-Encoding": "compress"})
    status, _, body = rawhttp.exchange(stack.url, request)
    assert (status, json.loads(body)) == (415, {
        "error": "Content-Encoding 'compress' is not supported; send the body as it is or gzip "
                 "or deflate it", "error_type": "validation"})
    line = audit_lines(stack)[-1]
    assert (line["key_id"], line["status"], line["outcome"]) == ("full", 415, "validation")
    assert stack.upstreams["small"].requests == []


def test_an_unknown_expect_is_a_417_in_tgis_shape_with_an_audit_line(stack):
    request = rawhttp.post("/generate", BODY, {**_auth(), "Expect": "200-ok"})
    with socket.create_connection(rawhttp.address(stack.url), timeout=5) as sock:
        sock.sendall(request)
        status, headers, body = rawhttp.read_answer(sock)
    assert (status, headers["content-type"]) == (417, "application/json; charset=utf-8")
    assert json.loads(body) == {"error": "unknown Expect '200-ok'; only 100-continue is supported",
                                "error_type": "validation"}
    line = audit_lines(stack)[-1]
    assert (line["key_id"], line["status"], line["outcome"]) == ("full", 417, "validation")


def test_an_unknown_expect_from_a_bad_key_is_its_401(stack):
    request = rawhttp.post("/generate", BODY, {"Authorization": "Bearer wrong", "Expect": "200-ok"})
    assert rawhttp.exchange(stack.url, request)[0] == 401


def test_a_whole_json_answer_to_a_stream_request_is_an_upstream_fault(bad_stack):
    bad_stack.lonely.mode = "ok"  # answers 200 application/json whatever was asked
    response = requests.post(f"{bad_stack.url}/generate_stream",
                             headers=bad_stack.headers("full", "lonely"), json={"inputs": "q"},
                             timeout=10)
    assert (response.status_code, response.json()) == (502, {
        "error": "the model server for 'lonely' answered 200 with 'application/json' instead of "
                 "an event stream", "error_type": "unavailable"})
    assert bad_stack.gateway.router.backends[("lonely", "stable")].breaker.failures == 1
