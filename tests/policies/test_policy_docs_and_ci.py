"""The docs table and the CI workflow stay in step with the pack."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from policies.catalog import ALL_RULES
from policies.settings import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_table_lists_every_policy():
    docs = (ROOT / "docs" / "policies.md").read_text()
    missing = [r.name for r in ALL_RULES if f"| `{r.name}` (" not in docs]
    assert missing == []


def _pulumi_steps(workflow: str) -> dict[str, dict]:
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / workflow).read_text())["jobs"]
    return {name: step for name, job in jobs.items() for step in job.get("steps", [])
            if step.get("uses", "").startswith("pulumi/actions@")}


def test_every_pulumi_run_uses_the_pack_and_its_stack_s_generated_config_from_its_work_dir():
    """pulumi/actions runs the CLI in work-dir (src/main.ts at v6.6.1), so the pack and its
    config are given relative to it: `policies` at the root, `../../policies` from
    stacks/workloads (the old `policies` there named stacks/workloads/policies)."""
    from llmops.offline.deploy_checks.ci import load_workflows, path_findings

    steps = {**_pulumi_steps("pulumi.yml"), **_pulumi_steps("deploy.yml")}
    assert set(steps) == {"preview", "workloads-preview", "platform", "workloads"}
    for name, step in steps.items():
        work_dir = step["with"].get("work-dir", "./")
        pack = (ROOT / work_dir / step["with"]["policyPacks"]).resolve()
        assert pack == ROOT / "policies", name
        config = step["with"]["policyPackConfigs"]
        stack_expression = "inputs.stack" if name in ("platform", "workloads") else "matrix.stack"
        assert config.endswith(f"policies/config/${{{{ {stack_expression} }}}}.json"), name
        assert (ROOT / work_dir / config.replace(f"${{{{ {stack_expression} }}}}", "prod")).resolve() \
            == CONFIG_DIR / "prod.json", name
    assert all((CONFIG_DIR / f"{s}.json").is_file() for s in ("dev", "staging", "prod"))
    assert path_findings(load_workflows(), "prod") == []
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi.yml").read_text())["jobs"]
    matrix = jobs["preview"]["strategy"]["matrix"]["include"]
    assert [m["stack"] for m in matrix] == ["dev", "staging", "prod"]
    assert jobs["preview"]["permissions"]["id-token"] == "write"  # the platform: AWS through OIDC


def test_the_workloads_run_on_the_in_vpc_runner_after_the_platform(plans):
    """The Kubernetes API is private (prod) or office-only: only the runner the platform
    stack creates inside the VPC can reach it, and only once the platform is up."""
    pulumi = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi.yml").read_text())["jobs"]
    deploy = yaml.safe_load((ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]
    assert deploy["workloads"]["needs"] == "publish" and deploy["publish"]["needs"] == "platform"
    assert pulumi["workloads-preview"]["needs"] == "preview"
    runs_on = plans["prod"].stack_outputs["platform"]["ciRunsOn"]
    for job, expression in ((pulumi["workloads-preview"], "${{ matrix.stack }}"),
                            (deploy["workloads"], "${{ inputs.stack }}")):
        assert job["runs-on"].replace(expression, "prod") == runs_on
        [step] = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
        assert step["with"]["work-dir"] == "stacks/workloads"
    for workflow in ("pulumi.yml", "deploy.yml"):
        text = (ROOT / ".github" / "workflows" / workflow).read_text()
        jobs = yaml.safe_load(text)["jobs"]
        uses = [s["uses"] for job in jobs.values() for s in job.get("steps", []) if "uses" in s]
        # every action pinned to a commit SHA, the release it is in a comment on the same line
        pinned = re.findall(r"uses: ([\w./-]+@[0-9a-f]{40}) # v\d+\.\d+\.\d+\n", text)
        assert uses and sorted(pinned) == sorted(uses), uses
