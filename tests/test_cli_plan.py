"""`llmops plan` as a user runs it: exit codes, messages, the JSON file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from llmops.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_plan_prints_resources_by_type_and_outputs(capsys):
    assert main(["plan", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "Offline plan of stack 'dev' (us-west-2)" in out
    assert "aws:ec2/natGateway:NatGateway" in out
    assert "vpcId: \"vpc-" in out


def test_plan_json_has_every_resource_with_type_name_parent_inputs(tmp_path):
    target = tmp_path / "plan.json"
    assert main(["plan", "--stack", "staging", "--quiet", "--json", str(target)]) == 0
    document = json.loads(target.read_text())
    assert {"resources", "outputs"} <= set(document)
    subnets = [r for r in document["resources"] if r["type"] == "aws:ec2/subnet:Subnet"]
    assert len(subnets) == 6
    assert all({"type", "name", "parent", "inputs"} <= set(r) for r in document["resources"])
    assert subnets[0]["parent"].endswith("llmops:network:Network::network")


def test_unknown_stack_lists_the_known_ones(capsys):
    assert main(["plan", "--stack", "qa"]) == 1
    err = capsys.readouterr().err
    assert "no stack 'qa'" in err and "dev, prod, staging" in err


def test_bad_config_exits_non_zero_with_the_message_and_no_traceback(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    config = yaml.safe_load((ROOT / "stacks/Pulumi.dev.yaml").read_text())
    config["config"]["llmops:network"]["azCount"] = 12
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "llmops.cli", "plan", "--stack", "dev", "--stacks-dir", str(stacks)],
        capture_output=True, text=True)
    assert result.returncode == 2
    assert "llmops:network.azCount: Input should be less than or equal to 6 (got 12)" in result.stderr
    assert "Traceback" not in result.stderr
