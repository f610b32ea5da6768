"""`llmops cost --stack ENV`: the environment's monthly GPU bill as a range, per NodePool and model.

Reads only the stack's config (no plan needed): the NodePools the config renders give the
limits (the most nodes), the models' minimum replicas the floor, the instance facts the
prices, and the budget comes from the same policy config `llmops plan` checks.
"""

from __future__ import annotations

import argparse

from llmops.commands.stack_args import add_stack_arguments, platform_config
from llmops.offline.cost import CostEstimate, estimate, usd
from llmops.offline.text_table import table
from policies.gpu_cost import RULES as GPU_COST_RULES
from policies.settings import PolicyConfigError, load_config
from vocabulary.config import PlatformConfig
from vocabulary.gpu_instances import HOURS_PER_MONTH

BUDGET_RULE = next(r for r in GPU_COST_RULES if r.name == "gpu-fleet-monthly-budget")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost", help="monthly GPU cost range per NodePool and model (spot vs on-demand, budget)",
        description="Prices every GPU NodePool from the nodes its models' minimum replicas need "
        "(at spot where it may buy spot) up to its limits (at the priciest capacity it may "
        "buy), and every model at its min and max replicas, from "
        "vocabulary/data/gpu_instances.yaml (the table the budget policy uses), 730 hours a "
        "month. Spot prices are estimates.")
    add_stack_arguments(parser)
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
             "node the limits allow at the priciest capacity the NodePool may buy", "", "NodePools:"]
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


def run(args: argparse.Namespace) -> int:
    config = platform_config(args)
    print(render(config, estimate(config), monthly_budget(args.stack)))
    return 0
