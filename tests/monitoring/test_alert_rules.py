"""The alert rules: promtool-valid, unit-tested both ways, documented, and rendered from config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from components import alert_rules
from vocabulary.config.monitoring import MonitoringConfig
from vocabulary.gpu_instances import gpu_instances

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = REPO / "docs" / "runbook.md"
REQUIRED_ALERTS = {"LLMHighErrorRate", "LLMHighLatency", "GPUMemoryExhaustion", "ModelServingDown",
                   "TGIQueueBacklog", "LLMErrorBudgetBurnFast", "LLMErrorBudgetBurnSlow",
                   "GPUXidError", "GPUNodePoolCapacityLost"}
SEVERITIES = {"critical", "warning", "info"}
TEST_FILES = sorted(alert_rules.TESTS_DIR.glob("*.test.yaml"))


def _alerts(documents) -> list[dict]:
    return [rule for doc in documents for group in doc["groups"] for rule in group["rules"]
            if "alert" in rule]


ALL_ALERTS = _alerts(alert_rules.load(p) for p in alert_rules.rule_files().values())


def test_the_issue_s_alerts_all_exist():
    assert {a["alert"] for a in ALL_ALERTS} >= REQUIRED_ALERTS


@pytest.mark.parametrize("path", alert_rules.rule_files().values(), ids=lambda p: p.name)
def test_every_rule_file_passes_promtool_check(promtool, path):
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.long_pole
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(promtool, path):
    result = promtool("test", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_rendered_from_a_non_default_config_pass_promtool_check(promtool, tmp_path):
    config = MonitoringConfig.model_validate({
        "runbookBaseUrl": "https://github.com/example/llmops/blob/main/",
        "thresholds": {"errorRatio": 0.02, "latencyP95Seconds": 4.5, "queueBacklog": 12},
        "slo": {"defaultObjective": 0.995, "objectives": {"llama-3-8b": 0.999, "phi-3": 0.99}}})
    prices = {k: v for k, v in gpu_instances().items() if k.startswith("g5.")}
    rendered = alert_rules.render_rules(config, prices)
    paths = []
    for name, document in rendered.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(alert_rules.dump(document))
        paths.append(path)
    result = promtool("check", "rules", *paths)
    assert result.returncode == 0, result.stdout + result.stderr
    params = {(r["record"], r.get("labels", {}).get("model")): r["expr"]
              for r in rendered["parameters"]["groups"][0]["rules"]}
    assert params[("llmops:alert_threshold:error_ratio", None)] == "vector(0.02)"
    assert params[("llmops:alert_threshold:tgi_queue_size", None)] == "vector(12.0)"
    assert params[("llmops:slo_objective_default:ratio", None)] == "vector(0.995)"
    assert params[("llmops:slo_objective:ratio", "llama-3-8b")] == "vector(0.999)"
    assert len(rendered["gpu-prices"]["groups"][0]["rules"]) == 2 * len(prices)


def test_committed_generated_files_match_their_sources():
    """parameters.yaml is the default config and gpu-prices.yaml the whole instance table."""
    defaults = MonitoringConfig()
    files = alert_rules.rule_files()
    assert alert_rules.load(files["parameters"]) == alert_rules.parameter_rules(
        defaults.thresholds, defaults.slo), "run: python -m components.alert_rules"
    assert alert_rules.load(files["gpu-prices"]) == alert_rules.price_rules(gpu_instances()), \
        "run: python -m components.alert_rules"


def test_prices_come_from_the_instance_table():
    rules = alert_rules.price_rules(gpu_instances())["groups"][0]["rules"]
    by_key = {(r["labels"]["instance_type"], r["labels"]["capacity_type"]): r["expr"] for r in rules}
    assert by_key[("g5.xlarge", "on-demand")] == "vector(1.006)"
    assert by_key[("g5.xlarge", "spot")] == "vector(0.4)"
    assert by_key[("p5.48xlarge", "on-demand")] == "vector(55.04)"


@pytest.mark.parametrize("alert", ALL_ALERTS, ids=lambda a: a["alert"])
def test_every_alert_has_severity_summary_description_and_runbook(alert):
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert annotations["summary"].strip() and annotations["description"].strip()
    assert annotations["runbook_url"] == f"docs/runbook.md#{alert['alert'].lower()}"


def test_every_alert_has_a_runbook_section():
    headings = re.findall(r"^## (\S+)\s*$", RUNBOOK.read_text(), flags=re.MULTILINE)
    missing = {a["alert"] for a in ALL_ALERTS} - set(headings)
    assert not missing, f"docs/runbook.md lacks a '## <alert>' section for {sorted(missing)}"
    for section in ("Meaning", "First checks", "Mitigation"):
        assert RUNBOOK.read_text().count(f"**{section}**") >= len(ALL_ALERTS)


def test_every_alert_is_proven_to_fire_and_to_stay_quiet():
    fires, quiet = set(), set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {a["alert"] for a in ALL_ALERTS}
    assert names - fires == set(), "alerts never shown to fire"
    assert names - quiet == set(), "alerts never shown to stay quiet"


def test_runbook_urls_become_absolute_with_a_base_url():
    document = alert_rules.load(alert_rules.rule_files()["gpu"])
    rendered = alert_rules.with_runbook_base(document, "https://github.com/example/llmops/blob/main/")
    urls = [r["annotations"]["runbook_url"] for r in _alerts([rendered])]
    assert urls and all(u.startswith("https://github.com/example/llmops/blob/main/docs/runbook.md#")
                        for u in urls)
    assert _alerts([document])[0]["annotations"]["runbook_url"].startswith("docs/"), "input untouched"
