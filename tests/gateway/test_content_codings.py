"""Request content codings: gzip and deflate are decoded within the body limit, every other
coding (`br` and `zstd` included, which aiohttp's parser used to refuse with its own plain-text
400 before the key was checked) is a 415 in TGI's shape, audited and counted."""

from __future__ import annotations

import gzip
import json
import logging
import zlib

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from serving.gateway.codings import NotDecodable, TooLarge, decode
from tests.gateway import rawhttp
from tests.gateway.conftest import KEYS, audit_lines

BODY = b'{"inputs": "What is the capital of France?"}'


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS['full']}", "X-Model": "small",
            "Content-Type": "application/json"}


def _failed(stack, reason: str) -> float:
    """llm_requests_failed_total for /generate before a model was resolved."""
    text = requests.get(f"{stack.url}/metrics", timeout=5).text
    labels = f'{{backend="none",model="unknown",reason="{reason}",route="/generate"}}'
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("llm_requests_failed_total" + labels))


@pytest.mark.parametrize("coding", ["br", "zstd"])
def test_a_br_or_zstd_body_is_a_415_naming_the_coding_audited_and_counted(stack, caplog, coding):
    caplog.set_level(logging.INFO)
    before, counted = len(audit_lines(stack)), _failed(stack, "validation")
    status, headers, body = rawhttp.exchange(
        stack.url, rawhttp.post("/generate", b"\x28\xb5\x2f\xfd-not-really", {
            **_auth(), "Content-Encoding": coding}))
    assert status == 415
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body) == {
        "error": f"Content-Encoding '{coding}' is not supported; send the body as it is or gzip "
                 "or deflate it", "error_type": "validation"}
    [line] = audit_lines(stack)[before:]
    assert (line["key_id"], line["status"], line["allowed"], line["outcome"]) == (
        "full", 415, False, "validation")
    assert coding in line["reason"]
    assert _failed(stack, "validation") == counted + 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_br_body_from_an_invalid_key_is_a_401_not_a_parser_error(stack):
    status, _, body = rawhttp.exchange(stack.url, rawhttp.post("/generate", b"x", {
        "Authorization": "Bearer sk-nobody", "Content-Encoding": "br"}))
    assert status == 401
    assert json.loads(body)["error_type"] == "unauthorized"


def _raw_deflate(data: bytes) -> bytes:
    return zlib.compress(data)[2:-4]  # the zlib stream without its header and checksum


@pytest.mark.parametrize(("coding", "encode"), [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("deflate", _raw_deflate),
    ("gzip", lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:])), ("identity", bytes)],
    ids=["gzip", "deflate", "raw-deflate", "gzip-two-members", "identity"])
def test_gzip_and_deflate_bodies_are_decoded(stack, coding, encode):
    status, _, body = rawhttp.exchange(stack.url, rawhttp.post("/generate", encode(BODY), {
        **_auth(), "Content-Encoding": coding}))
    assert status == 200, body
    assert json.loads(body)["generated_text"] == "Paris"


def test_a_small_gzip_body_that_expands_past_the_body_limit_is_a_413(stack):
    limit = stack.gateway.config.limits.max_body_bytes
    bomb = gzip.compress(b'{"inputs": "' + b"a" * (limit * 4) + b'"}')
    assert len(bomb) < limit
    status, _, body = rawhttp.exchange(stack.url, rawhttp.post("/generate", bomb, {
        **_auth(), "Content-Encoding": "gzip"}))
    assert status == 413
    assert json.loads(body)["error"] == f"request body is larger than {limit} bytes"


def test_a_gzip_body_cut_short_is_a_400(stack):
    status, _, body = rawhttp.exchange(stack.url, rawhttp.post("/generate", gzip.compress(BODY)[:-6], {
        **_auth(), "Content-Encoding": "gzip"}))
    assert status == 400
    assert json.loads(body)["error"] == ("the request body could not be read: it is not valid "
                                         "'gzip' (Content-Encoding)")


# -- the decoder on its own ---------------------------------------------------------------

CODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "raw-deflate": _raw_deflate}


@given(data=st.binary(max_size=2000), how=st.sampled_from(sorted(CODERS)),
       limit=st.integers(0, 3000))
@settings(max_examples=300, deadline=None)
def test_decoding_gives_back_the_body_or_says_it_is_too_large(data, how, limit):
    coding = "gzip" if how == "gzip" else "deflate"
    encoded = CODERS[how](data)
    if len(data) > limit:
        with pytest.raises(TooLarge):
            decode(encoded, coding, limit)
    else:
        assert decode(encoded, coding, limit) == data


@given(raw=st.binary(max_size=300), coding=st.sampled_from(["gzip", "deflate"]),
       limit=st.integers(0, 1000))
@settings(max_examples=300, deadline=None)
def test_any_bytes_decode_within_the_limit_or_are_refused_as_not_decodable_or_too_large(
        raw, coding, limit):
    try:
        out = decode(raw, coding, limit)
    except (NotDecodable, TooLarge):
        return
    assert len(out) <= limit


def test_a_deflate_body_followed_by_more_bytes_is_not_decodable():
    with pytest.raises(NotDecodable, match="more than one deflate stream"):
        decode(zlib.compress(BODY) + b"trailing", "deflate", 10_000)
