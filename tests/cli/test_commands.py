"""The commands users reach for after `plan`: outputs, diff, cost, cold-start; each run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from llmops.offline.cost import estimate
from llmops.offline.plan_diff import ENV, diff_plans, flatten, normaliser
from policies.gpu_cost import check_budget
from policies.runner import to_resource
from tests.cli.conftest import ROOT, llmops
from vocabulary.config import PRODUCT, parse_platform_config
from vocabulary.stackfile import read_stack_config


def test_outputs_shows_plain_ssm_values_and_masks_only_secrets():
    run = llmops("outputs", "--stack", "dev", process=True)  # exit 0 from a real process
    assert run.returncode == 0
    assert run.first_line.startswith("Outputs of stack 'dev' (us-west-2)")
    lines = run.stdout.splitlines()
    assert any(line.split() == ["/llmops/dev/platform/clusterName", "String", "llmops-dev"]
               for line in lines)
    assert any(line.split() == ["kubeconfig", "[secret]"] for line in lines)


def test_outputs_json_has_both_stacks_and_every_published_parameter(plans):
    run = llmops("outputs", "--stack", "prod", "--json")
    assert run.returncode == 0
    document = json.loads(run.stdout)
    assert set(document["outputs"]) == {"platform", "workloads"}
    assert document["outputs"]["platform"]["kubeconfig"] == "[secret]"
    parameters = {p["name"]: p for p in document["ssmParameters"]}
    assert len(parameters) == len(plans["prod"].of_type("aws:ssm/parameter:Parameter"))
    assert parameters["/llmops/prod/platform/clusterName"]["value"] == "llmops-prod"
    assert parameters["/llmops/prod/workloads/gatewayUrl"]["stack"] == "workloads"
    # plain values for String parameters; the kubeconfig's SecureString stays masked
    assert all((p["value"] == "[secret]") == (p["type"] == "SecureString") for p in parameters.values())
    assert parameters["/llmops/prod/platform/kubeconfig"]["value"] == "[secret]"


def test_a_parameter_mirroring_a_secret_output_stays_masked(plans):
    """The mirror of a secret output is masked although the SDK marks every value secret."""
    from llmops.offline.published import is_secret_value

    plan = plans["dev"]
    parameter = next(p for p in plan.of_type("aws:ssm/parameter:Parameter")
                     if p.inputs["name"] == "/llmops/dev/platform/clusterName")
    assert not is_secret_value(plan, parameter)
    plan.secret_outputs = (*plan.secret_outputs, "clusterName")
    try:
        assert is_secret_value(plan, parameter)
    finally:
        plan.secret_outputs = plan.secret_outputs[:-1]


def test_diff_of_two_stacks_names_resources_and_property_paths():
    run = llmops("diff", "dev", "prod")
    assert run.returncode == 0
    assert run.first_line.startswith("Plan diff dev -> prod ('dev' and 'prod' appear as <env>):")
    assert "+ [platform] aws:ec2/natGateway:NatGateway network-nat-us-east-1b" in run.stdout
    assert "~ [platform] aws:cloudwatch/logGroup:LogGroup network-flow-logs" in run.stdout
    assert "    retentionInDays: 14 -> 365" in run.stdout
    # the environments' names are not differences
    assert '"llmops-dev" -> "llmops-prod"' not in run.stdout
    assert "/llmops/dev/" not in run.stdout


def test_diff_of_a_plan_file_against_its_own_stack_is_empty(tmp_path: Path, plans):
    target = tmp_path / "dev.json"
    assert llmops("plan", "--stack", "dev", "--quiet", "--no-policy", "--json",
                  str(target)).returncode == 0
    run = llmops("diff", str(target), "dev")
    assert run.returncode == 0
    every = len(plans["dev"].resources)
    assert run.first_line.endswith(f": 0 added, 0 removed, 0 changed, {every} unchanged")


def test_diff_refuses_what_is_neither_a_plan_nor_a_stack(tmp_path: Path):
    not_a_plan = tmp_path / "x.json"
    not_a_plan.write_text('{"a": 1}')
    run = llmops("diff", str(not_a_plan), "qa")
    assert run.returncode == 1
    assert run.first_line.startswith(f"error: {not_a_plan} is not a plan")
    run = llmops("diff", "dev", "qa")
    assert run.first_line == "error: 'qa' is neither a plan JSON file nor a stack; stacks: dev, prod, staging"


def test_normalising_keeps_device_paths_and_hosts_that_merely_contain_the_name():
    normalise = normaliser("dev")
    assert normalise(["llmops-dev", "/llmops/dev/vpcId", "urn:pulumi:dev::llmops::x", "dev",
                      "/dev/shm", "llm.dev.example.com", "CC-4410-dev"]) == [
        f"llmops-{ENV}", f"/llmops/{ENV}/vpcId", f"urn:pulumi:{ENV}::llmops::x", ENV,
        "/dev/shm", "llm.dev.example.com", "CC-4410-dev"]


def test_json_inside_strings_is_compared_by_path():
    before = {"stack": "a", "outputs": {}, "resources": [{"stack": "platform", "type": "t",
              "name": "r", "inputs": {"policy": json.dumps({"Statement": [{"Action": "s3:Get"}]})}}]}
    after = json.loads(json.dumps(before).replace("s3:Get", "s3:Put"))
    (change,) = diff_plans(before, after).changed
    assert change.changes == [("policy{json}.Statement[0].Action", "s3:Get", "s3:Put")]
    assert dict(flatten({"a": []})) == {"a": []}


def test_cost_prices_pools_and_models_from_the_instance_table():
    run = llmops("cost", "--stack", "prod")
    assert run.returncode == 0
    assert run.first_line.startswith("GPU cost of stack 'prod' (us-east-1), per month of 730 h")
    flex = next(line.split() for line in run.stdout.splitlines() if line.strip().startswith("gpu24-x4 "))
    # the spot-first NodePool: its model's flex half (1 node) at the spot estimate 2.27/h, its
    # limit (4 nodes) at on-demand 5.672/h, where it falls back: 4 x 5.672 x 730 = 16,562
    assert flex[1] == "spot+on-demand" and flex[3:6] == ["1", "/", "1"]
    assert flex[-6:] == ["$1,657", "/", "$1,657", "/", "$16,562", "60%"]
    floor = next(line.split() for line in run.stdout.splitlines()
                 if line.strip().startswith("gpu24-x4-floor"))
    assert floor[1] == "on-demand" and floor[-2:] == ["$8,281", "-"]
    assert "Budget: $60,000/month (policies/config/prod.yaml)" in run.stdout
    assert "qwen-2-5-32b  vllm    24gib-x4  2-4" in run.stdout  # the engine beside each model


def test_cost_max_is_the_fleet_the_budget_policy_checks(plans):
    """Same table, same rule: the policy's worst case equals the estimate's max."""
    for stack, plan in plans.items():
        config = parse_platform_config(read_stack_config(stack).values, project=PRODUCT,
                                       stack=stack)
        high = estimate(config).total[2]
        resources = [r for r in map(to_resource, plan.resources) if r is not None]
        findings = check_budget(resources, {"monthlyBudgetUsd": 0})
        assert f"costs ${high:,.0f}/month" in findings[0].message, stack


def test_every_plan_ends_with_a_cost_line():
    run = llmops("plan", "--stack", "staging", "--no-policy")
    assert ("GPU cost: $350-$5,417/month, typically $350 (60% below on-demand); "
            "`llmops cost --stack staging` for the breakdown") in run.stdout


def test_cold_start_shows_each_models_start_and_the_budgets_its_pods_really_get(plans):
    """The numbers are the stack's own: the probe and await printed are the ones on the
    rendered Deployments, and a fresh start is the sum of its printed phases."""
    run = llmops("cold-start", "--stack", "prod", "--json")
    assert run.returncode == 0
    rows = {r["model"]: r for r in json.loads(run.stdout)}
    assert set(rows) == {"llama-3-8b", "qwen-2-5-32b"}
    assert (rows["llama-3-8b"]["engine"], rows["qwen-2-5-32b"]["engine"]) == ("tgi", "vllm")
    deployments = {d.inputs["metadata"]["name"]: d
                   for d in plans["prod"].of_type("kubernetes:apps/v1:Deployment")}
    for model, row in rows.items():
        deployment = deployments[f"{row['engine']}-{model}"]
        server = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
        probe = server["startupProbe"]
        assert row["startupProbeSeconds"] == probe["periodSeconds"] * probe["failureThreshold"], model
        assert f'{row["awaitSeconds"]}s' == deployment.options["customTimeouts"]["create"], model
        # each phase is printed rounded to 0.1 s: their sum may differ from the total by a rounding
        assert abs(row["freshSeconds"] - sum(row["phasesSeconds"].values())) <= 1, model
        assert row["warmSeconds"] == round(sum(row["phasesSeconds"][p] for p in
                                               ("containerStart", "gpuLoad", "warmup"))), model
        assert 0 < row["cacheEntryGiB"] <= row["cacheRoomGiB"], model
    table = llmops("cold-start", "--stack", "prod")
    assert table.first_line.startswith("Cold start of stack 'prod'")
    llama = next(line.split() for line in table.stdout.splitlines()
                 if line.strip().startswith("llama-3-8b"))
    assert llama[:4] == ["llama-3-8b", "tgi", "g5.2xlarge", "16.0"]
    assert "1800 s" in " ".join(llama) and llama[-2] == "23/316"


def test_a_reader_that_stops_early_gets_no_error_message():
    """`llmops ... | head -1`: the closed pipe is not a bug to report."""
    run = subprocess.run(f"{sys.executable} -m llmops.cli cold-start --stack prod --json | head -1",
                         shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.stdout == "[\n"
    assert run.stderr == ""


def test_building_the_command_line_does_not_load_the_components():
    """Every llmops process builds the whole parser, the weights fetch and hold sidecar in each
    model pod included: no command may pull in the components (pulumi_kubernetes) at import."""
    probe = ("import sys\nfrom llmops.cli import build_parser\nbuild_parser()\n"
             "print('pulumi_kubernetes' in sys.modules, 'components.serving' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.stdout.split() == ["False", "False"], run.stderr
