"""The cache never tells one key what another asked, never answers for a model with another
model's words, and is bounded in bytes as well as entries."""

from __future__ import annotations

import requests

from serving.gateway.cache import ResponseCache


def _ask(stack, key="full", model="small", **parameters):
    return requests.post(f"{stack.url}/generate", headers=stack.headers(key, model),
                         json={"inputs": "capital?", "parameters": parameters}, timeout=10)


def test_one_keys_cache_entries_are_invisible_to_another_key(stack):
    assert "X-Cache" not in _ask(stack, key="full").headers
    other = _ask(stack, key="small-only")
    assert "X-Cache" not in other.headers          # no hint that someone asked this before
    assert len(stack.upstreams["small"].requests) == 2
    assert _ask(stack, key="small-only").headers["X-Cache"] == "hit"   # its own entry is
    assert len(stack.upstreams["small"].requests) == 2


def test_a_fallback_answer_is_never_replayed_for_the_primary(stack):
    for name in ("llama-stable", "llama-canary"):
        stack.upstreams[name].overloaded = True
    assert _ask(stack, model="llama").json()["generated_text"] == "Paris"   # the small model
    for name in ("llama-stable", "llama-canary"):
        stack.upstreams[name].overloaded = False
    recovered = _ask(stack, model="llama")
    assert "X-Cache" not in recovered.headers
    assert recovered.json()["generated_text"].startswith("Paris is the capital")


def test_entries_are_bounded_in_bytes():
    cache = ResponseCache(max_entries=100, ttl_s=60, max_bytes=100, max_entry_bytes=50)
    cache.put("a", "A", size=40)
    cache.put("b", "B", size=40)
    cache.put("c", "C", size=40)        # 120 bytes > 100: the oldest goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (None, "B", "C")
    assert cache.size_bytes == 80
    cache.put("big", "X", size=51)      # larger than one entry may be: not kept
    assert cache.get("big") is None and cache.size_bytes == 80


def test_replacing_an_entry_counts_its_bytes_once():
    cache = ResponseCache(max_entries=100, ttl_s=60, max_bytes=100, max_entry_bytes=100)
    for _ in range(5):
        cache.put("a", "A", size=30)
    assert cache.size_bytes == 30 and len(cache) == 1


def test_expired_entries_release_their_bytes():
    now = [0.0]
    cache = ResponseCache(max_entries=10, ttl_s=10, max_bytes=100, max_entry_bytes=100,
                          clock=lambda: now[0])
    cache.put("a", "A", size=30)
    now[0] = 10.5
    assert cache.get("a") is None and cache.size_bytes == 0
