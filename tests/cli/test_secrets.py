"""Secrets never sit in the YAML in plain text and never leave the plan: not on stdout, not
in --json, not in --manifests, not in `llmops outputs`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from llmops.commands.plan import render_summary
from llmops.offline.manifests import write_manifests
from llmops.offline.plan import run_plan
from tests.cli.conftest import edit_config, llmops
from vocabulary.stackfile import OFFLINE_SECRET

PLANTED = "PLANTED-s3cr3t-7f4e2a"


def test_a_plain_text_secret_in_the_workloads_file_names_the_command_that_encrypts_it(
        stacks_dir: Path):
    workloads = stacks_dir / "workloads" / "Pulumi.dev.yaml"
    workloads.write_text(yaml.safe_dump({"config": {
        "llmops-secrets:grafanaAdminPassword": PLANTED,
        "llmops-secrets:slackWebhookUrl": {"secure": "AAABADQ5"}}}))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert run.first_line.endswith("has 2 configuration problems:")
    assert (f"llmops-secrets:grafanaAdminPassword: a secret written in plain text in {workloads}; "
            "delete it there and run `(cd stacks/workloads && pulumi config set --secret --stack "
            "dev llmops-secrets:grafanaAdminPassword)`") in run.stderr
    # dev has no receivers: an encrypted key nobody reads is a typo or a leftover
    assert "llmops-secrets:slackWebhookUrl: unknown secret" in run.stderr
    assert PLANTED not in run.stderr + run.stdout


def test_a_plain_text_gateway_key_file_in_the_environment_file_is_an_error(stacks_dir: Path):
    edit_config(stacks_dir / "Pulumi.dev.yaml",
                lambda c: c.update({"llmops:gatewayApiKeys": PLANTED}))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert ("llmops:gatewayApiKeys: a secret written in plain text in "
            f"{stacks_dir}/Pulumi.dev.yaml; delete it there and run `(cd stacks/workloads && "
            "pulumi config set --secret --stack dev llmops:gatewayApiKeys < gateway-keys.yaml)`"
            ) in run.stderr


def test_a_misspelled_secret_key_gets_did_you_mean(stacks_dir: Path):
    workloads = stacks_dir / "workloads" / "Pulumi.dev.yaml"
    workloads.write_text(yaml.safe_dump(
        {"config": {"llmops-secrets:grafanaAdminPasword": {"secure": "AAABADQ5"}}}))
    run = llmops("plan", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 2
    assert ("llmops-secrets:grafanaAdminPasword: unknown secret; did you mean "
            "llmops-secrets:grafanaAdminPassword?") in run.stderr


def test_no_output_of_a_plan_contains_a_secret_value(tmp_path: Path, capsys):
    """Plant a distinctive value in every secret the prod stack reads, write every output."""
    secrets = ("llmops:gatewayApiKeys", "llmops-secrets:grafanaAdminPassword",
               "llmops-secrets:pagerdutyRoutingKey", "llmops-secrets:slackWebhookUrl")
    plan = run_plan("prod", overrides={key: f"{PLANTED}-{i}" for i, key in enumerate(secrets)})
    # the values did reach the program (else this test could not fail)
    assert any(PLANTED in json.dumps(r.inputs) for r in plan.resources)
    summary = render_summary(plan)
    plan.write_json(tmp_path / "plan.json")
    write_manifests(plan.resources, tmp_path / "manifests")
    from llmops.commands.outputs import render, to_json
    shown = render(plan) + json.dumps(to_json(plan))
    written = [p.read_text() for p in tmp_path.rglob("*") if p.is_file()]
    assert written and len(written) > 30
    for text in [summary, shown, *written]:
        assert PLANTED not in text


def test_cli_outputs_never_show_the_offline_placeholder(tmp_path: Path):
    """The placeholder stands in for secrets under the CLI: it is the value to look for."""
    plan_json, manifests = tmp_path / "plan.json", tmp_path / "manifests"
    run = llmops("plan", "--stack", "prod", "--json", str(plan_json), "--manifests", str(manifests))
    assert run.returncode == 0
    outputs = llmops("outputs", "--stack", "prod", "--json")
    texts = [run.stdout, outputs.stdout, plan_json.read_text(),
             *(p.read_text() for p in manifests.glob("*.yaml"))]
    assert all(OFFLINE_SECRET not in text for text in texts)
    assert any("[secret]" in p.read_text() for p in manifests.glob("*.yaml"))


def test_secrets_lists_each_secret_its_state_and_the_command_to_set_it(stacks_dir: Path):
    workloads = stacks_dir / "workloads" / "Pulumi.prod.yaml"
    workloads.write_text(yaml.safe_dump(
        {"config": {"llmops-secrets:grafanaAdminPassword": {"secure": "AAABADQ5"}}}))
    run = llmops("secrets", "--stack", "prod", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 0
    assert run.first_line == ("Secrets of stack 'prod': 1 of 4 set (the workloads stack reads "
                              "them; values are never shown)")
    lines = run.stdout.splitlines()
    grafana = next(line for line in lines if "llmops-secrets:grafanaAdminPassword" in line)
    assert " set " in grafana
    assert ("set it:  (cd stacks/workloads && pulumi config set --secret --stack prod "
            "llmops-secrets:pagerdutyRoutingKey)") in run.stdout
    assert "set it:  (cd stacks/workloads && pulumi config set --secret --stack prod " \
           "llmops-secrets:grafanaAdminPassword)" not in run.stdout
    check = llmops("secrets", "--stack", "prod", "--check", "--stacks-dir", str(stacks_dir))
    assert check.returncode == 1


def test_the_plan_says_which_secrets_it_replaced_with_placeholders():
    run = llmops("plan", "--stack", "dev", "--no-policy")
    assert run.returncode == 0
    assert ("Secrets: planned with placeholders for 2 not set in stacks/workloads/Pulumi.dev.yaml "
            "(llmops:gatewayApiKeys, llmops-secrets:grafanaAdminPassword)") in run.stdout
