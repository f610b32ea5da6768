"""The docs table and the CI workflow stay in step with the pack."""

from __future__ import annotations

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
    for job in ("preview", "up"):
        stacks = [m["stack"] for m in jobs[job]["strategy"]["matrix"]["include"]]
        assert stacks == ["dev", "staging", "prod"]
        assert all((CONFIG_DIR / f"{s}.json").is_file() for s in stacks)
        [pulumi] = [s for s in jobs[job]["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
        assert pulumi["with"]["policyPacks"] == "policies"
        assert pulumi["with"]["policyPackConfigs"] == "policies/config/${{ matrix.stack }}.json"
        assert jobs[job]["permissions"]["id-token"] == "write"
    uses = [s["uses"] for job in jobs.values() for s in job["steps"] if "uses" in s]
    assert all("@v" in u for u in uses), uses  # every action pinned to a version
