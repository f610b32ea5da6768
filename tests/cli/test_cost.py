"""`llmops cost` as a user runs it: the GPU tables, the Platform table from the plan, the
assumptions it used, the whole bill's total, and the same as JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.conftest import llmops


@pytest.fixture(scope="module")
def prod_text() -> str:
    run = llmops("cost", "--stack", "prod")
    assert run.returncode == 0
    return run.stdout


@pytest.fixture(scope="module")
def dev_json() -> dict:
    run = llmops("cost", "--stack", "dev", "--json")
    assert run.returncode == 0
    return json.loads(run.stdout)


def _dollars(text: str) -> list[float]:
    return [float(v.replace(",", "")) for v in re.findall(r"\$([\d,]+)", text)]


def test_cost_prints_the_platform_table_next_to_the_gpu_nodepools(prod_text):
    sections = [line for line in prod_text.splitlines() if line and not line.startswith(" ")]
    assert sections[1:] == [
        "GPU NodePools:",
        "Budget: $60,000/month (policies/config/prod.yaml); the largest fleet the limits allow, $40,769, "
        "is within it (68%).",
        "Models (each alone on its GPU shape; canary/blue-green tracks and schedules not included):",
        "Platform (us-east-1; prices from components/data/aws_prices.yaml, checked 2026-12-08; "
        "from the plan's resources):",
        "Assumptions (usage the plan cannot know; min / typical / max):",
        sections[-1]]
    assert sections[-1].startswith("Total per month (GPU + platform), min / typical / max: $")
    rows = [line.split()[0:2] for line in prod_text.splitlines() if line.startswith("  NAT gateway")]
    assert len(rows) == 3  # per-az NAT in prod's 3 AZs


def test_the_total_is_the_gpu_total_plus_the_platform_total(prod_text):
    lines = prod_text.splitlines()
    gpu = _dollars(next(line for line in lines if line.startswith("  total ") and "/" in line))
    platform = _dollars([line for line in lines if line.startswith("  total ")][1])
    whole = _dollars(lines[-1])
    assert len(gpu) == len(platform) == len(whole) == 3
    assert all(abs(w - (g + p)) <= 1 for w, g, p in zip(whole, gpu, platform, strict=True))


def test_every_assumption_a_platform_line_uses_is_printed(prod_text):
    lines = prod_text.splitlines()
    start = lines.index("Assumptions (usage the plan cannot know; min / typical / max):")
    printed = {line.split(":")[0].strip() for line in lines[start + 1:] if line.startswith("  ")}
    table = lines[lines.index(next(x for x in lines if x.startswith("Platform ("))) + 1:start]
    last = [line.split()[-1] for line in table if line.strip()]
    used = {word for word in last if word not in ("-", "assumption") and not word.startswith("$")}
    assert used and used == printed
    assert "  natProcessedGb: 20 / 100 / 1000 GB/month - egress through NAT" in prod_text


def test_json_keeps_the_gpu_section_and_adds_the_platform(dev_json):
    assert set(dev_json) == {"stack", "region", "hoursPerMonth", "gpu", "platform", "totalMonthlyUsd",
                             "budget"}
    assert dev_json["region"] == "us-west-2" and dev_json["platform"]["priced"] is True
    assert [p["name"] for p in dev_json["gpu"]["nodePools"]] == ["gpu24-x1"]
    nat = [line for line in dev_json["platform"]["lines"] if line["component"] == "NAT gateway"]
    assert len(nat) == 1  # dev's single NAT
    total = dev_json["totalMonthlyUsd"]
    for key in ("min", "typical", "max"):
        assert total[key] == pytest.approx(dev_json["gpu"]["totalMonthlyUsd"][key]
                                           + dev_json["platform"]["totalMonthlyUsd"][key], abs=0.02)
    used = {line["assumption"] for line in dev_json["platform"]["lines"] if line["assumption"]}
    assert used == {a["name"] for a in dev_json["platform"]["assumptions"]}
    assert all(a["why"] for a in dev_json["platform"]["assumptions"])


def test_a_stack_in_an_unpriced_region_says_so_and_totals_the_gpus_only(stacks_dir: Path):
    env = stacks_dir / "Pulumi.dev.yaml"
    env.write_text(env.read_text().replace("us-west-2", "eu-west-1"))
    run = llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir))
    assert run.returncode == 0
    assert ("  NOT PRICED: aws_prices.yaml has no prices for 'eu-west-1' (priced regions: us-east-1, "
            "us-west-2); platform costs not estimated.") in run.stdout
    assert run.stdout.splitlines()[-1].startswith("Total: GPU only, ")
    data = json.loads(llmops("cost", "--stack", "dev", "--stacks-dir", str(stacks_dir), "--json").stdout)
    assert data["platform"]["priced"] is False and data["platform"]["lines"] == []
    assert data["totalMonthlyUsd"] is None


def test_docs_show_the_platform_bill_prod_prints_today(prod_text):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "cost.md").read_text()
    shown = [line.rstrip() for line in prod_text.splitlines()]
    block = shown[shown.index(next(x for x in shown if x.startswith("Platform ("))):]
    assert "\n".join(block) in doc, "docs/cost.md is stale: paste `llmops cost --stack prod` from 'Platform'"
