"""`llmops outputs --stack ENV [--json]`: what applications consume, as the deploy will
publish it: each stack's outputs (`pulumi stack output`) and the SSM parameters that mirror
them for consumers without Pulumi. Plain values are shown, secrets masked; ids and ARNs are
the offline plan's deterministic stand-ins for what AWS assigns."""

from __future__ import annotations

import argparse
import json
from typing import Any

from llmops.commands.stack_args import add_stack_arguments
from llmops.offline.plan import Plan, run_plan
from llmops.offline.published import PROJECTS, published_parameters, stack_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "outputs", help="each stack's outputs and the SSM parameters the deploy publishes",
        description="Plans the environment offline and prints what consumers read: the "
        "platform and workloads stacks' outputs and the SSM parameters mirroring them. "
        "Secrets are masked; ids and ARNs are the offline plan's stand-ins.")
    add_stack_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(handler=run)


def to_json(plan: Plan) -> dict[str, Any]:
    return {"stack": plan.stack, "outputs": stack_outputs(plan),
            "ssmParameters": [p.to_json() for p in published_parameters(plan)]}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def render(plan: Plan) -> str:
    lines = [f"Outputs of stack {plan.stack!r} ({plan.config.region}), as the offline plan "
             "records them (ids and ARNs are stand-ins)"]
    for label, values in stack_outputs(plan).items():
        lines += ["", f"{label} ({PROJECTS[label]}/{plan.stack}), `pulumi stack output`:"]
        width = max((len(k) for k in values), default=0)
        lines += [f"  {key:<{width}}  {_shown(values[key])}" for key in sorted(values)]
    parameters = published_parameters(plan)
    lines += ["", "SSM parameters (for consumers without Pulumi):"]
    width = max((len(p.name) for p in parameters), default=0)
    lines += [f"  {p.name:<{width}}  {p.type:<12}  {_shown(p.shown)}" for p in parameters]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    plan = run_plan(args.stack, stacks_dir=args.stacks_dir)
    print(json.dumps(to_json(plan), indent=2) if args.json else render(plan))
    return 0
