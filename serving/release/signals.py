"""What the canary analysis measures, per track, as PromQL over the metrics that exist.

Gateway (`serving/gateway/metrics.py`, job llm-gateway, `backend` = track):
  llm_requests_total{model,backend,route,status_class}    requests and 5xx errors
  llm_request_duration_seconds_bucket{model,backend,route} p95 latency as clients see it
  llm_circuit_breaker_opened_total{model,backend}          the gateway gave up on a track...
  llm_circuit_breaker_state{model,backend}                 ...0 closed, 1 half-open, 2 open
The breaker needs both: its counter series is created by the first opening, with value 1,
so increase() cannot see that opening (no earlier sample); the state gauge, which stays
at 2 from the opening until a probe succeeds, can.
The engine (job tgi or vllm; the PodMonitor copies the pod labels llmops.io/model and
llmops.io/track into `model` and `track`, see components/monitoring.py), whichever serves the
model (a model runs on one engine, so one side of the `or` is empty):
  tgi_request_mean_time_per_token_duration_{sum,count}     seconds per output token, per request
  vllm:request_time_per_output_token_seconds_{sum,count}   the same in vLLM 0.34.0
                                                           (vllm/v1/metrics/loggers.py)
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass

from serving.release.errors import ReleaseError
from serving.release.prometheus import Prometheus, Sample

TRACKS = ("stable", "canary")
WINDOW = re.compile(r"^[1-9][0-9]*[smhd]$")


@dataclass(frozen=True)
class TrackStats:
    """One track's numbers over the window; None where there was no data to compute it."""

    requests: float
    errors: float
    latency_p95_s: float | None
    time_per_token_s: float | None
    breaker_openings: float
    breaker_max_state: float | None = None

    @property
    def error_rate(self) -> float | None:
        """5xx share; capped at 1 (increase() extrapolates each counter on its own)."""
        return min(self.errors / self.requests, 1.0) if self.requests > 0 else None

    @property
    def breaker_tripped(self) -> bool:
        """The gateway's breaker for this track opened (or was half-open) in the window."""
        return self.breaker_openings >= 1 or (self.breaker_max_state or 0) >= 1

    def to_json(self) -> dict:
        return {**asdict(self), "error_rate": self.error_rate, "breaker_tripped": self.breaker_tripped}


def label_value(value: str) -> str:
    """Quote a label value for PromQL (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def queries(model: str, window: str) -> dict[str, str]:
    """The PromQL per signal; each answers one series per track."""
    if not WINDOW.match(window):
        raise ReleaseError(f"--window must be a Prometheus duration: a whole number of s, m, h or d "
                           f"such as 30m or 2h (got {window!r})")
    m = label_value(model)
    gw = f'model={m},backend=~"stable|canary"'
    tgi = f'model={m},track=~"stable|canary"'
    tpot = ("tgi_request_mean_time_per_token_duration", "vllm:request_time_per_output_token_seconds")
    return {
        "requests": f"sum by (backend) (increase(llm_requests_total{{{gw}}}[{window}]))",
        "errors": f'sum by (backend) (increase(llm_requests_total{{{gw},status_class="5xx"}}[{window}]))',
        "latency_p95_s": ("histogram_quantile(0.95, sum by (backend, le) "
                          f"(rate(llm_request_duration_seconds_bucket{{{gw}}}[{window}])))"),
        "time_per_token_s": " or ".join(
            f"(sum by (track) (rate({m}_sum{{{tgi}}}[{window}])) / "
            f"sum by (track) (rate({m}_count{{{tgi}}}[{window}])))" for m in tpot),
        "breaker_openings": ("sum by (backend) (increase(llm_circuit_breaker_opened_total"
                             f"{{{gw}}}[{window}]))"),
        "breaker_max_state": ("max by (backend) (max_over_time(llm_circuit_breaker_state"
                              f"{{{gw}}}[{window}]))"),
    }


def _by_track(samples: list[Sample]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for sample in samples:
        track = sample.labels.get("backend") or sample.labels.get("track")
        if track in TRACKS:
            out[track] = sample.value
    return out


def collect(prometheus: Prometheus, model: str, window: str,
            at: float | None = None) -> dict[str, TrackStats]:
    """Run every query at one instant (now by default) and assemble both tracks' stats."""
    at = time.time() if at is None else at
    answers = {name: _by_track(prometheus.query(q, at)) for name, q in queries(model, window).items()}
    return {track: _stats(answers, track) for track in TRACKS}


def _stats(answers: dict[str, dict[str, float | None]], track: str) -> TrackStats:
    def get(name: str) -> float | None:
        return answers[name].get(track)

    return TrackStats(requests=get("requests") or 0.0, errors=get("errors") or 0.0,
                      latency_p95_s=get("latency_p95_s"), time_per_token_s=get("time_per_token_s"),
                      breaker_openings=get("breaker_openings") or 0.0,
                      breaker_max_state=get("breaker_max_state"))
