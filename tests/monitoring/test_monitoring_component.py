"""The Monitoring component as recorded offline: releases, scrape targets, rules, dashboards, secrets."""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s
import pytest
import yaml

from components import alert_rules
from components.monitoring import Monitoring, MonitoringArgs
from llmops.offline.plan import record
from vocabulary.config.base import ConfigError
from vocabulary.config.monitoring import MonitoringConfig
from vocabulary.gpu_instances import gpu_instances

RELEASE = "kubernetes:helm.sh/v3:Release"
CR = "kubernetes:monitoring.coreos.com/v1:{}"
MODELS = ["llama-3-8b", "mistral-7b"]
CONFIG = MonitoringConfig.model_validate({
    "prometheus": {"retention": "30d", "retentionSize": "90GB", "storageSize": "100Gi",
                   "storageClass": "gp3"},
    "thresholds": {"queueBacklog": 20},
    "slo": {"defaultObjective": 0.995, "objectives": {"llama-3-8b": 0.999}},
    "receivers": [{"name": "oncall", "type": "pagerduty", "secretKey": "pagerdutyRoutingKey"},
                  {"name": "llm-team", "type": "slack", "secretKey": "slackWebhookUrl",
                   "channel": "#llm-alerts"}],
    "routes": {"critical": ["oncall", "llm-team"], "warning": ["llm-team"]},
})
SECRETS = {"pagerdutyRoutingKey": "pd-routing-key-123", "slackWebhookUrl": "https://hooks.slack.test/T/B/x"}


def _record(config=CONFIG, models=MODELS, secrets=SECRETS):
    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        Monitoring("monitoring", MonitoringArgs(
            config=config, models=models, instance_prices=gpu_instances(),
            grafana_admin_password=pulumi.Output.secret("s3cret-pw"),
            receiver_secrets={k: pulumi.Output.secret(v) for k, v in secrets.items()}),
            opts=pulumi.ResourceOptions(provider=provider))
    return record(program)


@pytest.fixture(scope="module")
def recording():
    return _record()


def _named(recording, type_token, metadata_name):
    found = [r for r in recording.of_type(type_token) if r.inputs["metadata"]["name"] == metadata_name]
    assert len(found) == 1, [r.inputs["metadata"]["name"] for r in recording.of_type(type_token)]
    return found[0]


def _is_secret(resource, path):
    """The value at `path`, or a whole map containing it, is marked secret."""
    return any(path == p or path.startswith(p + ".") for p in resource.secret_paths)


def _release(recording, chart):
    return next(r for r in recording.of_type(RELEASE) if r.inputs["chart"] == chart)


