"""Properties over generated requests and model-server behaviours, not just the examples:

- a well-behaved model server never leads to a 5xx, whatever the client sends;
- every error the gateway gives, and every error event in a stream, is TGI's
  `{"error", "error_type"}`;
- no request outlives the configured timeouts (the client's own timeout is the hang detector,
  several times the gateway's 1 s limits).
"""

from __future__ import annotations

import json

import requests
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.gateway.bad_upstream import MODES
from tests.gateway.conftest import KEYS

ROUTES = ("/generate", "/generate_stream", "/", "/v1/chat/completions", "/v1/completions")
FIELDS = ("inputs", "parameters", "model", "messages", "prompt", "stream", "max_tokens",
          "max_completion_tokens", "seed", "temperature")
PARAMETERS = ("max_new_tokens", "best_of", "do_sample", "seed", "temperature", "top_k", "details",
              "stop", "top_p")

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2, 5000), st.floats(allow_nan=False),
                      st.text(max_size=20), st.sampled_from(["x", "Paris", "steady", "lonely"]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]),
                                 "content": st.one_of(st.text(max_size=20), json_value)})
plausible = st.fixed_dictionaries({}, optional={
    "inputs": st.one_of(st.text(min_size=1, max_size=30), json_value),
    "parameters": st.one_of(st.dictionaries(st.sampled_from(PARAMETERS), json_value, max_size=4),
                            json_value),
    "model": st.one_of(st.sampled_from(["steady", "lonely", "flaky", "nope"]), json_value),
    "messages": st.one_of(st.lists(message, max_size=3), json_value),
    "prompt": st.one_of(st.text(max_size=20), json_value),
    "stream": st.one_of(st.booleans(), json_value),
    "max_tokens": json_value,
    "max_completion_tokens": json_value,
})
good_key = st.sampled_from(["Bearer", "bearer", "BEARER"]).map(lambda s: f"{s} {KEYS['full']}")
parameters = st.fixed_dictionaries({}, optional={
    "max_new_tokens": st.integers(1, 20), "do_sample": st.booleans(), "details": st.booleans(),
    "seed": st.integers(0, 9)})
text = st.text(min_size=1, max_size=20)


@st.composite
def well_formed(draw) -> tuple[str, dict[str, str], bytes]:
    """A request the gateway should accept: the model server's behaviour decides the rest."""
    route = draw(st.sampled_from(ROUTES))
    if route == "/v1/chat/completions":
        body = {"messages": [{"role": "user", "content": draw(text)}], "max_tokens": draw(st.integers(1, 20))}
    elif route == "/v1/completions":
        body = {"prompt": draw(text)}
    else:
        body = {"inputs": draw(text), "parameters": draw(parameters)}
    if route != "/generate_stream" and draw(st.booleans()):
        body["stream"] = draw(st.booleans())
    model = draw(st.sampled_from(["lonely", "flaky", "steady"]))
    headers = {"Authorization": draw(good_key), "X-Model": model}
    return route, headers, json.dumps(body).encode()


bodies = st.one_of(
    plausible.map(lambda b: json.dumps(b).encode()),
    st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=5).map(lambda b: json.dumps(b).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)
header_text = st.from_regex(r"[A-Za-z0-9._:-][A-Za-z0-9 ._:-]{0,30}", fullmatch=True)
authorization = st.one_of(
    good_key,
    st.just(f"Bearer {KEYS['flaky-only']}"),
    header_text, st.none())
headers = st.fixed_dictionaries({"Authorization": authorization}, optional={
    "X-Model": st.one_of(st.sampled_from(["steady", "lonely", "flaky"]), header_text),
    "Content-Type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded"]),
}).map(lambda h: {k: v for k, v in h.items() if v is not None})
FAST_MODES = [m for m in MODES if m not in ("slow_body", "stream_slow")]
modes = st.one_of(*[st.just(m) for m in FAST_MODES], st.sampled_from(["slow_body", "stream_slow"]))
fuzzed = st.tuples(st.sampled_from(ROUTES), headers, bodies)


def _model_of(sent_headers: dict[str, str], body: bytes) -> str | None:
    if "X-Model" in sent_headers:
        return sent_headers["X-Model"]
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value.get("model") if isinstance(value, dict) and isinstance(value.get("model"), str) else None


def _asks_for_stream(route: str, body: bytes) -> bool:
    try:
        value = json.loads(body)
    except ValueError:
        return route == "/generate_stream"
    return route == "/generate_stream" or (isinstance(value, dict) and value.get("stream") is True)


def _assert_tgi_error(raw: bytes) -> None:
    error = json.loads(raw)
    assert set(error) == {"error", "error_type"}, error
    assert isinstance(error["error"], str) and isinstance(error["error_type"], str)


@given(request=st.one_of(well_formed(), fuzzed), mode=modes)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_no_client_input_causes_a_5xx_and_every_error_is_tgi_shaped(bad_stack, request, mode):
    route, sent_headers, body = request
    for backend in bad_stack.gateway.router.backends.values():
        backend.breaker.success()  # each example starts from healthy breakers
    bad_stack.lonely.mode = bad_stack.flaky.mode = mode
    response = requests.post(f"{bad_stack.url}{route}", data=body, headers=sent_headers,
                             timeout=10, stream=True)
    raw = response.raw.read(decode_content=True)  # the whole body, streams included
    model = _model_of(sent_headers, body)
    event(f"{response.status_code}")
    # "ok" answers whole JSON: a fault when a stream was asked for
    misbehaving = (mode != "ok" or _asks_for_stream(route, body)) and model in ("lonely", "flaky")
    if response.status_code >= 500:
        assert misbehaving, (response.status_code, raw[:300])
    if response.status_code >= 400:
        _assert_tgi_error(raw)
    elif response.headers.get("Content-Type", "").startswith("text/event-stream"):
        for line in raw.split(b"\n"):
            if line.startswith(b"data:") and b'"error"' in line:
                _assert_tgi_error(line[5:])
