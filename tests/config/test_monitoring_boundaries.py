"""`llmops:monitoring` validators at their edges (the value just allowed, the one just refused)."""

from __future__ import annotations

import pytest

from tests.config.test_config_boundaries import problems, refused, validate
from vocabulary.config.monitoring import FAST_BURN, SLOW_BURN

MON = "llmops:monitoring"


def test_the_burn_rate_factors_are_the_sre_workbook_s():
    assert (FAST_BURN, SLOW_BURN) == (14.4, 6.0)


@pytest.mark.parametrize("key", ["slo.defaultObjective", "slo.objectives.llama-3-8b"])
def test_the_loosest_objective_a_fast_burn_can_reach(key):
    # 14.4 x (1 - objective) must stay below 100% errors: objective > 1 - 1/14.4 = 0.930556
    assert problems({f"{MON}.{key}": 0.9306}) == []
    found = refused({f"{MON}.{key}": 0.9305})
    assert found.endswith("0.9305 leaves an error budget so large that a 14.4x burn would need more "
                          "than 100% errors; use at least 0.9306")


@pytest.mark.parametrize("value", [0, 1, -0.5, 1.5])
def test_objectives_are_ratios_strictly_between_0_and_1(value):
    assert refused({f"{MON}.slo.defaultObjective": value}) == (
        f"{MON}.slo.defaultObjective: {float(value)} is not an availability objective; use a ratio "
        "such as 0.995")


def test_objectives_per_model_name_the_model():
    assert refused({f"{MON}.slo.objectives": {"a": 0.999, "b": 1}}) == (
        f"{MON}.slo.objectives: b: 1.0 is not an availability objective; use a ratio such as 0.995")
    assert validate({f"{MON}.slo.objectives": {"a": 0.99999}}).monitoring.slo.objectives == {"a": 0.99999}


@pytest.mark.parametrize(("key", "allowed", "refused_", "message"), [
    ("errorRatio", [0.0001, 0.9999], [0, 1], ("greater than 0", "less than 1")),
    ("gpuMemoryRatio", [0.5001, 1], [0.5, 1.0001], ("greater than 0.5", "less than or equal to 1")),
    ("latencyP95Seconds", [0.001], [0], ("greater than 0",)),
    ("queueBacklog", [1], [0], ("greater than or equal to 1",)),
])
def test_alert_thresholds_are_bounded(key, allowed, refused_, message):
    for value in allowed:
        assert problems({f"{MON}.thresholds.{key}": value}) == [], value
    for value, text in zip(refused_, message, strict=True):
        assert f"Input should be {text}" in refused({f"{MON}.thresholds.{key}": value}), value


@pytest.mark.parametrize(("key", "high"), [("prometheus.replicas", 3), ("alertmanager.replicas", 5)])
def test_monitoring_replicas_are_bounded(key, high):
    assert problems({f"{MON}.{key}": 1}) == [] and problems({f"{MON}.{key}": high}) == []
    assert "greater than or equal to 1" in refused({f"{MON}.{key}": 0})
    assert f"less than or equal to {high}" in refused({f"{MON}.{key}": high + 1})


@pytest.mark.parametrize(("value", "ok"), [("4h", True), ("90s", True), ("250ms", True), ("1y", True),
                                           ("4", False), ("4hours", False), ("h", False)])
def test_alertmanager_repeat_interval_is_a_duration(value, ok):
    found = problems({f"{MON}.alertmanager.repeatInterval": value})
    assert found == ([] if ok else [f"{MON}.alertmanager.repeatInterval: {value!r} is not a duration "
                                    "such as 4h or 30m"])


@pytest.mark.parametrize(("value", "ok"), [("5Gi", True), ("500m", True), ("1.5", True), ("2Ti", True),
                                           ("5GB", False), ("Gi", False), ("-1Gi", False)])
