"""The canary verdict as a function of both tracks' numbers and the stack's tolerances."""

from __future__ import annotations

import pytest

from serving.release.decision import decide
from serving.release.signals import TrackStats
from vocabulary.config.release import CanaryTolerances

TOL = CanaryTolerances()  # minRequests 200, maxErrorRate 2%, +1%, 1.25x, 1.25x


def track(requests=1000.0, errors=0.0, p95=1.0, tpot=0.05, breaker=0.0, state=0.0) -> TrackStats:
    return TrackStats(requests=requests, errors=errors, latency_p95_s=p95, time_per_token_s=tpot,
                      breaker_openings=breaker, breaker_max_state=state)


def test_a_canary_like_stable_is_promoted():
    verdict = decide(track(errors=3), track(requests=300, errors=1, p95=1.1, tpot=0.055), TOL)
    assert verdict.decision == "promote"
    assert [c.status for c in verdict.checks] == ["pass"] * 4


def test_a_canary_with_an_error_rate_above_the_limit_is_rolled_back_with_the_numbers():
    verdict = decide(track(), track(requests=400, errors=40), TOL)
    assert verdict.decision == "rollback"
    assert "canary error rate 10.00% (40/400), limit 2.00%" in verdict.reason


def test_an_error_rate_under_the_cap_but_well_above_stable_rolls_back():
    verdict = decide(track(requests=10_000, errors=10), track(requests=1000, errors=15), TOL)
    assert verdict.decision == "rollback"
    assert "canary error rate 1.50% vs stable 0.10% (+1.40%, limit +1.00%)" in verdict.reason


def test_a_slower_canary_is_rolled_back_on_p95_latency():
    verdict = decide(track(p95=2.0), track(p95=3.0), TOL)
    assert verdict.decision == "rollback"
    assert "p95 latency canary 3 s vs stable 2 s (1.50x, limit 1.25x)" in verdict.reason


def test_a_canary_slower_per_token_is_rolled_back():
    verdict = decide(track(tpot=0.040), track(tpot=0.060), TOL)
    assert verdict.decision == "rollback"
    assert "time per output token" in verdict.reason and "1.50x" in verdict.reason


def test_thin_traffic_holds_even_when_the_numbers_look_good():
    verdict = decide(track(), track(requests=150), TOL)
    assert verdict.decision == "hold"
    assert verdict.reason == ("too little traffic to decide: canary served 150 and stable 1000 "
                              "requests in the window; each needs 200")


def test_thin_stable_traffic_holds_too():
    assert decide(track(requests=20), track(requests=500), TOL).decision == "hold"


def test_thin_traffic_with_more_errors_than_the_budget_allows_rolls_back_early():
    # 2% of 200 is 4 errors: the fifth makes the limit unreachable at 200 requests
    assert decide(track(), track(requests=50, errors=4), TOL).decision == "hold"
    verdict = decide(track(), track(requests=50, errors=5), TOL)
    assert verdict.decision == "rollback"
    assert "failed 5 of 50 requests" in verdict.reason


def test_an_opened_canary_breaker_rolls_back_however_thin_the_traffic():
    verdict = decide(track(), track(requests=6, errors=3, breaker=1), TOL)
    assert verdict.decision == "rollback"
    assert "circuit breaker for the canary opened in the window" in verdict.reason


@pytest.mark.parametrize("state", [1.0, 2.0])
def test_a_breaker_seen_open_or_half_open_counts_even_when_its_counter_shows_no_increase(state):
    # the counter series is born at the first opening with value 1: increase() reads 0
    assert decide(track(), track(requests=6, errors=3, state=state), TOL).decision == "rollback"
    assert decide(track(), track(requests=6, errors=3, state=0.0), TOL).decision == "hold"


def test_the_error_rate_never_exceeds_one():
    assert track(requests=8.0, errors=8.02).error_rate == 1.0


def test_the_breaker_rule_can_be_switched_off():
    tol = CanaryTolerances(rollback_on_breaker_open=False)
    assert decide(track(), track(requests=6, errors=1, breaker=1), tol).decision == "hold"


def test_a_signal_without_data_holds_instead_of_passing():
    verdict = decide(track(), track(tpot=None), TOL)
    assert verdict.decision == "hold"
    assert "no time per output token data for canary" in verdict.reason


def test_a_breach_wins_over_missing_data():
    assert decide(track(), track(errors=100, tpot=None), TOL).decision == "rollback"


@pytest.mark.parametrize(("stable", "canary", "decision"), [
    (0.0, 0.0, "promote"),     # both instant: equal
    (0.0, 0.5, "rollback"),    # stable instant, canary not: infinitely worse
])
def test_zero_stable_latency_does_not_divide_by_zero(stable, canary, decision):
    assert decide(track(p95=stable), track(p95=canary), TOL).decision == decision


def test_tolerances_come_from_the_config_section():
    strict = CanaryTolerances.model_validate({"maxLatencyP95Ratio": 1.05, "minRequests": 10})
    assert decide(track(p95=1.0), track(requests=20, p95=1.1), strict).decision == "rollback"
    assert decide(track(p95=1.0), track(requests=20, p95=1.1), TOL).decision == "hold"
