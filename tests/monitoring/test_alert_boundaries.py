"""Alert boundaries follow the configured thresholds and objectives: rules rendered from a
non-default `llmops:monitoring` fire just above each configured value and stay quiet just
below it (the shipped defaults are pinned by prometheus/tests/boundaries.test.yaml)."""

from __future__ import annotations

import yaml

from components import alert_rules
from vocabulary.config.monitoring import FAST_BURN, SLOW_BURN, MonitoringConfig
from vocabulary.gpu_instances import gpu_instances

CONFIG = MonitoringConfig.model_validate({
    "thresholds": {"errorRatio": 0.02, "queueBacklog": 12, "gpuMemoryRatio": 0.9},
    "slo": {"defaultObjective": 0.995}})
REQUESTS = 'llm_requests_total{{model="{m}",backend="stable",route="/generate",status_class="{c}"}}'


def _traffic(model: str, errors_per_1000: int) -> list[dict]:
    """1000 requests a minute, `errors_per_1000` of them 5xx (and counted as failed)."""
    return [
        {"series": REQUESTS.format(m=model, c="2xx"), "values": f"0+{1000 - errors_per_1000}x70"},
        {"series": REQUESTS.format(m=model, c="5xx"), "values": f"0+{errors_per_1000}x70"},
        {"series": f'llm_requests_failed_total{{model="{model}",backend="stable",route="/generate",'
                   'reason="upstream"}', "values": f"0+{errors_per_1000}x70"},
    ]


def _firing(alert: str, *labels: str) -> list[dict]:
    return [{"labels": f'{{alertname="{alert}",{label}}}', "value": 1} for label in labels]


def test_configured_thresholds_and_objectives_move_the_alert_boundaries(promtool, tmp_path):
    rendered = alert_rules.render_rules(CONFIG, gpu_instances())
    rules = tmp_path / "rules"
    rules.mkdir()
    for name, document in rendered.items():
        (rules / f"{name}.yaml").write_text(alert_rules.dump(document))
    budget = 1 - CONFIG.slo.default_objective                      # 0.5%
    fast, slow = FAST_BURN * budget * 1000, SLOW_BURN * budget * 1000  # 72 and 30 per 1000
    series = [*_traffic("fast-above", round(fast) + 3), *_traffic("fast-below", round(fast) - 3),
              *_traffic("slow-above", round(slow) + 2), *_traffic("slow-below", round(slow) - 2)]
    # the error-rate threshold, 2%: 21 and 19 failures per 1000
    series += [*_traffic("errors-above", 21), *_traffic("errors-below", 19)]
    # queue backlog 12 per pod; GPU memory 90%
    series += [{"series": f'tgi_queue_size{{job="tgi",model="{m}",track="stable",pod="{m}-0"}}',
                "values": f"{n}x70"} for m, n in (("queue-above", 13), ("queue-at", 12))]
    series += [{"series": f'DCGM_FI_DEV_FB_{kind}{{gpu="{g}",UUID="GPU-{g}",node="n"}}', "values": f"{v}x70"}
               for g, used in (("0", 91), ("1", 90)) for kind, v in (("USED", used), ("FREE", 100 - used))]
    # a scraped Karpenter controller: else KarpenterMetricsAbsent fires, rightly
    series += [{"series": 'up{job="karpenter",instance="10.0.1.5:8080"}', "values": "1x70"}]
    case = {
        "name": "rendered from a non-default config",
        "interval": "1m",
        "input_series": series,
        # which alerts fire, by their identifying label (annotations are boundaries.test.yaml's job)
        "promql_expr_test": [{
            "expr": 'count by (alertname, model, gpu) (ALERTS{alertstate="firing"})',
            "eval_time": "60m",
            "exp_samples": [
                *_firing("LLMErrorBudgetBurnFast", 'model="fast-above"'),
                *_firing("LLMErrorBudgetBurnSlow", *(f'model="{m}"' for m in (
                    "fast-above", "fast-below", "slow-above"))),
                *_firing("LLMHighErrorRate", *(f'model="{m}"' for m in (
                    "errors-above", "fast-above", "fast-below", "slow-above", "slow-below"))),
                *_firing("TGIQueueBacklog", 'model="queue-above"'),
                *_firing("GPUMemoryExhaustion", 'gpu="0"'),
            ]}],
    }
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "rendered.test.yaml").write_text(yaml.safe_dump({
        "rule_files": [f"../rules/{name}.yaml" for name in rendered],
        "evaluation_interval": "1m", "tests": [case]}))
    result = promtool("test", "rules", "rendered.test.yaml", cwd=tests)
    assert result.returncode == 0, result.stdout + result.stderr
