"""`llmops policy check|config` and the policy step of `llmops plan`, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from policies.catalog import ALL_RULES
from policies.settings import CONFIG_DIR
from tests.policies.helpers import recorded, replace_inputs
from tests.policies.workloads import gpu_node_group, tgi_deployment

ROOT = Path(__file__).resolve().parents[2]
SG = "aws:ec2/securityGroup:SecurityGroup"


def write_plan(path: Path, stack: str, resources) -> Path:
    path.write_text(json.dumps({"stack": stack, "resources": [r.to_json() for r in resources],
                                "outputs": {}}))
    return path


@pytest.fixture
def clean_json(tmp_path):
    target = tmp_path / "dev.json"
    assert main(["plan", "--stack", "dev", "--quiet", "--json", str(target)]) == 0
    return target


def test_a_clean_plan_passes(clean_json, capsys):
    capsys.readouterr()
    assert main(["policy", "check", "--resources", str(clean_json)]) == 0
    assert capsys.readouterr().out.strip() == (
        f"Policies: no violations in stack 'dev' ({len(ALL_RULES)} policies).")


def test_a_mandatory_violation_exits_3_with_the_report_grouped_by_policy(plans, tmp_path, capsys):
    bad = replace_inputs(plans["dev"].resources, SG, "network-endpoints", ingress=[
        {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}])
    path = write_plan(tmp_path / "bad.json", "dev", bad)
    assert main(["policy", "check", "--resources", str(path), "--json", str(tmp_path / "v.json")]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[:4] == [
        "Policy violations in stack 'dev': 1 mandatory, 0 advisory",
        "",
        "[mandatory] security-group-no-public-admin-ports: No security group opens SSH, RDP or Kubernetes "
        "admin ports (6443 API, 10250 kubelet) to 0.0.0.0/0, ::/0 or any CIDRs that together cover more "
            "than a /8 of the internet.",
        "  - aws:ec2/securityGroup:SecurityGroup network-endpoints: ingress tcp 22 from 0.0.0.0/0 opens "
        "admin port(s) 22 to the internet"]
    assert out.splitlines()[4].startswith("  fix: Restrict the ingress CIDR")
    [violation] = json.loads((tmp_path / "v.json").read_text())
    assert violation["policy"] == "security-group-no-public-admin-ports"
    assert violation["level"] == "mandatory" and violation["name"] == "network-endpoints"


def test_advisory_violations_are_printed_but_do_not_fail(plans, tmp_path, capsys):
    # HAND-BUILT: a serving Deployment without a PDB (advisory in dev) added to the real plan.
    # (in the plan's serving namespace, which denies ingress by default and enforces baseline)
    resources = plans["dev"].resources + recorded(lambda: tgi_deployment(namespace="llm-serving"))
    path = write_plan(tmp_path / "plan.json", "dev", resources)
    assert main(["policy", "check", "--resources", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Policy violations in stack 'dev': 0 mandatory, 1 advisory" in out
    assert "[advisory] tgi-serving-has-pdb:" in out


def test_stack_selects_the_environment_config(plans, tmp_path, capsys):
    # HAND-BUILT: an on-demand GPU pool: mandatory spot violation in dev, allowed in prod.
    fallback = recorded(lambda: gpu_node_group("fallback", instance_types=["g5.2xlarge"],
                                               capacity_type="ON_DEMAND",
                                               tags=plans["prod"].config.resource_tags()))
    resources = plans["prod"].resources + fallback
    path = write_plan(tmp_path / "plan.json", "prod", resources)
    assert main(["policy", "check", "--resources", str(path)]) == 0
    assert main(["policy", "check", "--resources", str(path), "--stack", "dev"]) == 3
    assert "[mandatory] gpu-pool-spot-capacity" in capsys.readouterr().out


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist; write it with `llmops plan --stack <env> --json"),
    ("{not json", "is not JSON"),
    ('{"stack": "dev"}', "has no `resources` list; is it a `llmops plan --json` file?"),
])
def test_unreadable_plan_files_exit_1_with_a_message(tmp_path, capsys, content, message):
    path = tmp_path / "plan.json"
    if content is not None:
        path.write_text(content)
    assert main(["policy", "check", "--resources", str(path)]) == 1
    assert message in capsys.readouterr().err


def test_a_stack_without_policy_config_is_named(clean_json, capsys):
    assert main(["policy", "check", "--resources", str(clean_json), "--stack", "qa"]) == 1
    assert "no policy config for stack 'qa'" in capsys.readouterr().err


def test_config_prints_the_cli_json_of_a_stack(capsys):
    assert main(["policy", "config", "--stack", "prod"]) == 0
    assert capsys.readouterr().out == (CONFIG_DIR / "prod.json").read_text()


def test_plan_runs_the_policies_and_fails_on_a_mandatory_violation(tmp_path, capsys):
    """The real program with a bad setting: a blank CostCentre tag on every resource."""
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    config = yaml.safe_load((ROOT / "stacks/Pulumi.dev.yaml").read_text())
    config["config"]["llmops:tags"]["extra"] = {"CostCentre": ""}
    (stacks / "Pulumi.dev.yaml").write_text(yaml.safe_dump(config))
    (stacks / "offline-registry.yaml").write_text((ROOT / "stacks/offline-registry.yaml").read_text())
    assert main(["plan", "--stack", "dev", "--quiet", "--stacks-dir", str(stacks)]) == 3
    out = capsys.readouterr().out
    assert out.startswith("Offline plan of stack 'dev'")
    assert "[mandatory] required-cost-tags:" in out
    assert main(["plan", "--stack", "dev", "--quiet", "--stacks-dir", str(stacks), "--no-policy"]) == 0
    assert "required-cost-tags" not in capsys.readouterr().out


def test_plan_reports_a_clean_stack(capsys):
    assert main(["plan", "--stack", "prod"]) == 0
    out = capsys.readouterr().out
    assert "Resources by type:" in out and out.rstrip().endswith(
        f"Policies: no violations in stack 'prod' ({len(ALL_RULES)} policies).")
