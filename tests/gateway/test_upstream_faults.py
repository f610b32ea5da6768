"""A model server that misbehaves is the gateway's problem, never the client's: every fault
is a TGI-shaped 502/504 that the breaker and the metrics see, breakers always resolve, and
fallback respects what the key may use."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from serving.gateway.routing import CLOSED, HALF_OPEN, OPEN
from tests.gateway.conftest import KEYS, audit_lines


def _post(stack, model="lonely", key="full", path="/generate", **body):
    body = body or {"inputs": "q"}
    return requests.post(f"{stack.url}{path}", headers=stack.headers(key, model), json=body, timeout=15)


def _metrics(stack) -> str:
    return requests.get(f"{stack.url}/metrics", timeout=5).text


def _breaker(stack, model="lonely"):
    return stack.gateway.router.backends[(model, "stable")].breaker


@pytest.mark.parametrize(("mode", "status", "message"), [
    ("reset", 502, "the model server for 'lonely' failed: the connection was reset"),
    ("bad_status", 502, "the model server for 'lonely' failed: it sent a malformed HTTP answer"),
    ("truncated", 502, "the model server for 'lonely' failed: its answer was cut short"),
    ("html", 502, "the model server for 'lonely' answered 503 without a TGI error body"),
    ("html_200", 502, "the model server for 'lonely' answered 200 with a body that is not JSON"),
    ("slow_body", 504, "model 'lonely' did not answer in time"),
])
def test_an_upstream_fault_is_a_tgi_shaped_5xx_the_breaker_and_metrics_see(bad_stack, mode, status, message):
    bad_stack.lonely.mode = mode
    response = _post(bad_stack)
    assert response.status_code == status
    assert response.json() == {"error": message,
                               "error_type": "timeout" if status == 504 else "unavailable"}
    assert _breaker(bad_stack).failures == 1
    reason = "timeout" if status == 504 else "upstream_error"
    assert (f'llm_requests_failed_total{{backend="stable",model="lonely",reason="{reason}",'
            f'route="/generate"}} 1.0') in _metrics(bad_stack)


def test_a_tgi_error_from_the_model_passes_through_in_its_own_shape(bad_stack):
    bad_stack.lonely.mode = "tgi_error"
    response = _post(bad_stack)
    assert response.status_code == 500
    assert response.json() == {"error": "Request failed during generation", "error_type": "generation"}


def test_one_client_body_that_breaks_the_model_does_not_open_the_breaker_for_everyone(bad_stack):
    bad_stack.lonely.mode = "tgi_error"
    for _ in range(5):
        assert _post(bad_stack, inputs="poison").status_code == 500
    assert _breaker(bad_stack).state == CLOSED
    for i in range(3):
        _post(bad_stack, inputs=f"different {i}")
    assert _breaker(bad_stack).state == OPEN


def test_a_half_open_probe_that_hits_a_fault_reopens_and_a_later_probe_can_close(bad_stack):
    bad_stack.lonely.mode = "reset"
    for _ in range(3):
        _post(bad_stack)
    breaker = _breaker(bad_stack)
    assert breaker.state == OPEN
    assert _post(bad_stack).json()["error_type"] == "unavailable"   # refused while open
    breaker.opened_at -= 60
    assert breaker.state == HALF_OPEN
    assert _post(bad_stack).status_code == 502                       # the probe fails
    assert breaker.state == OPEN
    breaker.opened_at -= 60
    bad_stack.lonely.mode = "ok"
    assert _post(bad_stack).status_code == 200                       # the next probe heals it
    assert breaker.state == CLOSED


def test_a_probe_whose_client_leaves_still_resolves_the_breaker(bad_stack):
    bad_stack.lonely.mode = "reset"
    for _ in range(3):
        _post(bad_stack)
    breaker = _breaker(bad_stack)
    breaker.opened_at -= 60
    assert breaker.state == HALF_OPEN
    bad_stack.lonely.mode = "slow_body"
    host, port = bad_stack.url.removeprefix("http://").split(":")
    body = b'{"inputs": "q"}'
    with socket.create_connection((host, int(port))) as sock:  # the probe's client sends, then leaves
        sock.sendall(b"POST /generate HTTP/1.1\r\nHost: gw\r\nX-Model: lonely\r\n"
                     + f"Authorization: Bearer {KEYS['full']}\r\n".encode()
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        time.sleep(0.2)
    deadline = time.time() + 10
    while time.time() < deadline and breaker._probing:  # the handler is cancelled: no verdict,
        time.sleep(0.05)                                # the probe slot is released
    assert breaker.state == HALF_OPEN and not breaker._probing
    bad_stack.lonely.mode = "ok"
    assert _post(bad_stack).status_code == 200                # the next request is the probe
    assert breaker.state == CLOSED


def test_the_breaker_gauge_follows_the_clock_without_traffic(bad_stack):
    bad_stack.lonely.mode = "reset"
    for _ in range(3):
        _post(bad_stack)
    assert 'llm_circuit_breaker_state{backend="stable",model="lonely"} 2.0' in _metrics(bad_stack)
    _breaker(bad_stack).opened_at -= 60
    assert 'llm_circuit_breaker_state{backend="stable",model="lonely"} 1.0' in _metrics(bad_stack)


def test_every_backend_refusing_connections_falls_back_at_once(bad_stack):
    bad_stack.take_down("flaky")
    response = _post(bad_stack, model="flaky")
    assert response.status_code == 200
    assert response.json()["generated_text"] == "steady answer"


@pytest.mark.parametrize(("mode", "fault"), [("close", "it closed the connection without answering"),
                                             ("reset", "the connection was reset")])
def test_a_server_that_had_the_request_and_failed_is_a_502_not_retried_elsewhere(bad_stack, mode, fault):
    bad_stack.flaky.mode = mode  # it read the request: it may be generating, so no second try
    response = _post(bad_stack, model="flaky")
    assert response.status_code == 502
    assert response.json() == {"error": f"the model server for 'flaky' failed: {fault}",
                               "error_type": "unavailable"}
    assert bad_stack.flaky.requests == 1 and bad_stack.steady.requests == []


def test_fallback_only_to_a_model_the_key_may_use(bad_stack):
    bad_stack.take_down("flaky")
    response = _post(bad_stack, model="flaky", key="flaky-only")
    assert response.status_code == 503
    assert bad_stack.steady.requests == []
    audit = audit_lines(bad_stack)
    assert audit[-1] == {**audit[-1], "key_id": "flaky-only", "model": "flaky", "allowed": True,
                         "status": 503, "outcome": "upstream_error",
                         "reason": "fallback to 'steady' not allowed for this key; no healthy backend "
                                   "for model 'flaky'"}


def test_the_one_audit_line_names_the_model_that_answered(bad_stack):
    bad_stack.take_down("flaky")
    before = len(audit_lines(bad_stack))
    assert _post(bad_stack, model="flaky").json()["generated_text"] == "steady answer"
    audit = audit_lines(bad_stack)
    assert len(audit) == before + 1
    assert {k: audit[-1].get(k) for k in ("model", "allowed", "status", "outcome", "answered_by")} == {
        "model": "flaky", "allowed": True, "status": 200, "outcome": "ok", "answered_by": "steady"}


@pytest.mark.parametrize("mode", ["stream_truncated", "stream_garbage", "reset", "html"])
def test_a_broken_stream_ends_with_tgis_error_event_or_a_tgi_shaped_error(bad_stack, mode):
    bad_stack.lonely.mode = mode
    response = requests.post(f"{bad_stack.url}/generate_stream", headers=bad_stack.headers(model="lonely"),
                             json={"inputs": "q"}, stream=True, timeout=15)
    if response.status_code == 200:
        events = [json.loads(line[5:]) for line in response.iter_lines() if line.startswith(b"data:")
                  and line[5:].strip().startswith(b"{\"")]
        assert events[-1]["error_type"] == "incomplete_generation"
    else:
        assert response.status_code == 502
        assert set(response.json()) == {"error", "error_type"}


def test_concurrent_faults_leave_no_request_hanging(bad_stack):
    bad_stack.lonely.mode = "slow_body"
    results: list[int] = []

    def call():
        results.append(_post(bad_stack).status_code)
    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(set(results)) in ([504], [503, 504])


def test_a_probe_that_ends_in_a_gateway_error_is_released_for_the_next_request(bad_stack):
    bad_stack.lonely.mode = "reset"
    for _ in range(3):
        _post(bad_stack)
    breaker = _breaker(bad_stack)
    breaker.opened_at -= 60
    bad_stack.lonely.mode = "ok"
    gateway = bad_stack.gateway
    original = gateway._check_answer

    def fails_once(*args, **kwargs):
        gateway._check_answer = original
        raise RuntimeError("a bug while judging the probe's answer")
    gateway._check_answer = fails_once  # stands in for any error that leaves no verdict
    assert _post(bad_stack).status_code == 500                # the probe: no verdict
    assert _post(bad_stack).status_code == 200                # the next request probes and heals
    assert breaker.state == CLOSED
