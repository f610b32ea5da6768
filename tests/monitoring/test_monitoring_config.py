"""`llmops:monitoring`: production defaults, and bad values named by their key path."""

from __future__ import annotations

import pytest
from pydantic import ConfigDict, Field, ValidationError

from vocabulary.config.base import Section, describe_errors
from vocabulary.config.monitoring import MonitoringConfig


class Stack(Section):
    """Stands in for PlatformConfig's `llmops:monitoring` field, so messages read as users see them."""

    model_config = ConfigDict(alias_generator=None)
    monitoring: MonitoringConfig = Field(alias="llmops:monitoring")


def _problems(section: dict) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate({"llmops:monitoring": section})
    return describe_errors(Stack, caught.value)


def test_defaults_are_production_shaped():
    config = Stack.model_validate({"llmops:monitoring": {}}).monitoring
    assert config.namespace == "monitoring"
    assert config.prometheus.retention == "15d" and config.prometheus.storage_size == "50Gi"
    assert config.thresholds.error_ratio == 0.05 and config.thresholds.latency_p95_seconds == 10
    assert config.thresholds.gpu_memory_ratio == 0.95 and config.thresholds.queue_backlog == 50
    assert config.slo.default_objective == 0.99 and config.receivers == []
    for name in type(config.resources).model_fields:
        assert getattr(config.resources, name).limits.memory, f"{name} has no memory limit"


def test_a_full_section_parses_from_camel_case():
    config = Stack.model_validate({"llmops:monitoring": {
        "prometheus": {"retention": "30d", "retentionSize": "90GB", "storageSize": "100Gi",
                       "storageClass": "gp3", "replicas": 2},
        "resources": {"prometheus": {"requests": {"cpu": "1", "memory": "4Gi"},
                                     "limits": {"memory": "8Gi"}}},
        "slo": {"defaultObjective": 0.995, "objectives": {"llama": 0.999}},
        "receivers": [{"name": "pager", "type": "pagerduty", "secretKey": "pagerdutyRoutingKey"}],
        "routes": {"critical": ["pager"]}}}).monitoring
    assert config.prometheus.replicas == 2
    assert config.resources.prometheus.values() == {"requests": {"cpu": "1", "memory": "4Gi"},
                                                    "limits": {"memory": "8Gi"}}
    assert config.secret_keys() == ["pagerdutyRoutingKey"]


CASES = [
    ({"prometheus": {"retention": "15 days"}},
     "llmops:monitoring.prometheus.retention: '15 days' is not a Prometheus duration"),
    ({"prometheus": {"storageSize": "50GB"}},
     "llmops:monitoring.prometheus.storageSize: '50GB' is not a Kubernetes quantity"),
    ({"prometheus": {"retentionSize": "45Gi"}},
     "llmops:monitoring.prometheus.retentionSize: '45Gi' is not a Prometheus size"),
    ({"prometheus": {"retension": "15d"}},
     "llmops:monitoring.prometheus.retension: unknown key; did you mean retention?"),
    ({"thresholds": {"errorRatio": 5}},
     "llmops:monitoring.thresholds.errorRatio: Input should be less than 1 (got 5)"),
    ({"thresholds": {"queueBacklog": 0}},
     "llmops:monitoring.thresholds.queueBacklog: Input should be greater than or equal to 1 (got 0)"),
    ({"slo": {"defaultObjective": 99.9}},
     "llmops:monitoring.slo.defaultObjective: 99.9 is not an availability objective"),
    ({"slo": {"defaultObjective": 0.9}},
     "llmops:monitoring.slo.defaultObjective: 0.9 leaves an error budget so large that a 14.4x burn"),
    ({"slo": {"objectives": {"llama": 0.5}}},
     "llmops:monitoring.slo.objectives: llama: 0.5 leaves an error budget so large"),
    ({"resources": {"grafana": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2"}}}},
     "llmops:monitoring.resources.grafana: limits.memory is required"),
    ({"resources": {"grafana": {"requests": {"cpu": "lots", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}}},
     "llmops:monitoring.resources.grafana.requests.cpu: 'lots' is not a Kubernetes quantity"),
    ({"receivers": [{"name": "pager", "type": "opsgenie", "secretKey": "k"}]},
     "llmops:monitoring.receivers[0].type: Input should be 'slack', 'pagerduty' or 'webhook'"),
    ({"receivers": [{"name": "Pager!", "type": "pagerduty", "secretKey": "k"}]},
     "llmops:monitoring.receivers[0].name: 'Pager!' is not a receiver name"),
    ({"receivers": [{"name": "hook", "type": "webhook", "secretKey": "llmops-secrets:hook"}]},
     "llmops:monitoring.receivers[0].secretKey: 'llmops-secrets:hook' is not a config key name"),
    ({"receivers": [{"name": "hook", "type": "webhook", "secretKey": "hookUrl", "channel": "#x"}]},
     "llmops:monitoring.receivers[0]: channel is only valid for slack receivers, not webhook"),
    ({"receivers": [{"name": "pager", "type": "pagerduty", "secretKey": "k"}],
      "routes": {"critical": ["pagr"]}},
     "llmops:monitoring: routes.critical[0]: no receiver named 'pagr' (receivers: pager)"),
    ({"receivers": [{"name": "a", "type": "webhook", "secretKey": "k"},
                    {"name": "a", "type": "webhook", "secretKey": "j"}]},
     "llmops:monitoring: receivers: 'a' is listed more than once"),
    ({"namespace": "Monitoring"}, "llmops:monitoring.namespace: 'Monitoring' is not a Kubernetes namespace"),
    ({"runbookBaseUrl": "http://wiki/runbooks"},
     "llmops:monitoring.runbookBaseUrl: 'http://wiki/runbooks' must be an https:// URL ending with '/'"),
]


@pytest.mark.parametrize(("section", "expected"), CASES, ids=[c[1].split(":")[2][:40] for c in CASES])
def test_bad_values_name_the_key_and_what_is_allowed(section, expected):
    problems = _problems(section)
    assert any(p.startswith(expected) for p in problems), problems
