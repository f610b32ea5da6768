"""The per-account bootstrap: GitHub's OIDC provider, deploy roles that trust only their
environment's jobs, read-only preview roles for pull requests, and the optional S3 state.
Planned offline like the environments (`llmops plan --stack bootstrap`) and held to the pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from llmops.offline.bootstrap_plan import run_bootstrap_plan
from llmops.offline.plan import Plan
from policies.runner import evaluate, mandatory
from policies.settings import load_config
from vocabulary.config import ConfigError
from vocabulary.stackfile import STACKS_DIR

REPOSITORY = "example-org/llmops-platform"
HOST = "token.actions.githubusercontent.com"


def _variant(tmp_path: Path, **changes: object) -> Path:
    """A stacks dir whose bootstrap file has `changes` (config key -> value, None removes)."""
    document = yaml.safe_load((STACKS_DIR / "bootstrap" / "Pulumi.bootstrap.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(key, None)
        else:
            document["config"][key] = value
    (tmp_path / "bootstrap").mkdir()
    (tmp_path / "bootstrap" / "Pulumi.bootstrap.yaml").write_text(yaml.safe_dump(document))
    return tmp_path


def _trust(plan: Plan, role: str) -> dict:
    [statement] = json.loads(plan.one("aws:iam/role:Role", role).inputs["assumeRolePolicy"])["Statement"]
    return statement


def _policy(plan: Plan, name: str) -> list[dict]:
    return json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", name).inputs["policy"])["Statement"]


@pytest.fixture(scope="module")
def plan() -> Plan:
    return run_bootstrap_plan()


def test_github_s_provider_is_created_for_sts_audience_without_a_pinned_thumbprint(plan):
    provider = plan.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert provider.inputs["url"] == f"https://{HOST}"
    assert provider.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    assert "thumbprintLists" not in provider.inputs  # IAM trusts GitHub's CA itself


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_deploy_role_trusts_only_jobs_in_its_own_github_environment(plan, env):
    statement = _trust(plan, f"github-deploy-{env}")
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"] == plan.stack_outputs["bootstrap"]["githubOidcProviderArn"]
    assert statement["Condition"] == {"StringEquals": {
        f"{HOST}:aud": "sts.amazonaws.com", f"{HOST}:sub": [f"repo:{REPOSITORY}:environment:{env}"]}}


def test_preview_roles_trust_only_this_repository_s_pull_requests_and_read_no_contents(plan):
    statement = _trust(plan, "github-preview-prod")
    assert statement["Condition"]["StringEquals"][f"{HOST}:sub"] == [f"repo:{REPOSITORY}:pull_request"]
    [deny] = _policy(plan, "github-preview-prod")
    assert deny["Effect"] == "Deny" and deny["Resource"] == "*"
    assert {"s3:GetObject", "secretsmanager:GetSecretValue", "ssm:GetParameter"} <= set(deny["Action"])
    attachment = plan.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "github-preview-prod")
    assert attachment.inputs["policyArn"] == "arn:aws:iam::aws:policy/ReadOnlyAccess"


def test_a_deploy_role_cannot_change_the_bootstrap_s_roles_or_github_s_provider(plan):
    allow, deny = _policy(plan, "github-deploy-staging")
    assert allow["Effect"] == "Allow" and "iam:CreateRole" in allow["Action"]
    assert deny == {"Sid": "KeepBootstrap", "Effect": "Deny", "Action": "iam:*", "Resource": [
        "arn:aws:iam::123456789012:role/llmops-bootstrap/*",
        f"arn:aws:iam::123456789012:oidc-provider/{HOST}"]}
    deploy = plan.one("aws:iam/role:Role", "github-deploy-staging")
    assert deploy.inputs["path"] == "/llmops-bootstrap/"


def test_the_outputs_are_the_role_arns_the_repository_settings_need(plan):
    outputs = plan.stack_outputs["bootstrap"]
    assert outputs["deployRoleArns"]["prod"] == \
        "arn:aws:iam::123456789012:role/llmops-bootstrap/github-deploy-prod"
    assert set(outputs["previewRoleArns"]) == {"dev", "staging", "prod"}


def test_the_pack_with_prod_s_settings_finds_nothing(plan):
    assert mandatory(evaluate(plan.resources, config=load_config("prod"))) == []


def test_the_s3_backend_gives_previews_the_state_and_its_locks_but_no_other_writes(tmp_path):
    plan = run_bootstrap_plan(_variant(tmp_path, **{"llmops-bootstrap:stateBackend": "s3"}))
    assert mandatory(evaluate(plan.resources, config=load_config("prod"))) == []
    bucket = plan.one("aws:s3/bucket:Bucket")
    bucket_arn = f"arn:aws:s3:::{bucket.outputs['bucket']}"
    versioning = plan.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    preview = {s["Sid"]: s for s in _policy(plan, "state-preview-dev")}
    assert preview["WriteLocks"]["Resource"] == [f"{bucket_arn}/.pulumi/locks/*"]
    assert "kms:Encrypt" not in preview["StateKey"]["Action"]
    deploy = {s["Sid"]: s for s in _policy(plan, "state-deploy-dev")}
    assert deploy["WriteState"]["Resource"] == [f"{bucket_arn}/*"]
    [deny] = _policy(plan, "github-preview-dev")
    assert deny["NotResource"] == [f"{bucket_arn}/*"]  # the content-read deny spares the state
    outputs = plan.stack_outputs["bootstrap"]
    assert outputs["stateBackendUrl"] == f"s3://{bucket.outputs['bucket']}"
    assert outputs["secretsProvider"] == "awskms://alias/llmops-pulumi-secrets"


def test_an_existing_github_provider_is_reused_not_created(tmp_path):
    arn = f"arn:aws:iam::123456789012:oidc-provider/{HOST}"
    plan = run_bootstrap_plan(_variant(tmp_path, **{"llmops-bootstrap:githubOidcProviderArn": arn}))
    assert plan.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider") == []
    assert _trust(plan, "github-deploy-dev")["Principal"]["Federated"] == arn


def test_the_ec2_spot_service_linked_role_is_created_so_karpenter_can_buy_spot(plan):
    """Without it Karpenter marks spot unavailable and runs every node on-demand."""
    role = plan.one("aws:iam/serviceLinkedRole:ServiceLinkedRole")
    assert role.inputs["awsServiceName"] == "spot.amazonaws.com"
    assert plan.stack_outputs["bootstrap"]["spotServiceLinkedRole"] == role.outputs["name"]


def test_an_existing_spot_service_linked_role_is_adopted_not_created(tmp_path):
    """CreateServiceLinkedRole fails where the role exists."""
    plan = run_bootstrap_plan(_variant(tmp_path, **{"llmops-bootstrap:spotServiceLinkedRoleExists": True}))
    assert plan.of_type("aws:iam/serviceLinkedRole:ServiceLinkedRole") == []
    assert plan.stack_outputs["bootstrap"]["spotServiceLinkedRole"] == "AWSServiceRoleForEC2Spot"


def test_bad_bootstrap_config_lists_every_problem_with_its_key(tmp_path):
    stacks = _variant(tmp_path, **{"llmops-bootstrap:githubRepository": "not a repo",
                                   "llmops-bootstrap:environments": ["dev", "Prod", "dev"],
                                   "llmops-bootstrap:stateBackend": "gcs"})
    with pytest.raises(ConfigError) as raised:
        run_bootstrap_plan(stacks)
    message = str(raised.value)
    assert "bootstrap/Pulumi.bootstrap.yaml has 3 configuration problems" in message
    assert "llmops-bootstrap:githubRepository" in message
    assert "'not a repo' is not a GitHub repository" in message
    assert "llmops-bootstrap:environments" in message and "['Prod'] are not environment names" in message
    assert "llmops-bootstrap:stateBackend" in message


def test_llmops_plan_plans_the_bootstrap_and_checks_it(capsys):
    assert main(["plan", "--stack", "bootstrap"]) == 0
    out = capsys.readouterr().out
    assert "Offline plan of stack 'bootstrap' (us-east-1): 26 resources" in out
    assert "Policies: no violations in stack 'bootstrap'" in out


def test_deploy_roles_allow_the_session_length_the_deploy_workflow_asks_for(plan):
    """AssumeRoleWithWebIdentity refuses a DurationSeconds above the role's maximum."""
    workflow = yaml.safe_load((STACKS_DIR.parent / ".github" / "workflows" / "deploy.yml").read_text())
    asked = [int(step["with"]["role-duration-seconds"]) for job in workflow["jobs"].values()
             for step in job["steps"] if "role-duration-seconds" in step.get("with", {})]
    assert asked
    for env in ("dev", "staging", "prod"):
        role = plan.one("aws:iam/role:Role", f"github-deploy-{env}")
        assert role.inputs["maxSessionDuration"] >= max(asked)
