"""The analysis queries name metrics and labels the gateway really exports, and quote the model."""

from __future__ import annotations

import re

import pytest

from serving.gateway.metrics import GatewayMetrics
from serving.release.errors import ReleaseError
from serving.release.signals import label_value, queries


def exported() -> dict[str, set[str]]:
    """Sample names the gateway's registry exposes, with their label names."""
    metrics = GatewayMetrics()
    metrics.requests.labels("m", "canary", "/", "5xx").inc()
    metrics.duration.labels("m", "canary", "/").observe(0.1)
    metrics.breaker_opened.labels("m", "canary").inc()
    metrics.breaker_state.labels("m", "canary").set(2)
    names: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def test_every_gateway_series_the_analysis_reads_exists_with_its_labels():
    names = exported()
    used = 0
    for promql in queries("m", "30m").values():
        for name, selector in re.findall(r"\b(llm_\w+)\{([^}]*)\}", promql):
            labels = set(re.findall(r"(\w+)=~?\"", selector))
            assert name in names, f"{name} is not exported by serving/gateway/metrics.py"
            assert labels <= names[name], f"{name} has no label(s) {labels - names[name]}"
            used += 1
    assert used == 5  # requests, errors, latency buckets, breaker counter and gauge


def test_time_per_token_uses_the_histogram_each_engine_records_in_seconds():
    promql = queries("m", "30m")["time_per_token_s"]
    assert "tgi_request_mean_time_per_token_duration_sum{" in promql
    assert "tgi_request_mean_time_per_token_duration_count{" in promql
    # vLLM 0.34.0's per-request mean time per output token (vllm/v1/metrics/loggers.py)
    assert "vllm:request_time_per_output_token_seconds_sum{" in promql
    assert "vllm:request_time_per_output_token_seconds_count{" in promql
    assert "sum by (track)" in promql  # the PodMonitor's label for the pod's llmops.io/track


def test_model_names_are_quoted_for_promql():
    assert label_value('a"b\\c') == '"a\\"b\\\\c"'
    assert 'model="llama-3-8b"' in queries("llama-3-8b", "30m")["requests"]


@pytest.mark.parametrize("window", ["30", "1.5h", "0m", "30min", "-5m"])
def test_bad_windows_are_refused(window):
    with pytest.raises(ReleaseError, match="must be a Prometheus duration"):
        queries("m", window)
