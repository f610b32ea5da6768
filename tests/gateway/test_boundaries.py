"""Boundary tests on both sides for the gateway's pure decisions: window expiry, the
half-open probe, what is deterministic enough to cache, which phone formats are redacted."""

from __future__ import annotations

import pytest

from serving.gateway.cache import is_deterministic
from serving.gateway.config import Breaker
from serving.gateway.pii import redact
from serving.gateway.ratelimit import WINDOW_S, RateLimiter
from serving.gateway.routing import CLOSED, HALF_OPEN, OPEN, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- rate-limit window -----------------------------------------------------------------

def test_a_request_leaves_the_window_exactly_one_minute_later():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert limiter.check("k", 1, 10**6) is None
    clock.now += WINDOW_S - 0.001
    assert limiter.check("k", 1, 10**6) == ("requests", 1)      # just inside: still counted
    clock.now += 0.001
    assert limiter.check("k", 1, 10**6) is None                  # just outside: trimmed


def test_requests_spread_over_the_window_free_up_one_at_a_time():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(3):
        assert limiter.check("k", 3, 10**6) is None
        clock.now += 10
    assert limiter.check("k", 3, 10**6) == ("requests", 30)      # first one frees at +60
    clock.now += 30
    assert limiter.check("k", 3, 10**6) is None
    assert limiter.check("k", 3, 10**6)[0] == "requests"


# -- half-open breaker -------------------------------------------------------------------

def _opened(clock: Clock) -> CircuitBreaker:
    breaker = CircuitBreaker(Breaker(failureThreshold=2, resetAfterS=30), clock=clock)
    assert breaker.failure() is False
    assert breaker.state == CLOSED
    assert breaker.failure() is True
    assert breaker.state == OPEN
    return breaker


def test_an_open_breaker_refuses_until_the_reset_time():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 29.999
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 0.001
    assert breaker.state == HALF_OPEN


def test_a_half_open_breaker_admits_exactly_one_probe():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 30
    assert breaker.allow() is True        # the probe
    assert breaker.allow() is False       # everyone else waits for its answer
    assert breaker.allow() is False
    breaker.success()
    assert breaker.state == CLOSED
    assert breaker.allow() is True and breaker.allow() is True


def test_a_probe_that_ends_without_a_verdict_frees_the_slot_for_the_next_probe():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 30
    assert breaker.acquire() is True      # the probe
    assert breaker.acquire() is None
    breaker.release(probe=False)          # an ordinary request's release changes nothing
    assert breaker.acquire() is None
    breaker.release(probe=True)           # the probe's client left before an answer
    assert breaker.acquire() is True      # the next request probes
    assert breaker.state == HALF_OPEN


def test_one_failing_request_body_counts_once_per_failure_run():
    breaker = CircuitBreaker(Breaker(failureThreshold=2, resetAfterS=30), clock=Clock())
    assert breaker.failure(cause=1) is False
    assert breaker.failure(cause=1) is False
    assert breaker.state == CLOSED
    assert breaker.failure(cause=2) is True      # a second, different body: the model is sick
    assert breaker.state == OPEN


def test_one_keys_timeouts_never_open_the_breaker_until_a_second_key_times_out():
    breaker = CircuitBreaker(Breaker(failureThreshold=2, resetAfterS=30), clock=Clock())
    for body in range(10):                        # ten different slow bodies, one key
        assert breaker.failure(cause=body, key="a") is False
    assert breaker.state == CLOSED
    assert breaker.failure(cause=99, key="b") is True
    assert breaker.state == OPEN


def test_one_keys_timeouts_do_not_help_other_failures_open_the_breaker():
    breaker = CircuitBreaker(Breaker(failureThreshold=3, resetAfterS=30), clock=Clock())
    assert breaker.failure(cause=1, key="a") is False
    assert breaker.failure(cause=2, key="a") is False
    assert breaker.failure() is False             # one unkeyed failure: 1 of 3
    assert breaker.failure() is False
    assert breaker.failure() is True              # three that are not one key's timeouts


def test_transport_failures_always_count():
    breaker = CircuitBreaker(Breaker(failureThreshold=2, resetAfterS=30), clock=Clock())
    assert breaker.failure() is False
    assert breaker.failure() is True


def test_a_failed_probe_reopens_the_breaker_for_another_reset_period():
    clock = Clock()
    breaker = _opened(clock)
    clock.now += 30
    assert breaker.allow() is True
    assert breaker.failure() is True
    assert breaker.state == OPEN and not breaker.allow()
    clock.now += 30
    assert breaker.allow() is True


# -- what the cache may keep ---------------------------------------------------------------

@pytest.mark.parametrize(("parameters", "deterministic"), [
    ({}, True),
    ({"do_sample": False}, True),
    ({"do_sample": True}, False),
    ({"do_sample": True, "seed": 3}, True),
    ({"temperature": 0.7}, False),
    ({"best_of": 1}, True),
    ({"best_of": 2}, False),
])
def test_only_greedy_or_seeded_requests_are_deterministic(parameters, deterministic):
    assert is_deterministic(parameters) is deterministic


# -- phone formats -------------------------------------------------------------------------

