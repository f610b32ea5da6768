"""The example application stack (examples/app-stack) planned offline against a real workloads
plan: its StackReference answers with what `llmops plan` recorded for that stack."""

from __future__ import annotations

import runpy
from pathlib import Path

import kubernetes_validate
import pulumi
import pytest
import yaml

from llmops.offline.manifests import manifests
from llmops.offline.mocks import OfflineMocks
from llmops.offline.plan import Recording, record

EXAMPLE = Path(__file__).parents[1] / "examples" / "app-stack"
PROJECT = yaml.safe_load((EXAMPLE / "Pulumi.yaml").read_text())["name"]
DEV_CONFIG = yaml.safe_load((EXAMPLE / "Pulumi.dev.yaml").read_text())["config"]
WORKLOADS_STACK = DEV_CONFIG[f"{PROJECT}:workloadsStack"]


def plan_example(workloads_outputs: dict, secret_outputs: tuple[str, ...], **config: str) -> Recording:
    mocks = OfflineMocks(region="us-west-2")
    mocks.stack_references[WORKLOADS_STACK] = (workloads_outputs, secret_outputs)
    values = {**DEV_CONFIG, f"{PROJECT}:gatewayApiKey": "sk-chat-assistant-0123456789",
              **{f"{PROJECT}:{k}": v for k, v in config.items()}}
    return record(lambda: runpy.run_path(str(EXAMPLE / "__main__.py")), stack="dev",
                  project=PROJECT, config=values, secret_keys=[f"{PROJECT}:gatewayApiKey"],
                  mocks=mocks)


@pytest.fixture(scope="module")
def workloads(plans) -> tuple[dict, tuple[str, ...]]:
    plan = plans["dev"]
    return plan.stack_outputs["workloads"], plan.stack_secret_outputs["workloads"]


def test_the_example_reads_the_dev_workloads_stack_it_is_configured_for():
    assert WORKLOADS_STACK == "organization/llmops-workloads/dev"


def test_the_app_gets_a_configmap_and_secret_pointing_at_the_gateway(workloads):
    outputs, secrets = workloads
    app = plan_example(outputs, secrets)
    settings = app.of_type("kubernetes:core/v1:ConfigMap")[0].inputs
    assert settings["metadata"] == {"name": f"{PROJECT}-llm", "namespace": "chat-assistant",
                                    "labels": {"app.kubernetes.io/part-of": PROJECT,
                                               "app.kubernetes.io/managed-by": "pulumi"}}
    assert settings["data"] == {
        "LLMOPS_GATEWAY_URL": outputs["gatewayUrl"], "LLMOPS_MODEL": "llama-3-8b",
        "LLMOPS_OUTPUTS_SCHEMA_VERSION": outputs["outputsSchemaVersion"],
        "OPENAI_BASE_URL": outputs["gatewayUrl"] + "/v1"}
    key = app.of_type("kubernetes:core/v1:Secret")[0]
    assert key.inputs["stringData"] == {"LLMOPS_API_KEY": "sk-chat-assistant-0123456789",
                                        "OPENAI_API_KEY": "sk-chat-assistant-0123456789"}
    assert key.secret_paths == ("stringData",)
    provider = app.of_type("pulumi:providers:kubernetes")[0]
    assert provider.inputs["kubeconfig"] == outputs["kubeconfig"]
    assert "kubeconfig" in provider.secret_paths
    for resource in app.of_type("kubernetes:core/v1:ConfigMap") + app.of_type("kubernetes:core/v1:Secret"):
        assert resource.options["provider"] == provider.urn
    assert app.outputs["outputsSchemaVersion"] == "1.0"


def test_the_apps_objects_validate_against_the_cluster_schema(plans, workloads):
    for manifest in manifests(plan_example(*workloads).resources):
        kubernetes_validate.validate(manifest, plans["dev"].config.cluster.version, strict=True)


@pytest.mark.parametrize(("version", "message"), [
    ("2.0", "organization/llmops-workloads/dev publishes output schema 2.0, but this program "
            "understands 1.x: read the llmops docs/outputs.md tables for what changed, update "
            "this program, then raise UNDERSTOOD_MAJOR"),
    (None, "organization/llmops-workloads/dev exports no outputsSchemaVersion: it predates the "
           "output contract or is not an llmops workloads stack"),
], ids=["newer-major", "missing"])
def test_a_contract_the_example_does_not_understand_deploys_nothing(workloads, version, message):
    outputs, secrets = workloads
    outputs = {k: v for k, v in outputs.items() if k != "outputsSchemaVersion"}
    if version is not None:
        outputs["outputsSchemaVersion"] = version
    with pytest.raises(pulumi.RunError) as caught:
        plan_example(outputs, secrets)
    assert str(caught.value) == message


def test_a_newer_minor_is_fine(workloads):
    outputs, secrets = workloads
    app = plan_example({**outputs, "outputsSchemaVersion": "1.4"}, secrets)
    assert app.outputs["outputsSchemaVersion"] == "1.4"


def test_a_model_the_gateway_does_not_serve_is_refused(workloads):
    with pytest.raises(pulumi.RunError) as caught:
        plan_example(*workloads, model="gpt-5")
    assert str(caught.value) == ("model 'gpt-5' is not served by organization/llmops-workloads/dev; "
                                 "models: llama-3-8b (config key `model`)")
