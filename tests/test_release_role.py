"""release.yml's promote job assumes `vars.AWS_RELEASE_ROLE`: the bootstrap creates that role per
environment, trusted only by jobs in that GitHub environment, able to move stage pointers in
that environment's registry and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops.offline.bootstrap_plan import run_bootstrap_plan
from llmops.offline.plan import Plan

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "example-org/llmops-platform"
HOST = "token.actions.githubusercontent.com"


@pytest.fixture(scope="module")
def plan() -> Plan:
    return run_bootstrap_plan()


def _statements(plan: Plan, env: str) -> dict[str, dict]:
    policy = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", f"release-{env}").inputs["policy"])
    return {s["Sid"]: s for s in policy["Statement"]}


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_release_role_is_trusted_only_by_jobs_in_its_environment_and_kept_from_deploy_roles(plan, env):
    role = plan.one("aws:iam/role:Role", f"release-{env}")
    assert role.inputs["name"] == f"github-release-{env}" and role.inputs["path"] == "/llmops-bootstrap/"
    [trust] = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust["Condition"] == {"StringEquals": {
        f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": [f"repo:{REPOSITORY}:environment:{env}"]}}
    assert plan.stack_outputs["bootstrap"]["releaseRoleArns"][env] == \
        f"arn:aws:iam::123456789012:role/llmops-bootstrap/github-release-{env}"


def test_a_release_role_reads_and_writes_registry_keys_with_its_environments_key_only(plan):
    statements = _statements(plan, "staging")
    actions = {a for s in statements.values() for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "kms:Decrypt", "kms:GenerateDataKey",
                       "sts:GetCallerIdentity"}  # no delete, no other service
    assert statements["ReadWriteRegistry"]["Resource"] == "arn:aws:s3:::storage-models-*/registry/*"
    key = statements["OnlyThisEnvironmentsKey"]
    assert key["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/llmops-staging-models"]},
        "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_what_the_role_names_is_what_the_platform_creates(plans, env):
    """The bucket pattern and the key alias follow the platform stack: a rename there fails here."""
    platform = plans[env]
    bucket = next(b for b in platform.of_type("aws:s3/bucket:Bucket") if b.name == "storage-models")
    assert "bucket" not in bucket.inputs  # auto-named: storage-models-<suffix>
    aliases = {a.inputs["name"] for a in platform.of_type("aws:kms/alias:Alias")}
    assert f"alias/llmops-{env}-models" in aliases
    assert platform.config.storage.registry_prefix == "registry/"


def test_the_promote_job_assumes_it_inside_the_environment_the_role_trusts():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "release.yml").read_text())
    promote = workflow["jobs"]["promote"]
    assert promote["environment"] == "${{ inputs.stack }}"
    assert promote["permissions"]["id-token"] == "write"
    credentials = next(s for s in promote["steps"]
                       if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@"))
    assert credentials["with"]["role-to-assume"] == "${{ vars.AWS_RELEASE_ROLE }}"
