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


def test_the_workflow_previews_each_stack_with_its_generated_policy_config():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi.yml").read_text())
    jobs = workflow["jobs"]
    for job in ("preview", "up", "workloads-preview", "workloads-up"):
        stacks = [m["stack"] for m in jobs[job]["strategy"]["matrix"]["include"]]
        assert stacks == ["dev", "staging", "prod"]
        assert all((CONFIG_DIR / f"{s}.json").is_file() for s in stacks)
        [pulumi] = [s for s in jobs[job]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
        assert pulumi["with"]["policyPacks"] == "policies"
        assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
    for job in ("preview", "up"):  # the platform: GitHub-hosted, AWS through OIDC
        assert jobs[job]["permissions"]["id-token"] == "write"


def test_the_workloads_run_on_the_in_vpc_runner_after_the_platform():
    """The Kubernetes API is private (prod) or office-only: only the runner the platform
    stack creates inside the VPC can reach it, and only once the platform is up."""
    from llmops.offline.plan import run_plan

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pulumi.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["workloads-up"]["needs"] == "up"
    assert jobs["workloads-preview"]["needs"] == "preview"
    runs_on = run_plan("prod").stack_outputs["platform"]["ciRunsOn"]
    for job in ("workloads-preview", "workloads-up"):
        assert jobs[job]["runs-on"].replace("${{ matrix.stack }}", "prod") == runs_on
        [pulumi] = [s for s in jobs[job]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
        assert pulumi["with"]["work-dir"] == "stacks/workloads"
    uses = [s["uses"] for job in jobs.values() for s in job["steps"] if "uses" in s]
    # every action pinned to a commit SHA, the release it is in a comment on the same line
    pinned = re.findall(r"uses: ([\w./-]+@[0-9a-f]{40}) # v\d+\.\d+\.\d+\n",
                        (ROOT / ".github" / "workflows" / "pulumi.yml").read_text())
    assert uses and sorted(pinned) == sorted(uses), uses
