"""Every shipped stack's plan carries the monitoring stack, wired to what the stack serves."""

from __future__ import annotations

import pytest
import yaml

from components.alert_rules import RULES_DIR
from tests.conftest import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_plans_show_releases_monitors_rules_and_dashboards(plans, stack):
    plan = plans[stack]
    charts = {r.inputs["chart"]: r.inputs["version"] for r in plan.of_type("kubernetes:helm.sh/v3:Release")}
    assert {"kube-prometheus-stack", "dcgm-exporter"} <= set(charts)
    monitored = {m.inputs["metadata"]["name"] for m in
                 plan.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")}
    for model in plan.config.models:
        assert any(model.name in name for name in monitored), (model.name, monitored)
    rules = plan.of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
    alerts = {r["alert"] for rule in rules for g in rule.inputs["spec"]["groups"]
              for r in g["rules"] if "alert" in r}
    assert {"LLMHighErrorRate", "LLMHighLatency", "GPUMemoryExhaustion", "ModelServingDown",
            "TGIQueueBacklog", "GPUXidError"} <= alerts
    dashboards = [c for c in plan.of_type("kubernetes:core/v1:ConfigMap")
                  if c.inputs["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(dashboards) == 2


def test_the_shipped_rule_files_are_what_the_cluster_gets(plans):
    shipped = yaml.safe_load((RULES_DIR / "llm-serving.yaml").read_text())["groups"]
    deployed = [g for rule in plans["prod"].of_type("kubernetes:monitoring.coreos.com/v1:PrometheusRule")
                for g in rule.inputs["spec"]["groups"]]
    for group in shipped:
        assert group in deployed


@pytest.mark.parametrize("stack", STACKS)
def test_karpenter_s_controller_is_scraped_so_its_alerts_can_fire(plans, stack):
    """The chart's ServiceMonitor is off; without ours the karpenter.yaml alerts never fire."""
    plan = plans[stack]
    [controller] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                    if r.inputs["chart"].endswith("/karpenter")]
    [monitor] = [m for m in plan.of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
                 if m.inputs["metadata"]["name"] == "karpenter"]
    spec = monitor.inputs["spec"]
    # the chart's Service: name and instance label are the release's, port http-metrics
    assert spec["namespaceSelector"] == {"matchNames": [controller.inputs["namespace"]]}
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "karpenter",
                                               "app.kubernetes.io/instance": controller.inputs["name"]}
    [endpoint] = spec["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http-metrics", "/metrics")
    assert {"targetLabel": "job", "replacement": "karpenter"} in endpoint["relabelings"]
    [stack_release] = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release")
                       if r.inputs["chart"] == "kube-prometheus-stack"]
    assert stack_release.urn in monitor.dependencies  # its CRD exists first
