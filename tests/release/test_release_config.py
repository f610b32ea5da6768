"""`llmops:release`: typed tolerances with defaults, bad values named with what is allowed."""

from __future__ import annotations

import pytest

from vocabulary.config import ConfigError, parse_platform_config, secret_config_keys
from vocabulary.config.release import CanaryTolerances
from vocabulary.stackfile import OFFLINE_SECRET, read_stack_config


def parse(stack: str, overrides: dict | None = None):
    raw = read_stack_config(stack)
    raw = raw.with_overrides({k: OFFLINE_SECRET for k in secret_config_keys() if k not in raw.values})
    raw = raw.with_overrides(overrides or {})
    return parse_platform_config(raw.values, project="llmops", stack=stack, source=raw.source)


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_shipped_stacks_get_the_default_tolerances(stack):
    assert parse(stack).release.canary == CanaryTolerances()


def test_a_stack_sets_its_own_tolerances():
    config = parse("prod", {"llmops:release": {"canary": {"window": "2h", "minRequests": 1000,
                                                          "maxErrorRate": 0.005}}})
    assert (config.release.canary.window, config.release.canary.min_requests) == ("2h", 1000)
    assert config.release.canary.max_latency_p95_ratio == 1.25  # the rest keep their defaults


@pytest.mark.parametrize(("value", "expected"), [
    ({"canary": {"window": "30 minutes"}},
     "llmops:release.canary.window: String should match pattern '^[1-9][0-9]*[smhd]$' (got '30 minutes')"),
    ({"canary": {"maxErrorRate": 2}},
     "llmops:release.canary.maxErrorRate: Input should be less than or equal to 1 (got 2)"),
    ({"canary": {"maxLatencyP95Ratio": 0.9}},
     "llmops:release.canary.maxLatencyP95Ratio: Input should be greater than or equal to 1 (got 0.9)"),
    ({"canary": {"minRequests": "200"}},
     "llmops:release.canary.minRequests: Input should be a valid integer (got '200')"),
    ({"canary": {"maxErrorRat": 0.1}},
     "llmops:release.canary.maxErrorRat: unknown key; did you mean maxErrorRate?"),
])
def test_bad_tolerances_name_the_key_and_what_is_allowed(value, expected):
    with pytest.raises(ConfigError) as caught:
        parse("prod", {"llmops:release": value})
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
