"""Render alertmanager.yaml from typed config: routing by severity to the configured receivers.

Pure: secrets come in as plain strings (the component calls this inside an apply and marks
the result secret), so the routing logic is unit-tested without Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from vocabulary.config.monitoring import MonitoringConfig, Receiver

SEVERITIES = ("critical", "warning", "info")
NULL = "null"
#: kube-prometheus-stack's always-firing meta alerts, which must not notify anyone.
META_ALERTS = 'alertname =~ "Watchdog|InfoInhibitor"'
SLACK_TITLE = '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }} {{ .CommonLabels.model }}'
SLACK_TEXT = ("{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n"
              "Runbook: {{ .Annotations.runbook_url }}\n{{ end }}")


def _receiver(receiver: Receiver, secret: str) -> dict[str, Any]:
    if receiver.type == "slack":
        slack: dict[str, Any] = {"api_url": secret, "send_resolved": True,
                                 "title": SLACK_TITLE, "text": SLACK_TEXT}
        if receiver.channel:
            slack["channel"] = receiver.channel
        return {"name": receiver.name, "slack_configs": [slack]}
    if receiver.type == "pagerduty":
        return {"name": receiver.name, "pagerduty_configs": [
            {"routing_key": secret, "send_resolved": True,
             "description": "{{ .CommonLabels.alertname }}: {{ .CommonAnnotations.summary }}"}]}
    return {"name": receiver.name, "webhook_configs": [{"url": secret, "send_resolved": True}]}


def alertmanager_config(config: MonitoringConfig, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The Alertmanager configuration as a dict; `secrets` maps each receiver's secretKey to its value."""
    routes: list[dict[str, Any]] = [{"receiver": NULL, "matchers": [META_ALERTS]}]
    for severity in SEVERITIES:
        names = getattr(config.routes, severity)
        for i, name in enumerate(names):
            # every receiver of a severity gets the alert: continue past all but the last
            routes.append({"receiver": name, "matchers": [f'severity = "{severity}"'],
                           "continue": i < len(names) - 1})
    return {
        "global": {"resolve_timeout": "5m"},
        "route": {"receiver": NULL, "group_by": ["alertname", "namespace", "model", "pool"],
                  "group_wait": "30s", "group_interval": "5m",
                  "repeat_interval": config.alertmanager.repeat_interval, "routes": routes},
        # a model that is down or failing hard needs one page, not its latency and queue too
        "inhibit_rules": [{"source_matchers": ['severity = "critical"', 'model =~ ".+"'],
                           "target_matchers": ['severity =~ "warning|info"'], "equal": ["model"]}],
        "receivers": [{"name": NULL}] + [_receiver(r, secrets[r.secret_key]) for r in config.receivers],
    }


def render(config: MonitoringConfig, secrets: Mapping[str, str]) -> str:
    return yaml.safe_dump(alertmanager_config(config, secrets), sort_keys=False, width=1000)
