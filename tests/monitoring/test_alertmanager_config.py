"""alertmanager.yaml rendering: severity routing, meta alerts silenced, receivers' secrets in place."""

from __future__ import annotations

import yaml

from components.alertmanager_config import alertmanager_config, render
from vocabulary.config.monitoring import MonitoringConfig

CONFIG = MonitoringConfig.model_validate({
    "receivers": [{"name": "pager", "type": "pagerduty", "secretKey": "pd"},
                  {"name": "chat", "type": "slack", "secretKey": "slack"},
                  {"name": "hook", "type": "webhook", "secretKey": "hook"}],
    "routes": {"critical": ["pager", "chat"], "warning": ["chat", "hook"], "info": ["hook"]}})
SECRETS = {"pd": "routing-key", "slack": "https://hooks.slack.test/x", "hook": "https://hook.test/in"}


def test_without_receivers_everything_goes_to_the_null_receiver():
    config = alertmanager_config(MonitoringConfig(), {})
    assert config["receivers"] == [{"name": "null"}]
    assert config["route"]["receiver"] == "null"
    assert [r["receiver"] for r in config["route"]["routes"]] == ["null"]


def test_each_severity_reaches_all_its_receivers_in_order():
    routes = alertmanager_config(CONFIG, SECRETS)["route"]["routes"]
    assert routes[0] == {"receiver": "null", "matchers": ['alertname =~ "Watchdog|InfoInhibitor"']}
    assert [(r["matchers"][0], r["receiver"], r["continue"]) for r in routes[1:]] == [
        ('severity = "critical"', "pager", True), ('severity = "critical"', "chat", False),
        ('severity = "warning"', "chat", True), ('severity = "warning"', "hook", False),
        ('severity = "info"', "hook", False)]


def test_receivers_carry_their_secrets_and_resolve_notifications():
    receivers = {r["name"]: r for r in alertmanager_config(CONFIG, SECRETS)["receivers"]}
    assert receivers["pager"]["pagerduty_configs"][0]["routing_key"] == "routing-key"
    assert receivers["chat"]["slack_configs"][0]["api_url"] == "https://hooks.slack.test/x"
    assert "channel" not in receivers["chat"]["slack_configs"][0]
    assert receivers["hook"]["webhook_configs"] == [{"url": "https://hook.test/in", "send_resolved": True}]


def test_a_critical_alert_for_a_model_inhibits_its_warnings():
    (rule,) = alertmanager_config(CONFIG, SECRETS)["inhibit_rules"]
    assert rule["equal"] == ["model"]
    assert 'severity = "critical"' in rule["source_matchers"]


def test_render_is_yaml_of_the_same_config():
    assert yaml.safe_load(render(CONFIG, SECRETS)) == alertmanager_config(CONFIG, SECRETS)
