"""`llmops plan --stack <env>`: the offline preview of a stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from llmops.commands.stack_args import add_stack_arguments
from llmops.offline import deploy_checks
from llmops.offline.manifests import write_manifests
from llmops.offline.notes import plan_notes
from llmops.offline.output_paths import check_targets
from llmops.offline.plan import Plan, run_plan
from policies.runner import evaluate, mandatory, render
from stacks.bootstrap.config import BOOTSTRAP_STACK

#: Exit status when a mandatory policy is violated (as `llmops policy check`) or a deploy
#: check finds something that would stop the first real `up`.
POLICY_FAILURE = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="run a stack's program offline under mocks and summarise what it creates",
        description="Runs the real Pulumi program under mocks with stacks/Pulumi.<stack>.yaml, "
        "records every resource and prints a summary. No cloud account or Pulumi CLI needed.")
    add_stack_arguments(parser, "environment to plan, or `bootstrap` for the account's bootstrap "
                        "project (stacks/bootstrap/Pulumi.bootstrap.yaml)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="write every recorded resource and the outputs as JSON")
    parser.add_argument("--manifests", type=Path, metavar="DIR",
                        help="write every Kubernetes object as YAML, one file per object")
    parser.add_argument("--quiet", action="store_true", help="print only the totals")
    parser.add_argument("--no-policy", action="store_true",
                        help="skip the policy pack (policies/config/<stack>.yaml); by default "
                        "mandatory violations exit 3")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    check_targets(args.json, args.manifests)
    if args.stack == BOOTSTRAP_STACK:
        return run_bootstrap(args)
    plan = run_plan(args.stack, stacks_dir=args.stacks_dir)
    print(render_summary(plan, quiet=args.quiet))
    if args.json:
        plan.write_json(args.json)
        print(f"wrote {len(plan.resources)} resources to {args.json}")
    if args.manifests:
        written = write_manifests(plan.resources, args.manifests)
        print(f"wrote {len(written)} Kubernetes manifests to {args.manifests}/")
    findings = deploy_checks.check(plan)
    print("\n" + deploy_checks.render(findings))
    if args.no_policy:
        return POLICY_FAILURE if findings else 0
    violations = evaluate(plan.resources, plan.stack)
    print("\n" + render(violations, stack=plan.stack))
    return POLICY_FAILURE if findings or mandatory(violations) else 0


def run_bootstrap(args: argparse.Namespace) -> int:
    """The account's bootstrap project: summary, JSON, and the pack with prod's settings."""
    from llmops.offline.bootstrap_plan import POLICY_SETTINGS, run_bootstrap_plan
    from policies.settings import load_config

    plan = run_bootstrap_plan(args.stacks_dir)
    print(render_summary(plan, quiet=args.quiet, notes=False))
    if args.json:
        plan.write_json(args.json)
        print(f"wrote {len(plan.resources)} resources to {args.json}")
    if args.no_policy:
        return 0
    violations = evaluate(plan.resources, config=load_config(POLICY_SETTINGS))
    print("\n" + render(violations, stack=plan.stack))
    return POLICY_FAILURE if mandatory(violations) else 0


def render_summary(plan: Plan, quiet: bool = False, notes: bool = True) -> str:
    custom = plan.custom_resources
    components = len(plan.resources) - len(custom)
    per_stack = ", ".join(f"{label} {len([r for r in custom if r.stack == label])}"
                          for label in plan.stack_outputs)
    head = (f"Offline plan of stack {plan.stack!r} ({plan.config.region}): "
            f"{len(custom)} resources in {components} components ({per_stack})")
    if quiet:
        return head
    lines = [head, "", "Resources by type:"]
    counts = plan.counts_by_type()
    width = max((len(t) for t in counts), default=0)
    for type_token in sorted(counts):
        lines.append(f"  {type_token:<{width}}  {counts[type_token]:>4}")
    for label, outputs in plan.stack_outputs.items():
        lines += ["", f"Stack outputs ({label}):"]
        for key in sorted(outputs):
            shown = "[secret]" if key in plan.secret_outputs else json.dumps(outputs[key])
            lines.append(f"  {key}: {shown}")
    if notes:
        lines += ["", *plan_notes(plan)]
    return "\n".join(lines)
