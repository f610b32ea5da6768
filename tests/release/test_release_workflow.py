"""The release workflow calls llmops with arguments the CLI accepts, and branches on the exit
codes `canary analyze` really uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

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
                words = shlex.split(line.replace("$PROMETHEUS_URL", "http://p:9090"))
                if words and words[0] == ".venv/bin/llmops":
                    calls.append(words[1:])
    return calls


def test_the_workflow_runs_evaluate_analyze_promote_and_rollback():
    assert sorted(call[0] if call[0] != "canary" else f"canary {call[1]}" for call in llmops_calls()) == [
        "canary analyze", "canary promote", "canary rollback", "evaluate"]


@pytest.mark.parametrize("call", llmops_calls(), ids=lambda c: " ".join(c[:2]))
def test_every_llmops_call_parses(call):
    build_parser().parse_args(call)  # argparse exits (SystemExit) on an unknown flag


def test_the_workflow_branches_on_the_analyze_exit_codes():
    text = WORKFLOW.read_text()
    for decision, code in EXIT.items():
        assert f'{code}) echo "decision={decision}"' in text
