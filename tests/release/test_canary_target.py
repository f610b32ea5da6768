"""`llmops canary target`: where CI port-forwards, which protocol it evaluates with and which
ScaledObject it pauses, read from the model's engine in the stack file (release.yml uses it)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from llmops.cli import main

ROOT = Path(__file__).resolve().parents[2]


def engines(stack: str) -> dict[str, str]:
    config = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {m["name"]: m.get("engine", "tgi") for m in config["llmops:models"]}


def give_qwen_a_canary(stacks: Path) -> None:
    """Prod's vLLM model ships without a canary: add one, as a release of it would."""
    path = stacks / "Pulumi.prod.yaml"
    text = path.read_text()
    path.write_text(text.replace("      replicas: {min: 2, max: 4}\n", "      replicas: {min: 2, max: 4}\n"
                                 "      canary:\n        registry: {stage: staging}\n        weight: 5\n"))


def test_the_shipped_stacks_have_a_tgi_and_a_vllm_model():
    for stack in ("prod", "staging"):
        assert engines(stack) == {"llama-3-8b": "tgi", "qwen-2-5-32b": "vllm"}


def test_a_tgi_canary_is_tgis_service_on_8080_speaking_tgi(stacks, capsys):
    assert main(["canary", "target", "--model", "llama-3-8b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "namespace=llm-serving", "service=tgi-llama-3-8b-canary", "scaledObject=tgi-llama-3-8b-canary",
        "port=8080", "protocol=tgi", "engine=tgi"]


def test_a_vllm_canary_is_vllms_service_on_8000_speaking_openai(stacks, capsys):
    give_qwen_a_canary(stacks)
    assert main(["canary", "target", "--model", "qwen-2-5-32b", "--stack", "prod",
                 "--stacks-dir", str(stacks), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "namespace": "llm-serving", "service": "vllm-qwen-2-5-32b-canary",
        "scaledObject": "vllm-qwen-2-5-32b-canary", "port": 8000, "protocol": "openai", "engine": "vllm"}


def test_the_target_is_named_as_the_model_server_names_its_service_and_scaler(stacks):
    """The names come from the engine the model server renders with, not a second copy."""
    from components.engines import service_target
    from components.model_server import deployment_name
    from serving.release.stack import load_stack

    give_qwen_a_canary(stacks)
    for model in load_stack("prod", stacks).config.models:
        found = service_target(model, "canary")
        assert found.service == deployment_name(model, "canary")
        assert found.service.startswith(f"{model.engine}-{model.name}")


def test_a_model_without_a_canary_is_a_clear_error(stacks, capsys):
    assert main(["canary", "target", "--model", "qwen-2-5-32b", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 1
    assert capsys.readouterr().err.strip() == (
        "error: stacks/Pulumi.prod.yaml: model 'qwen-2-5-32b' has no canary in llmops:models "
        "(nothing to evaluate or roll back)")


def test_an_unknown_model_lists_the_models(stacks, capsys):
    assert main(["canary", "target", "--model", "mistral", "--stack", "prod",
                 "--stacks-dir", str(stacks)]) == 1
    assert "no model 'mistral' in llmops:models; models: llama-3-8b, qwen-2-5-32b" in capsys.readouterr().err
