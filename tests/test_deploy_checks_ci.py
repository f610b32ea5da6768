"""The CI deploy checks: jobs on the CodeBuild runner vs its image, and paths given to
pulumi/actions resolved from its work-dir. Each fires on a workflow with the defect (the
shipped ones before issue 21) and is silent on the shipped ones."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from llmops.offline.deploy_checks import check
from llmops.offline.deploy_checks.ci import (
    RUNNER_IMAGES,
    load_workflows,
    path_findings,
    runner_image_findings,
)
from vocabulary.config.ci import RunnerConfig
from vocabulary.stackfile import PROJECT_ROOT

UBUNTU, AMAZON_LINUX = "aws/codebuild/standard:7.0", "aws/codebuild/amazonlinux-x86_64-standard:5.0"
CODEBUILD = "codebuild-llmops-${{ matrix.stack }}-workloads-${{ github.run_id }}-${{ github.run_attempt }}"
CHECKOUT = {"uses": "actions/checkout@11d5960a326750d5838078e36cf38b85af677262",
            "with": {"persist-credentials": False}}


def _workflow(*steps: dict, runs_on: str = CODEBUILD, **job: object) -> dict[str, dict]:
    return {"w.yml": {"on": {"pull_request": None}, "env": {"PYTHON_VERSION": "3.11"}, "jobs": {
        "j": {"runs-on": runs_on, "strategy": {"matrix": {"include": [{"stack": "dev"}, {"stack": "prod"}]}},
              "steps": [CHECKOUT, *steps], **job}}}}


def _pulumi(**given: str) -> dict:
    return {"uses": "pulumi/actions@8582a9e8cc630786854029b4e09281acd6794b58",
            "with": {"command": "up", "stack-name": "org/${{ matrix.stack }}", **given}}


SETUP_PYTHON = {"uses": "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065",
                "with": {"python-version": "3.11"}}


def test_the_shipped_workflows_pass_both_checks_in_every_environment(plans):
    for stack in ("dev", "prod"):
        assert [f for f in check(plans[stack]) if f.rule.startswith("ci-")] == []


def test_the_runner_defaults_to_an_image_whose_tools_are_known_and_run_every_step():
    image = RunnerConfig().image
    assert image == UBUNTU and RUNNER_IMAGES[image].os_family == "ubuntu"
    assert runner_image_findings(load_workflows(), image, "prod") == []


def test_the_workflows_before_issue_21_fail_on_the_old_amazon_linux_default():
    """The defect as shipped: setup-python in five jobs on an Amazon Linux runner."""
    old = {name: yaml.safe_load(subprocess.run(
        ["git", "show", f"aff9d17:.github/workflows/{name}"], cwd=PROJECT_ROOT, capture_output=True,
        text=True, check=True).stdout) for name in ("pulumi.yml", "release.yml")}
    findings = runner_image_findings(old, AMAZON_LINUX, "prod")
    assert sorted(f.resource for f in findings) == [
        "pulumi.yml:workloads-preview", "pulumi.yml:workloads-up", "release.yml:analyze",
        "release.yml:evaluate", "release.yml:rollback"]
    assert all("Ubuntu images only" in f.message and "make setup PYTHON=python3.11" in f.message
               for f in findings)
    assert {f.resource for f in path_findings(old, "prod")} == {
        "pulumi.yml:workloads-preview", "pulumi.yml:workloads-up"}


def test_setup_python_on_amazon_linux_is_found_and_on_ubuntu_is_not():
    workflow = _workflow(SETUP_PYTHON, {"run": "make setup"})
    [finding] = runner_image_findings(workflow, AMAZON_LINUX, "dev")
    assert finding.rule == "ci-runner-image" and finding.resource == "w.yml:j"
    assert "uses actions/setup-python on aws/codebuild/amazonlinux-x86_64-standard:5.0" in finding.message
    assert runner_image_findings(workflow, UBUNTU, "dev") == []


@pytest.mark.parametrize(("script", "problem"), [
    ('make setup PYTHON="python3.8"', "uses python3.8, which aws/codebuild/standard:7.0 does not ship"),
    ("make setup PYTHON=python3.10", "uses Python 3.10; pyproject.toml requires >=3.11"),
])
def test_make_setup_with_a_python_the_image_lacks_or_the_project_refuses_is_found(script, problem):
    [finding] = runner_image_findings(_workflow({"run": script}), UBUNTU, "dev")
    assert problem in finding.message


def test_make_setup_reads_the_interpreter_from_the_workflow_env_as_the_shell_does():
    assert runner_image_findings(_workflow({"run": 'make setup PYTHON="python${PYTHON_VERSION}"'}),
                                 UBUNTU, "dev") == []


def test_an_image_whose_tools_nobody_verified_is_found():
    [finding] = runner_image_findings(_workflow({"run": "make setup"}), "aws/codebuild/standard:4.0", "dev")
    assert "image 'aws/codebuild/standard:4.0' is not one whose tools were verified" in finding.message


def test_jobs_on_github_hosted_runners_are_not_the_runner_image_s_business():
    workflow = _workflow(SETUP_PYTHON, runs_on="ubuntu-latest")
    assert runner_image_findings(workflow, AMAZON_LINUX, "dev") == []


def test_policy_paths_are_resolved_from_the_action_s_work_dir():
    wrong = _workflow(_pulumi(**{"work-dir": "stacks/workloads", "policyPacks": "policies",
                                 "policyPackConfigs": "policies/config/${{ matrix.stack }}.json"}))
    found = path_findings(wrong, "dev")
    assert sorted(f.message.split(" resolves to ")[1].split(" ")[0] for f in found) == [
        "stacks/workloads/policies", "stacks/workloads/policies/config/dev.json",
        "stacks/workloads/policies/config/prod.json"]
    assert all(f.rule == "ci-paths" and "give it relative to work-dir" in f.message for f in found)
    right = _workflow(_pulumi(**{"work-dir": "stacks/workloads", "policyPacks": "../../policies",
                                 "policyPackConfigs": "../../policies/config/${{ matrix.stack }}.json"}))
    assert path_findings(right, "dev") == []


def test_a_work_dir_without_a_pulumi_project_and_a_missing_stack_config_are_found():
    workflow = _workflow(_pulumi(**{"work-dir": "vocabulary/config", "policyPacks": "../../policies",
                                    "policyPackConfigs": "../../policies/config/qa.json"}))
    messages = [f.message for f in path_findings(workflow, "dev")]
    assert "work-dir 'vocabulary/config' holds no Pulumi.yaml" in messages
    assert any("policy pack config '../../policies/config/qa.json'" in m for m in messages)


def test_a_reusable_workflow_is_checked_with_each_caller_s_inputs():
    called = {"on": {"workflow_call": {"inputs": {"stack": {"type": "string"}}}}, "jobs": {
        "up": {"runs-on": "ubuntu-latest", "steps": [_pulumi(**{
            "policyPacks": "policies", "policyPackConfigs": "policies/config/${{ inputs.stack }}.json"})]}}}
    caller = {"on": {"push": None}, "jobs": {
        "a": {"uses": "./.github/workflows/deploy.yml", "with": {"stack": "dev"}},
        "b": {"uses": "./.github/workflows/deploy.yml", "with": {"stack": "qa"}}}}
    [finding] = path_findings({"deploy.yml": called, "main.yml": caller}, "dev")
    assert finding.resource == "deploy.yml:up" and "policies/config/qa.json" in finding.message