def test_storage_sizes_are_kubernetes_quantities(value, ok):
    found = problems({f"{MON}.alertmanager.storageSize": value})
    assert found == ([] if ok else [f"{MON}.alertmanager.storageSize: {value!r} is not a Kubernetes "
                                    "quantity such as 500m, 2, 512Mi or 50Gi"])


def test_retention_size_is_a_prometheus_size():
    assert problems({f"{MON}.prometheus.retentionSize": "45GB"}) == []
    assert problems({f"{MON}.prometheus.retentionSize": "0.5TB"}) == []
    assert refused({f"{MON}.prometheus.retentionSize": "45G"}) == (
        f"{MON}.prometheus.retentionSize: '45G' is not a Prometheus size such as 45GB or 512MB")


def test_workload_requests_need_cpu_and_memory():
    no_cpu = {"requests": {"memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    assert refused({f"{MON}.resources.grafana": no_cpu}) == (
        f"{MON}.resources.grafana: requests.cpu and requests.memory are required")
    no_memory = {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert refused({f"{MON}.resources.grafana": no_memory}) == (
        f"{MON}.resources.grafana: requests.cpu and requests.memory are required")


RECEIVERS = [{"name": "pager", "type": "pagerduty", "secretKey": "pagerKey"},
             {"name": "chat", "type": "slack", "secretKey": "slackUrl", "channel": "#llm"},
             {"name": "chat-2", "type": "slack", "secretKey": "slackUrl"}]


def test_routes_of_every_severity_must_name_a_receiver():
    for severity in ("critical", "warning", "info"):
        assert refused({f"{MON}.receivers": RECEIVERS, f"{MON}.routes.{severity}": ["chat", "pagr"]}) == (
            f"{MON}: routes.{severity}[1]: no receiver named 'pagr' (receivers: pager, chat, chat-2)")
    assert refused({f"{MON}.routes.info": ["x"]}) == (
        f"{MON}: routes.info[0]: no receiver named 'x' (receivers: none defined)")
    config = validate({f"{MON}.receivers": RECEIVERS, f"{MON}.routes": {"critical": ["pager", "chat"]}})
    assert config.monitoring.secret_keys() == ["pagerKey", "slackUrl"]
    assert config.monitoring_secret_keys() == ["llmops-secrets:grafanaAdminPassword",
                                               "llmops-secrets:pagerKey", "llmops-secrets:slackUrl"]


@pytest.mark.parametrize(("name", "ok"), [("a", True), ("team-1", True), ("null", False), ("-a", False),
                                          ("a-", False), ("A", False)])
def test_receiver_names(name, ok):
    found = problems({f"{MON}.receivers": [{"name": name, "type": "webhook", "secretKey": "hookUrl"}]})
    assert found == ([] if ok else [f"{MON}.receivers[0].name: {name!r} is not a receiver name "
                                    "(lower-case letters, digits, '-'; not 'null')"])


@pytest.mark.parametrize(("key", "ok"), [("hookUrl", True), ("h", True), ("hook_url-2", True),
                                         ("2hook", False), ("hook.url", False)])
def test_receiver_secret_keys_are_config_key_names(key, ok):
    found = problems({f"{MON}.receivers": [{"name": "h", "type": "webhook", "secretKey": key}]})
    assert (found == []) == ok, found


def test_the_slack_channel_is_slack_only():
    slack = {"name": "s", "type": "slack", "secretKey": "k", "channel": "#x"}
    assert problems({f"{MON}.receivers": [slack]}) == []
    assert refused({f"{MON}.receivers": [{**slack, "type": "pagerduty"}]}) == (
        f"{MON}.receivers[0]: channel is only valid for slack receivers, not pagerduty")


def test_runbook_base_urls_are_https_directories():
    assert problems({f"{MON}.runbookBaseUrl": "https://github.com/org/repo/blob/main/"}) == []
    for bad in ("https://github.com/org/repo", "http://wiki/", "https:// /"):
        assert refused({f"{MON}.runbookBaseUrl": bad}).endswith("must be an https:// URL ending with '/'")
