"""`llmops:release`: the tolerances `llmops canary analyze` judges a canary by.

They live in the stack config so each environment states, as data, how much worse a canary
may be than the stable track before it is rolled back, and how much traffic it needs before
any verdict at all (a canary that served ten requests proves nothing either way).
"""

from __future__ import annotations

from pydantic import Field

from vocabulary.config.base import Section

#: A Prometheus range duration the analysis accepts: a whole number of s, m, h or d.
WINDOW_PATTERN = r"^[1-9][0-9]*[smhd]$"


class CanaryTolerances(Section):
    """How the canary track compares with the stable track over the analysis window."""

    window: str = Field(default="30m", pattern=WINDOW_PATTERN,
                        description="default analysis window (Prometheus duration: 30m, 2h)")
    min_requests: int = Field(default=200, ge=1,
                              description="requests each track must have served in the window "
                              "before promote or rollback is decided on rates; fewer: hold")
    max_error_rate: float = Field(default=0.02, ge=0, le=1,
                                  description="highest canary error rate (5xx share) allowed")
    max_error_rate_increase: float = Field(default=0.01, ge=0, le=1,
                                           description="canary error rate minus stable error rate")
    max_latency_p95_ratio: float = Field(default=1.25, ge=1,
                                         description="canary p95 request latency / stable p95")
    max_time_per_token_ratio: float = Field(default=1.25, ge=1,
                                            description="canary mean time per output token / stable")
    rollback_on_breaker_open: bool = Field(default=True,
                                           description="a canary whose circuit breaker opened in "
                                           "the window is rolled back however thin its traffic")


class ReleaseConfig(Section):
    """Release decisions for this environment."""

    canary: CanaryTolerances = CanaryTolerances()