def test_kube_prometheus_stack_is_pinned_with_retention_storage_and_limits(recording):
    release = _release(recording, "kube-prometheus-stack")
    assert release.inputs["version"] == "81.4.3"
    assert release.inputs["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert release.inputs["namespace"] == "monitoring"
    spec = release.inputs["values"]["prometheus"]["prometheusSpec"]
    assert spec["retention"] == "30d" and spec["retentionSize"] == "90GB"
    claim = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert claim["resources"]["requests"]["storage"] == "100Gi"
    assert claim["storageClassName"] == "gp3"
    assert spec["resources"] == {"requests": {"cpu": "500m", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    values = release.inputs["values"]
    for workload in (values["grafana"], values["prometheusOperator"], values["kube-state-metrics"],
                     values["prometheus-node-exporter"], values["alertmanager"]["alertmanagerSpec"]):
        assert workload["resources"]["limits"]["memory"]
    assert "nodes=[llmops.io/gpu-pool,karpenter.sh/capacity-type,node.kubernetes.io/instance-type]" in \
        values["kube-state-metrics"]["metricLabelsAllowlist"]


def test_secrets_are_referenced_by_the_chart_never_put_in_its_values(recording):
    values = _release(recording, "kube-prometheus-stack").inputs["values"]
    assert values["grafana"]["admin"] == {"existingSecret": "grafana-admin", "userKey": "admin-user",
                                          "passwordKey": "admin-password"}
    assert values["alertmanager"]["alertmanagerSpec"]["useExistingSecret"] is True
    assert values["alertmanager"]["alertmanagerSpec"]["configSecret"] == "alertmanager-llmops"
    text = json.dumps([r.inputs for r in recording.of_type(RELEASE)])
    assert not any(s in text for s in ["s3cret-pw", *SECRETS.values()])


def test_secrets_are_marked_secret(recording):
    grafana = _named(recording, "kubernetes:core/v1:Secret", "grafana-admin")
    assert grafana.inputs["stringData"]["admin-password"] == "s3cret-pw"
    assert _is_secret(grafana, "stringData.admin-password")
    alertmanager = _named(recording, "kubernetes:core/v1:Secret", "alertmanager-llmops")
    assert _is_secret(alertmanager, "stringData.alertmanager.yaml")
    assert all("s3cret" not in json.dumps(r.to_json()) for r in recording.resources)


def test_alertmanager_routes_by_severity_to_the_configured_receivers(recording):
    secret = _named(recording, "kubernetes:core/v1:Secret", "alertmanager-llmops")
    config = yaml.safe_load(secret.inputs["stringData"]["alertmanager.yaml"])
    routes = [(r["matchers"], r["receiver"]) for r in config["route"]["routes"]]
    assert (['severity = "critical"'], "oncall") in routes
    assert (['severity = "critical"'], "llm-team") in routes
    assert (['severity = "warning"'], "llm-team") in routes
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["oncall"]["pagerduty_configs"][0]["routing_key"] == "pd-routing-key-123"
    assert receivers["llm-team"]["slack_configs"][0]["api_url"] == SECRETS["slackWebhookUrl"]
    assert receivers["llm-team"]["slack_configs"][0]["channel"] == "#llm-alerts"


def test_dcgm_exporter_is_pinned_tolerates_the_gpu_taint_and_selects_gpu_nodes(recording):
    release = _release(recording, "dcgm-exporter")
    assert release.inputs["version"] == "4.1.1"
    assert release.inputs["repositoryOpts"] == {"repo": "https://nvidia.github.io/dcgm-exporter/helm-charts"}
    values = release.inputs["values"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    terms = values["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "llmops.io/gpu-pool", "operator": "Exists"}]
    assert values["resources"]["limits"]["memory"]


def test_dcgm_exporter_is_scraped_through_a_service_monitor_with_the_node_name(recording):
    monitor = _named(recording, CR.format("ServiceMonitor"), "dcgm-exporter")
    endpoint = monitor.inputs["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics"
    node = {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}
    assert node in endpoint["relabelings"]
    assert monitor.inputs["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "dcgm-exporter"


@pytest.mark.parametrize("model", MODELS)
def test_every_model_s_tgi_pods_are_scraped_with_a_model_label(recording, model):
    monitor = _named(recording, CR.format("PodMonitor"), f"tgi-{model}")
    spec = monitor.inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["llm-serving"]}
    assert spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "tgi", "llmops.io/model": model}
    endpoint = spec["podMetricsEndpoints"][0]
    assert endpoint["port"] == "metrics"
    assert {"sourceLabels": ["__meta_kubernetes_pod_label_llmops_io_model"],
            "targetLabel": "model"} in endpoint["relabelings"]
    assert {"targetLabel": "job", "replacement": "tgi"} in endpoint["relabelings"]


def test_the_gateway_is_scraped_on_its_http_port(recording):
    spec = _named(recording, CR.format("PodMonitor"), "llm-gateway").inputs["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["llm-gateway"]}
    assert spec["podMetricsEndpoints"][0]["port"] == "http"
    assert spec["podMetricsEndpoints"][0]["path"] == "/metrics"


def test_prometheus_rules_equal_the_rule_files(recording):
    rules = {r.inputs["metadata"]["name"]: r for r in recording.of_type(CR.format("PrometheusRule"))}
    for name, path in alert_rules.rule_files().items():
        assert f"llmops-{name}" in rules
        if name != "parameters":  # the one group rendered from this config (checked below)
            assert rules[f"llmops-{name}"].inputs["spec"] == alert_rules.load(path), name
        assert rules[f"llmops-{name}"].inputs["apiVersion"] == "monitoring.coreos.com/v1"


def test_the_parameters_rule_carries_this_config_s_thresholds_and_objectives(recording):
    rule = _named(recording, CR.format("PrometheusRule"), "llmops-parameters")
    assert rule.inputs["spec"] == alert_rules.parameter_rules(CONFIG.thresholds, CONFIG.slo)
    exprs = {(r["record"], r.get("labels", {}).get("model")): r["expr"]
             for r in rule.inputs["spec"]["groups"][0]["rules"]}
    assert exprs[("llmops:alert_threshold:tgi_queue_size", None)] == "vector(20.0)"
    assert exprs[("llmops:slo_objective:ratio", "llama-3-8b")] == "vector(0.999)"


def test_default_config_ships_the_rule_files_exactly():
    recording = _record(config=MonitoringConfig(), secrets={})
    for name, path in alert_rules.rule_files().items():
        rule = _named(recording, CR.format("PrometheusRule"), f"llmops-{name}")
        assert rule.inputs["spec"] == alert_rules.load(path)


def test_custom_resources_wait_for_the_chart_that_installs_their_crds(recording):
    stack = _release(recording, "kube-prometheus-stack")
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        for resource in recording.of_type(CR.format(kind)):
            assert stack.urn in resource.dependencies, resource.name


def test_dashboards_ship_as_config_maps_for_the_grafana_sidecar(recording):
    maps = {r.inputs["metadata"]["name"]: r for r in recording.of_type("kubernetes:core/v1:ConfigMap")}
    assert set(maps) == {"dashboard-llm-serving-overview", "dashboard-gpu-fleet-cost"}
    for config_map in maps.values():
        assert config_map.inputs["metadata"]["labels"]["grafana_dashboard"] == "1"
        (content,) = config_map.inputs["data"].values()
        assert json.loads(content)["uid"].startswith("llmops-")


def test_every_child_is_parented_to_the_component(recording):
    component = recording.of_type("llmops:monitoring:Monitoring")[0]
    children = [r for r in recording.resources if r.custom and r.type != "pulumi:providers:kubernetes"]
    assert len(children) >= 15
    assert all(r.parent == component.urn for r in children)


def test_unknown_slo_model_and_missing_receiver_secret_fail_before_any_resource():
    config = CONFIG.model_copy(update={"slo": CONFIG.slo.model_copy(update={"objectives": {"gpt-9": 0.999}})})
    with pytest.raises(ConfigError) as caught:
        _record(config=config, secrets={"pagerdutyRoutingKey": "x"})
    assert caught.value.problems == [
        "llmops:monitoring.slo.objectives.gpt-9: no model named 'gpt-9' is served "
        "(models: llama-3-8b, mistral-7b)",
        "llmops:monitoring.receivers[1].secretKey: no secret llmops-secrets:slackWebhookUrl was provided"]


def _manifest(resource):
    manifest = dict(resource.inputs)
    manifest["metadata"] = dict(manifest["metadata"])
    return manifest


def test_core_objects_are_valid_kubernetes_manifests(recording):
    import kubernetes_validate

    for type_token in ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:Secret",
                       "kubernetes:core/v1:ConfigMap"):
        for resource in recording.of_type(type_token):
            kubernetes_validate.validate(_manifest(resource), "1.31", strict=True)
