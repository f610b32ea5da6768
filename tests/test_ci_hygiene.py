"""The workflow users run is itself hardened: actions pinned to commit SHAs, no persisted
checkout credentials, least permissions per job, no expression expanded inside a script;
and zizmor (offline) finds nothing. zizmor is a dev dependency: the test fails without it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
#: Permissions a job may ask for.
ALLOWED_PERMISSIONS = {"contents": {"read", "write"}, "id-token": {"write"}, "pull-requests": {"write"}}
PIN = re.compile(r"^\s*-?\s*uses: (?P<action>[\w./-]+)@(?P<ref>\S+)(?P<comment>.*)$")


def _zizmor() -> str:
    found = shutil.which("zizmor") or str(Path(sys.executable).with_name("zizmor"))
    assert Path(found).exists(), "zizmor is missing: install the dev extras (make setup)"
    return found


def test_zizmor_finds_nothing_offline():
    result = subprocess.run([_zizmor(), "--offline", "--format", "json", *map(str, WORKFLOWS)],
                            capture_output=True, text=True, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [], [(f["ident"], f["desc"]) for f in findings]
    assert result.returncode == 0, result.stderr


def test_zizmor_would_catch_an_unpinned_action_and_persisted_credentials(tmp_path):
    """The check can fail: the same workflow with one tag pin and default checkout."""
    text = WORKFLOWS[0].read_text()
    pinned_checkout = (r"actions/checkout@[0-9a-f]{40} # v[\d.]+\n"
                       r"        with:\n          persist-credentials: false\n")
    bad = re.sub(pinned_checkout, "actions/checkout@v4\n", text, count=1)
    assert bad != text
    (tmp_path / "bad.yml").write_text(bad)
    result = subprocess.run([_zizmor(), "--offline", "--format", "json", str(tmp_path / "bad.yml")],
                            capture_output=True, text=True, timeout=120)
    idents = {f["ident"] for f in json.loads(result.stdout)}
    assert {"unpinned-uses", "artipacked"} <= idents


def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment():
    for workflow in WORKFLOWS:
        for line in workflow.read_text().splitlines():
            match = PIN.match(line)
            if match:
                assert re.fullmatch(r"[0-9a-f]{40}", match["ref"]), line
                assert re.fullmatch(r" # v\d+\.\d+\.\d+", match["comment"]), line


def test_checkout_keeps_no_credentials_and_jobs_ask_for_least_permissions():
    for workflow in WORKFLOWS:
        document = yaml.safe_load(workflow.read_text())
        assert document.get("permissions") == {}, "the workflow default grants nothing"
        for name, job in document["jobs"].items():
            permissions = job.get("permissions")
            assert isinstance(permissions, dict) and permissions, f"{name} names its permissions"
            for scope, level in permissions.items():
                assert level in ALLOWED_PERMISSIONS.get(scope, set()), (name, scope, level)
            steps = job.get("steps", [])  # a job calling a reusable workflow has none
            scripts = "\n".join(step.get("run", "") for step in steps)
            comments = any(step.get("with", {}).get("comment-on-pr") for step in steps)
            # write access only where the job uses it: pushing a branch, commenting or opening PRs
            assert (permissions.get("contents") == "write") == ("git push" in scripts), name
            assert ("pull-requests" in permissions) == ("gh pr create" in scripts or comments), name
            for step in steps:
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, name
                # expressions in scripts are template injection; pass values through env
                assert "${{" not in step.get("run", ""), (name, step.get("name"))


def _assumes_a_role(job: dict) -> bool:
    """The job (or, for a caller, any job of the reusable workflow it calls) asks AWS for a role."""
    if "uses" in job:
        called = yaml.safe_load((ROOT / job["uses"].removeprefix("./")).read_text())
        return any(_assumes_a_role(j) for j in called["jobs"].values())
    return any(s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")
               for s in job["steps"])


def test_only_the_jobs_that_assume_an_aws_role_get_an_oidc_token():
    for workflow in WORKFLOWS:
        for name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            assert ("id-token" in job["permissions"]) == _assumes_a_role(job), name


def _workflow(name: str) -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())


def test_each_environment_deploys_platform_publish_workloads_and_dev_does_not_wait_for_prod():
    jobs = _workflow("pulumi.yml")["jobs"]
    order = [(name, job.get("needs"), job["with"]["stack"]) for name, job in jobs.items()
             if job.get("uses", "").startswith("./.github/workflows/deploy.yml")]
    assert order == [("deploy-dev", "offline-policy", "dev"), ("deploy-staging", "deploy-dev", "staging"),
                     ("deploy-prod", "deploy-staging", "prod")]
    deploy = _workflow("deploy.yml")["jobs"]
    assert (deploy["publish"]["needs"], deploy["workloads"]["needs"]) == ("platform", "publish")
    publish = "\n".join(s.get("run", "") for s in deploy["publish"]["steps"])
    assert "docker push" in publish and "aws ecr describe-images" in publish  # only a new tag
    assert publish.rstrip().endswith('.venv/bin/llmops preflight --stack "$STACK"')


def test_pull_request_code_reaches_the_cluster_admin_runner_only_from_this_repository_and_approved():
    for workflow in WORKFLOWS:
        document = yaml.safe_load(workflow.read_text())
        triggers = document.get("on", document.get(True))
        if "pull_request" not in triggers:
            continue
        for name, job in document["jobs"].items():
            if not str(job.get("runs-on", "")).startswith("codebuild-"):
                continue
            condition = " ".join(job["if"].split())
            assert "github.event.pull_request.head.repo.full_name == github.repository" in condition, name
            assert job["environment"].endswith("-preview"), name  # its reviewers approve each run


def test_no_job_on_the_codebuild_runner_installs_python_with_setup_python():
    """setup-python has builds for GitHub's Ubuntu images only; the runner installs with the
    image's own Python (the `ci-runner-image` deploy check holds the image side)."""
    for workflow in WORKFLOWS:
        for name, job in yaml.safe_load(workflow.read_text())["jobs"].items():
            if str(job.get("runs-on", "")).startswith("codebuild-"):
                uses = [s.get("uses", "") for s in job["steps"]]
                assert not any(u.startswith("actions/setup-python@") for u in uses), name
