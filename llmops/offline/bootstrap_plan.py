"""The offline plan of the bootstrap project (`llmops plan --stack bootstrap`): its program
under the same mocks and recorder as the environments, from stacks/bootstrap/Pulumi.bootstrap.yaml.

The bootstrap is an account's, not an environment's: it has no environment file, no
workloads stack and no deploy checks (they read an environment's config); the policy pack
checks it with prod's settings, the strictest an account holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmops.offline.mocks import OfflineMocks
from llmops.offline.plan import Plan, record
from stacks.bootstrap.config import BOOTSTRAP_PROJECT, BOOTSTRAP_STACK, parse_bootstrap_config
from vocabulary.stackfile import STACKS_DIR, read_stack_config

#: the environment whose policy settings the bootstrap's resources are held to
POLICY_SETTINGS = "prod"
OIDC_PROVIDER = "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
ROLE = "aws:iam/role:Role"


def _provider_arn(_name: str, inputs: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """IAM names an OIDC provider by its issuer host (the shared mock shapes EKS's)."""
    host = str(inputs.get("url", "")).removeprefix("https://")
    return {"arn": f"arn:aws:iam::{state['accountId']}:oidc-provider/{host}"}


def _role_arn(_name: str, inputs: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """A role's ARN carries its path (role/llmops-bootstrap/github-deploy-dev)."""
    path = inputs.get("path") or "/"
    return {"arn": f"arn:aws:iam::{state['accountId']}:role{path}{state['name']}"}


def run_bootstrap_plan(stacks_dir: Path = STACKS_DIR) -> Plan:
    """Validate stacks/bootstrap/Pulumi.bootstrap.yaml, then record the program."""
    from stacks.bootstrap.program import main

    file = read_stack_config(BOOTSTRAP_STACK, stacks_dir / "bootstrap")
    config = parse_bootstrap_config(file.values, stack=BOOTSTRAP_STACK, source=file.source)
    mocks = OfflineMocks(region=config.region)
    mocks.output_hooks.update({OIDC_PROVIDER: _provider_arn, ROLE: _role_arn})
    recording = record(main, stack=BOOTSTRAP_STACK, project=BOOTSTRAP_PROJECT, label="bootstrap",
                       region=config.region, config=file.runtime_values(),
                       secret_keys=file.secret_keys, mocks=mocks)
    return Plan(stack=BOOTSTRAP_STACK, config=config,  # type: ignore[arg-type]
                resources=recording.resources, outputs=recording.outputs,
                secret_outputs=recording.secret_outputs,
                stack_outputs={"bootstrap": recording.outputs},
                stack_secret_outputs={"bootstrap": recording.secret_outputs},
                invokes=recording.invokes)