@pytest.mark.parametrize("phone", ["(415) 555-0134", "(415)555-0134", "415-555-0134",
                                   "415.555.0134", "+1 415 555 0134", "+44 (415) 555-0134"])
def test_phone_formats_are_redacted(phone):
    assert redact(f"call {phone} today") == "call [REDACTED_PHONE] today"


@pytest.mark.parametrize("text", ["(415) 555-013", "version 1.2.3", "(41) 555-0134x",
                                  "room 555-0134"])
def test_short_or_partial_numbers_are_not_phones(text):
    assert redact(text) == text


# -- token reservations --------------------------------------------------------------------

def test_a_request_reserves_its_max_new_tokens_up_front():
    limiter = RateLimiter(clock=Clock())
    assert limiter.check("k", 100, 40, reserve=40) is None
    assert limiter.check("k", 100, 40, reserve=1) == ("tokens", 1)   # all 40 are spoken for


def test_reservations_fit_exactly_up_to_the_limit_and_not_one_token_more():
    limiter = RateLimiter(clock=Clock())
    assert limiter.check("k", 100, 40, reserve=30) is None
    assert limiter.check("k", 100, 40, reserve=11) == ("tokens", 1)
    assert limiter.check("k", 100, 40, reserve=10) is None


def test_settling_replaces_the_reservation_with_what_was_generated():
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    assert limiter.check("k", 100, 40, reserve=40) is None
    limiter.settle("k", reserved=40, tokens=10)
    assert limiter.check("k", 100, 40, reserve=31) == ("tokens", 60)
    assert limiter.check("k", 100, 40, reserve=30) is None
    limiter.settle("k", reserved=30, tokens=0)       # failed request: nothing generated
    clock.now += WINDOW_S
    assert limiter.check("k", 100, 40, reserve=40) is None   # the 10 tokens left the window


# -- audit lines -----------------------------------------------------------------------------

def test_audit_lines_are_json_whatever_the_names_hold(tmp_path):
    import json

    from serving.gateway.audit import AuditLog

    path = tmp_path / "audit.jsonl"
    log = AuditLog(str(path))
    log.record("k", 'we"ird\nmodel\\', "/generate", False, "model not allowed")
    log.record(None, None, "/generate", True)
    log.record("k", 'we"ird\nmodel\\', "/generate", True)  # the remembered encoding
    log.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(x["key_id"], x["model"], x["allowed"], x.get("reason")) for x in lines] == [
        ("k", 'we"ird\nmodel\\', False, "model not allowed"), (None, None, True, None),
        ("k", 'we"ird\nmodel\\', True, None)]
    assert all(isinstance(x["time"], float) for x in lines)


# -- survivors of the sampled mutation run (make mutate AREAS=gateway) -------------------

def test_the_reset_time_counts_from_the_opening_whatever_the_clock_reads():
    clock = Clock()
    clock.now = 10.0                      # a clock near zero, as time.monotonic may be
    breaker = _opened(clock)
    clock.now += 29.9
    assert breaker.state == OPEN
    clock.now += 0.1
    assert breaker.state == HALF_OPEN


def test_a_single_generated_token_is_charged():
    limiter = RateLimiter(clock=Clock())
    for _ in range(2):
        assert limiter.check("k", 100, 2, reserve=1) is None
        limiter.settle("k", reserved=1, tokens=1)
    assert limiter.check("k", 100, 2, reserve=1) == ("tokens", 60)


def test_an_entry_of_exactly_the_entry_limit_is_cached_and_the_default_total_is_64_mib():
    from serving.gateway.cache import ResponseCache

    cache = ResponseCache(max_entries=10, ttl_s=60, max_entry_bytes=100)
    cache.put("exact", "v", 100)
    cache.put("over", "v", 101)
    assert cache.get("exact") == "v" and cache.get("over") is None
    big = ResponseCache(max_entries=10, ttl_s=60, max_entry_bytes=16 << 20)
    for i in range(4):
        big.put(str(i), "v", 16 << 20)      # 64 MiB in all: every entry fits
    assert len(big) == 4 and big.size_bytes == 64 << 20
    big.put("more", "v", 1)
    assert len(big) == 4 and big.get("0") is None   # one byte over: the oldest goes


# Published test card numbers (Luhn-valid), and the Luhn reference example padded to 13
# digits with zeros (which leave the checksum unchanged): it doubles a 9.
VALID_CARDS = ["4111111111111111", "5555555555554444", "378282246310005", "6011111111111117",
               "4012888888881881", "0079927398713"]


@pytest.mark.parametrize("number", VALID_CARDS)
def test_luhn_accepts_valid_card_numbers_and_refuses_a_changed_check_digit(number):
    from serving.gateway.pii import luhn_valid

    assert luhn_valid(number)
    changed = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not luhn_valid(changed)


def test_luhn_takes_13_to_19_digits():
    from serving.gateway.pii import luhn_valid

    assert luhn_valid("0" * 13) and luhn_valid("0" * 19)
    assert not luhn_valid("0" * 12) and not luhn_valid("0" * 20)


def test_the_stream_hold_back_is_exactly_the_longest_match():
    from serving.gateway.pii import EMAIL, max_width, undecided_tail

    width = max_width(EMAIL)
    assert undecided_tail("x" * (width + 10)) == 10
