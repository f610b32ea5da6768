"""`llmops cost --stack ENV`: the environment's monthly GPU bill as a range, per pool and model.

Reads only the stack's config (no plan needed): pool sizes give the node counts, the instance
facts give the prices, and the budget comes from the same policy config `llmops plan` checks.
"""

from __future__ import annotations

import argparse

from components.gpu_instances import HOURS_PER_MONTH
from llmops.commands.stack_args import add_stack_arguments, platform_config
from llmops.offline.cost import CostEstimate, estimate, usd
from llmops.offline.text_table import table
from policies.gpu_cost import RULES as GPU_COST_RULES
from policies.settings import PolicyConfigError, load_config
from stacks.config import PlatformConfig

BUDGET_RULE = next(r for r in GPU_COST_RULES if r.name == "gpu-fleet-monthly-budget")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost", help="monthly GPU cost range per pool and model (spot vs on-demand, budget)",
        description="Prices every GPU pool at its min, desired and max size and every model at "
        "its min and max replicas, from components/data/gpu_instances.yaml (the table the "
        "budget policy uses), 730 hours a month. Spot prices are estimates.")
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
             f"{HOURS_PER_MONTH} h; a node is priced at its pool's priciest type", "", "Pools:"]
    rows = [["pool", "capacity", "priced as", "nodes min/desired/max", "$/h", "on-demand $/h",
             "monthly min / desired / max", "saves"]]
    for p in cost.pools:
        rows.append([p.name, p.capacity_type, p.instance_type, " / ".join(map(str, p.nodes)),
                     f"{p.hourly:.3f}", f"{p.on_demand_hourly:.3f}",
                     " / ".join(usd(v) for v in p.range),
                     f"{p.savings:.0%}" if p.capacity_type == "SPOT" else "-"])
    rows.append(["total", "", "", "", "", "", " / ".join(usd(v) for v in cost.total), ""])
    lines += table(rows, right={4, 5, 7})
    if budget:
        amount, source = budget
        high = cost.total[2]
        verdict = "within" if high <= amount else "OVER"
        lines += ["", f"Budget: {usd(amount)}/month ({source}); the largest fleet the pools allow, "
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
                         "-".join(usd(v) for v in m.monthly(m.priciest))])
        lines += table(rows, right={4})
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    config = platform_config(args)
    print(render(config, estimate(config), monthly_budget(args.stack)))
    return 0
