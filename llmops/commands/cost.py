"""`llmops cost --stack ENV [--json]`: the environment's monthly bill as a range: the GPU
NodePools and models, and the platform around them (control plane, NAT, endpoints, ALB,
logs, keys, system nodes, storage, CI).

The GPU part reads the stack's config: the NodePools the config renders give the limits (the
most nodes), the models' minimum replicas the floor, the instance facts the prices, and the
budget comes from the same policy config `llmops plan` checks. The platform part prices the
resources of the offline plan (llmops/offline/platform_cost.py), so it follows what is deployed.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmops.commands.stack_args import add_stack_arguments, platform_config
from llmops.offline.cost import CostEstimate, estimate, usd
from llmops.offline.plan import run_plan
from llmops.offline.platform_cost import PlatformCost, platform_cost
from llmops.offline.text_table import table
from policies.gpu_cost import RULES as GPU_COST_RULES
from policies.settings import PolicyConfigError, load_config
from vocabulary.config import PlatformConfig
from vocabulary.gpu_instances import HOURS_PER_MONTH

BUDGET_RULE = next(r for r in GPU_COST_RULES if r.name == "gpu-fleet-monthly-budget")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost", help="monthly cost range: GPU NodePools and models (spot vs on-demand, budget) "
        "and the platform around them, each assumption named",
        description="Prices every GPU NodePool from the nodes its models' minimum replicas need "
        "(at spot where it may buy spot) up to its limits (at the priciest capacity it may "
        "buy), and every model at its min and max replicas, from "
        "vocabulary/data/gpu_instances.yaml (the table the budget policy uses), 730 hours a "
        "month. Spot prices are estimates. The platform (EKS, NAT, endpoints, ALB, logs, KMS, "
        "system nodes, S3/ECR, CodeBuild) is priced from the offline plan's resources with "
        "components/data/aws_prices.yaml; usage figures are named assumptions, printed.")
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run)


def monthly_budget(stack: str) -> tuple[float, str] | None:
    """The budget the gpu-fleet-monthly-budget policy enforces for this stack, and its file;
    None for a stack without a policy config (`llmops plan` would say so too)."""
    try:
        pack = load_config(stack)
    except PolicyConfigError:
        return None
    budget = pack.properties(BUDGET_RULE).get(
        "monthlyBudgetUsd", BUDGET_RULE.config_schema["monthlyBudgetUsd"]["default"])
    return float(budget), pack.source


def render(config: PlatformConfig, cost: CostEstimate, budget: tuple[float, str] | None) -> str:
    lines = [f"GPU cost of stack {config.environment!r} ({config.region}), per month of "
             f"{HOURS_PER_MONTH} h; a node is priced at its NodePool's priciest type; the max is every "
             "node the limits allow at the priciest capacity the NodePool may buy", "", "GPU NodePools:"]
    rows = [["nodepool", "capacity", "priced as", "nodes min/typical/limit", "$/h", "worst $/h",
             "monthly min / typical / max", "saves"]]
    for p in cost.pools:
        rows.append([p.name, p.capacity_type, p.instance_type, " / ".join(map(str, p.nodes)),
                     f"{p.hourly:.3f}", f"{p.worst_hourly:.3f}",
                     " / ".join(usd(v) for v in p.range),
                     f"{p.savings:.0%}" if p.spot else "-"])
    rows.append(["total", "", "", "", "", "", " / ".join(usd(v) for v in cost.total), ""])
    lines += table(rows, right={4, 5, 7})
    if budget:
        amount, source = budget
        high = cost.total[2]
        verdict = "within" if high <= amount else "OVER"
        lines += ["", f"Budget: {usd(amount)}/month ({source}); the largest fleet the limits allow, "
                  f"{usd(high)}, is {verdict} it ({high / amount:.0%})."]
    if cost.models:
        lines += ["", "Models (each alone on its GPU shape; canary/blue-green tracks and "
                  "schedules not included):"]
        rows = [["model", "engine", "shape", "replicas", "pods/node", "nodes", "cheapest pool",
                 "monthly", "priciest pool", "monthly"]]
        for m in cost.models:
            rows.append([m.name, m.engine, m.gpu_shape, f"{m.replicas[0]}-{m.replicas[1]}",
                         str(m.pods_per_node), f"{m.nodes[0]}-{m.nodes[1]}",
                         f"{m.cheapest.name} ({m.cheapest.capacity_type})",
                         "-".join(usd(v) for v in m.monthly(m.cheapest)),
                         f"{m.priciest.name} ({m.priciest.capacity_type})",
                         "-".join(usd(v) for v in m.monthly(m.priciest, worst=True))])
        lines += table(rows, right={4})
    return "\n".join(lines)


def render_platform(platform: PlatformCost) -> list[str]:
    """The Platform table, its total and every assumption it used (or why it is unpriced)."""
    lines = ["", f"Platform ({platform.region}; prices from components/data/aws_prices.yaml, "
             f"checked {platform.checked}; from the plan's resources):"]
    if platform.unpriced:
        return [*lines, f"  NOT PRICED: {platform.unpriced}."]
    rows = [["component", "resource", "priced as", "monthly min / typical / max", "assumption"]]
    for line in platform.lines:
        rows.append([line.component, line.resource, line.basis, " / ".join(usd(v) for v in line.monthly),
                     line.assumption or "-"])
    rows.append(["total", "", "", " / ".join(usd(v) for v in platform.total), ""])
    lines += table(rows, right={3})
    lines += ["", "Assumptions (usage the plan cannot know; min / typical / max):"]
    lines += [f"  {a.name}: {a.shown()} - {a.why}" for a in platform.assumptions]
    return lines


def whole_bill(cost: CostEstimate, platform: PlatformCost) -> tuple[float, float, float]:
    return tuple(cost.total[i] + platform.total[i] for i in range(3))  # type: ignore[return-value]


def render_total(cost: CostEstimate, platform: PlatformCost) -> list[str]:
    if platform.unpriced:
        return ["", f"Total: GPU only, {' / '.join(usd(v) for v in cost.total)} per month (min / typical / "
                f"max); the platform in {platform.region} is not priced."]
    return ["", f"Total per month (GPU + platform), min / typical / max: "
            f"{' / '.join(usd(v) for v in whole_bill(cost, platform))}"]


def _range(values: tuple[float, ...]) -> dict[str, float]:
    return dict(zip(("min", "typical", "max"), (round(v, 2) for v in values), strict=True))


def to_json(config: PlatformConfig, cost: CostEstimate, platform: PlatformCost,
            budget: tuple[float, str] | None) -> dict[str, Any]:
    return {
        "stack": config.environment, "region": config.region, "hoursPerMonth": HOURS_PER_MONTH,
        "gpu": {
            "nodePools": [{"name": p.name, "capacityType": p.capacity_type, "pricedAs": p.instance_type,
                           "nodes": dict(zip(("min", "typical", "limit"), p.nodes, strict=True)),
                           "hourlyUsd": p.hourly, "worstHourlyUsd": p.worst_hourly,
                           "monthlyUsd": _range(p.range)} for p in cost.pools],
            "models": [{"name": m.name, "engine": m.engine, "gpuShape": m.gpu_shape,
                        "replicas": {"min": m.replicas[0], "max": m.replicas[1]},
                        "cheapestPool": m.cheapest.name, "priciestPool": m.priciest.name}
                       for m in cost.models],
            "totalMonthlyUsd": _range(cost.total)},
        "platform": platform.to_json(),
        "totalMonthlyUsd": None if platform.unpriced else _range(whole_bill(cost, platform)),
        "budget": None if budget is None else {"monthlyUsd": budget[0], "source": budget[1],
                                               "checks": "the GPU fleet's max (gpu-fleet-monthly-budget)"},
    }


def run(args: argparse.Namespace) -> int:
    config = platform_config(args)
    plan = run_plan(args.stack, stacks_dir=args.stacks_dir)
    cost, budget = estimate(config), monthly_budget(args.stack)
    platform = platform_cost(config.region, plan.resources)
    if args.json:
        print(json.dumps(to_json(config, cost, platform, budget), indent=2))
    else:
        print("\n".join([render(config, cost, budget), *render_platform(platform),
                         *render_total(cost, platform)]))
    return 0
