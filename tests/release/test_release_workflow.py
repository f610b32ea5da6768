"""The release workflow calls llmops with arguments the CLI accepts, and branches on the exit
codes `canary analyze` really uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from components.engines import ENGINES
from llmops.cli import build_parser
from llmops.commands.canary import EXIT

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "release.yml"


def llmops_calls() -> list[list[str]]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    calls = []
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            script = re.sub(r"\$\{\{[^}]*\}\}", "x", step.get("run", "")).replace("\\\n", " ")
            for line in script.splitlines():
                # the protocol comes from `canary target`: any engine's (checked below)
                line = line.replace("$PROMETHEUS_URL", "http://p:9090").replace("$PROTOCOL", "openai")
                words = shlex.split(line)
                if words and words[0] == ".venv/bin/llmops":
                    calls.append(words[1:words.index(">>")] if ">>" in words else words[1:])
    return calls


def test_the_workflow_runs_evaluate_analyze_promote_and_rollback():
    assert sorted(call[0] if call[0] != "canary" else f"canary {call[1]}" for call in llmops_calls()) == [
        "canary analyze", "canary promote", "canary rollback", "canary target", "canary target",
        "evaluate"]


@pytest.mark.parametrize("call", llmops_calls(), ids=lambda c: " ".join(c[:2]))
def test_every_llmops_call_parses(call):
    build_parser().parse_args(call)  # argparse exits (SystemExit) on an unknown flag


def test_the_workflow_branches_on_the_analyze_exit_codes():
    text = WORKFLOW.read_text()
    for decision, code in EXIT.items():
        assert f'{code}) echo "decision={decision}"' in text


def test_the_workflow_names_no_engine_and_reads_the_canary_target_instead():
    """Service names, ports and the protocol depend on the model's engine: `canary target` says
    them, so a vLLM model's canary is evaluated and rolled back like a TGI model's."""
    text = WORKFLOW.read_text()
    script = "\n".join(step.get("run", "") for job in yaml.safe_load(text)["jobs"].values()
                       for step in job["steps"])
    for engine in ENGINES.values():
        assert f"{engine.name}-" not in script, f"the workflow hard-codes the {engine.name} prefix"
        assert f":{engine.http_port}" not in script, f"the workflow hard-codes {engine.name}'s port"
    assert 'port-forward "svc/$SERVICE" "$PORT:$PORT"' in script
    assert '--endpoint "http://127.0.0.1:$PORT" --protocol "$PROTOCOL"' in script
    assert 'annotate scaledobject "$SCALED_OBJECT"' in script
    assert text.count("SERVICE: ${{ steps.target.outputs.service }}") == 1
    assert text.count("SCALED_OBJECT: ${{ steps.target.outputs.scaledObject }}") == 1


def test_every_engines_protocol_is_one_evaluate_speaks():
    parser = build_parser()
    for engine in ENGINES.values():
        args = parser.parse_args(["evaluate", "--endpoint", "http://x", "--suite", "s.yaml",
                                  "--protocol", engine.protocol])
        assert args.protocol == engine.protocol
