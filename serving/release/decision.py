"""Promote, hold or roll back a canary: a pure function of both tracks' numbers and the
stack's tolerances, so every rule is unit-tested without Prometheus.

Order of the rules, and why:
1. The gateway's breaker for the canary opened: it failed requests back to back, enough that
   the gateway stopped sending it traffic. That is evidence however thin the traffic is.
2. Before `minRequests`, the canary already has more errors than `maxErrorRate` allows at
   `minRequests` requests: it cannot pass the error gate whatever its next requests do.
3. Either track served fewer than `minRequests`: too thin to compare rates; hold.
4. Error rate (absolute and versus stable), p95 latency ratio, time-per-token ratio: any
   breach rolls back; a signal without data holds (never a silent pass); else promote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from serving.release.signals import TrackStats
from vocabulary.config.release import CanaryTolerances

Decision = Literal["promote", "hold", "rollback"]


@dataclass(frozen=True)
class Check:
    name: str
    stable: float | None
    canary: float | None
    limit: str
    status: Literal["pass", "fail", "no data"]
    detail: str


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    checks: list[Check] = field(default_factory=list)


def _ratio(canary: float, stable: float) -> float:
    if stable > 0:
        return canary / stable
    return 1.0 if canary <= 0 else math.inf


def _ratio_check(name: str, what: str, stable: float | None, canary: float | None,
                 limit: float, unit: str) -> Check:
    bound = f"canary <= {limit:g} x stable"
    if stable is None or canary is None:
        missing = " and ".join(t for t, v in (("stable", stable), ("canary", canary)) if v is None)
        return Check(name, stable, canary, bound, "no data", f"no {what} data for {missing}")
    ratio = _ratio(canary, stable)
    text = f"{what} canary {canary:.4g}{unit} vs stable {stable:.4g}{unit} ({ratio:.2f}x, limit {limit:g}x)"
    return Check(name, stable, canary, bound, "fail" if ratio > limit else "pass", text)


def _error_checks(stable: TrackStats, canary: TrackStats, tol: CanaryTolerances) -> list[Check]:
    s_rate, c_rate = stable.error_rate or 0.0, canary.error_rate or 0.0
    absolute = Check("error_rate", s_rate, c_rate, f"canary <= {tol.max_error_rate:.2%}",
                     "fail" if c_rate > tol.max_error_rate else "pass",
                     f"canary error rate {c_rate:.2%} ({canary.errors:.0f}/{canary.requests:.0f}), "
                     f"limit {tol.max_error_rate:.2%}")
    increase = c_rate - s_rate
    relative = Check("error_rate_increase", s_rate, c_rate,
                     f"canary - stable <= {tol.max_error_rate_increase:.2%}",
                     "fail" if increase > tol.max_error_rate_increase else "pass",
                     f"canary error rate {c_rate:.2%} vs stable {s_rate:.2%} "
                     f"(+{max(increase, 0):.2%}, limit +{tol.max_error_rate_increase:.2%})")
    return [absolute, relative]


def decide(stable: TrackStats, canary: TrackStats, tol: CanaryTolerances) -> Verdict:
    """The verdict with the checks behind it and one sentence of reason."""
    if tol.rollback_on_breaker_open and canary.breaker_tripped:
        return Verdict("rollback", "the gateway's circuit breaker for the canary opened in the window "
                       "(consecutive failures; the gateway stopped sending it traffic)")
    error_budget = tol.max_error_rate * tol.min_requests
    if canary.requests < tol.min_requests and canary.errors > error_budget:
        return Verdict("rollback", f"the canary failed {canary.errors:.0f} of {canary.requests:.0f} "
                       f"requests: more than {tol.max_error_rate:.2%} of {tol.min_requests}, so it "
                       "cannot meet the error-rate limit")
    if canary.requests < tol.min_requests or stable.requests < tol.min_requests:
        return Verdict("hold", f"too little traffic to decide: canary served {canary.requests:.0f} "
                       f"and stable {stable.requests:.0f} requests in the window; each needs "
                       f"{tol.min_requests}")
    checks = [*_error_checks(stable, canary, tol),
              _ratio_check("latency_p95", "p95 latency", stable.latency_p95_s, canary.latency_p95_s,
                           tol.max_latency_p95_ratio, " s"),
              _ratio_check("time_per_token", "time per output token", stable.time_per_token_s,
                           canary.time_per_token_s, tol.max_time_per_token_ratio, " s")]
    failed = [c for c in checks if c.status == "fail"]
    if failed:
        return Verdict("rollback", "; ".join(c.detail for c in failed), checks)
    missing = [c for c in checks if c.status == "no data"]
    if missing:
        return Verdict("hold", "cannot judge: " + "; ".join(c.detail for c in missing), checks)
    return Verdict("promote", "the canary is within every tolerance", checks)
