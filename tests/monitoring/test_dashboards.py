"""The Grafana dashboards: every query parses (promtool) and reads series something produces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from components import alert_rules

DASHBOARDS = sorted((alert_rules.ASSETS / "grafana").glob("*.json"))
#: Grafana's variables, replaced by values of the same kind so PromQL can parse the query.
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h",
             "$model": "llama", "$pool": "g5"}
GATEWAY = {"llm_requests_total", "llm_requests_failed_total", "llm_request_duration_seconds_bucket",
           "llm_time_to_first_token_seconds_bucket", "llm_active_connections",
           "llm_tokens_generated_total", "llm_cache_hits_total", "llm_cache_misses_total",
           "llm_rate_limited_total", "llm_circuit_breaker_state", "llm_canary_requests_total",
           "llm_fallback_total"}
TGI = {"tgi_queue_size", "tgi_batch_current_size"}
#: as vLLM 0.34.0 registers them (vllm/v1/metrics/loggers.py; counters get _total)
VLLM = {"vllm:num_requests_waiting", "vllm:num_requests_running", "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket", "vllm:inter_token_latency_seconds_bucket",
        "vllm:num_preemptions_total", "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"}
#: as vllm-router 0.1.17 registers them (src/metrics.rs; components/router.py)
ROUTER = {"vllm_router_requests_total", "vllm_router_request_errors_total",
          "vllm_router_request_duration_seconds_bucket", "vllm_router_worker_health"}
DCGM = {"DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_XID_ERRORS"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def _recorded() -> set[str]:
    return {rule["record"] for path in alert_rules.rule_files().values()
            for group in alert_rules.load(path)["groups"] for rule in group["rules"] if "record" in rule}


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _exprs(dashboard: dict) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


def _concrete(expr: str) -> str:
    for variable, value in VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr!r}"
    return expr


def _check_exprs(promtool, exprs: list[str], tmp_path: Path):
    rules = [{"record": f"dashboard:expr_{i}:check", "expr": _concrete(e)} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard-exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-exprs", "rules": rules}]}))
    return promtool("check", "rules", path)


@pytest.fixture(params=DASHBOARDS, ids=lambda p: p.name)
def dashboard(request) -> dict:
    return json.loads(request.param.read_text())


def test_there_are_two_dashboards():
    assert {p.stem for p in DASHBOARDS} == {"llm-serving-overview", "gpu-fleet-cost"}


def test_every_dashboard_query_parses_with_promtool(promtool, dashboard, tmp_path):
    exprs = _exprs(dashboard)
    assert len(exprs) >= 10
    result = _check_exprs(promtool, exprs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_parse_check_rejects_a_broken_query(promtool, tmp_path):
    result = _check_exprs(promtool, ["sum by (model (rate(llm_requests_total{}[5m]))"], tmp_path)
    assert result.returncode != 0


def test_every_queried_series_is_produced_by_an_exporter_or_a_rule(dashboard):
    known = GATEWAY | TGI | VLLM | ROUTER | DCGM | _recorded()
    for expr in _exprs(dashboard):
        names = set(SELECTOR.findall(expr))
        assert names, f"write selectors with braces so they can be checked: {expr!r}"
        assert names <= known, f"{sorted(names - known)} in {expr!r} is produced by nothing"


def test_panels_use_the_datasource_variable_and_unique_ids(dashboard):
    panels = _panels(dashboard)
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            assert panel["targets"], panel["title"]
    assert dashboard["templating"]["list"][0]["type"] == "datasource"
    assert dashboard["uid"] and dashboard["title"]


def _titles(name: str) -> str:
    board = json.loads((alert_rules.ASSETS / "grafana" / f"{name}.json").read_text())
    return " | ".join(p["title"].lower() for p in _panels(board))


@pytest.mark.parametrize("topic", ["requests/s", "error rate", "p50 / p95 / p99", "time to first token",
                                   "tokens/s", "queue depth", "batch size", "cache hit rate",
                                   "canary vs stable", "vllm requests waiting", "vllm time to first token",
                                   "vllm inter-token latency", "vllm kv-cache use", "vllm preemptions",
                                   "vllm prefix-cache hit rate", "router requests/s and errors/s",
                                   "router request duration", "router healthy workers"])
def test_serving_overview_covers(topic):
    assert topic in _titles("llm-serving-overview")


@pytest.mark.parametrize("topic", ["utilisation", "memory", "power", "spot vs on-demand",
                                   "cost per 1m generated tokens"])
def test_gpu_view_covers(topic):
    assert topic in _titles("gpu-fleet-cost")


def test_variable_queries_read_produced_series(dashboard):
    known = GATEWAY | TGI | VLLM | ROUTER | DCGM | _recorded()
    for variable in dashboard["templating"]["list"][1:]:
        metric = re.fullmatch(r"label_values\(([^,]+), (\w+)\)", variable["definition"]).group(1)
        assert metric in known, variable["name"]
