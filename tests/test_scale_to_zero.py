"""Scale to zero where the environment allows it (llmops:serving.minReplicas 0): the scaler
of the track that takes the model's traffic wakes on the gateway's gauge of held requests,
and the routing document tells the gateway how long to hold them."""

from __future__ import annotations

import pytest
import yaml

from components.gateway_routes import MAX_HOLD_S, routing_document
from llmops.offline.plan import run_plan
from vocabulary.config import ConfigError

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"


def _scalers(plan):
    return {s.inputs["metadata"]["name"]: s.inputs["spec"] for s in plan.of_type(SCALED_OBJECT)}


def _routing(plan):
    return yaml.safe_load(routing_document(plan.outputs["modelRoutes"], plan.config.models))["models"]


def test_dev_scales_its_model_to_zero_and_wakes_it_on_requests_the_gateway_holds(plans):
    spec = _scalers(plans["dev"])["tgi-llama-3-8b"]
    assert spec["minReplicaCount"] == 0
    wake = [t for t in spec["triggers"] if "llm_requests_waiting" in t["metadata"]["query"]]
    assert wake == [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
        "serverAddress": "http://kube-prometheus-stack-prometheus.monitoring.svc:9090",
        "query": 'sum(llm_requests_waiting{model="llama-3-8b"})', "threshold": "8",
        "ignoreNullValues": "true"}}]
    hold = _routing(plans["dev"])["llama-3-8b"]["coldStart"]["holdSeconds"]
    # a fresh GPU node's whole start (llmops cold-start: 5m53s on dev's g6.xlarge), within the limit
    assert 300 < hold <= MAX_HOLD_S


def test_only_the_live_colour_of_a_blue_green_model_wakes(plans):
    scalers = _scalers(plans["staging"])
    assert scalers["vllm-qwen-2-5-32b-blue"]["minReplicaCount"] == 0
    wakes = {name for name, spec in scalers.items()
             if any("llm_requests_waiting" in t["metadata"]["query"] for t in spec["triggers"])}
    assert wakes == {"vllm-qwen-2-5-32b-blue"}
    flipped = run_plan("staging", overrides={"llmops:models.1.blueGreen.active": "green"})
    wakes = {name for name, spec in _scalers(flipped).items()
             if any("llm_requests_waiting" in t["metadata"]["query"] for t in spec["triggers"])}
    assert wakes == {"vllm-qwen-2-5-32b-green"}


def test_prod_keeps_replicas_warm_and_its_routes_hold_nothing(plans):
    assert all(spec["minReplicaCount"] >= 1 for spec in _scalers(plans["prod"]).values())
    assert all("coldStart" not in route for route in _routing(plans["prod"]).values())
    with pytest.raises(ConfigError) as caught:
        run_plan("prod", overrides={"llmops:models.0.replicas": {"min": 0, "max": 8}})
    assert any("replicas.min: 0 is below llmops:serving.minReplicas (2)" in p
               for p in caught.value.problems), caught.value.problems
