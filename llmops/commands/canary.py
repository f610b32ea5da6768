"""`llmops canary analyze | promote | rollback | target`: decide a canary on measured evidence
and act; `target` tells CI where the canary is served and how it speaks.

analyze exits 0 for promote, 3 for hold, 4 for rollback (1 when it cannot run), so a CI step
can branch on it. promote and rollback print the stack change (and write it with --write).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from components.engines import service_target
from serving.registry import STAGES, ModelRegistry
from serving.release import stackedit
from serving.release.decision import Verdict, decide
from serving.release.errors import ReleaseError
from serving.release.prometheus import Prometheus
from serving.release.promotion import promote_canary
from serving.release.signals import TrackStats, collect
from serving.release.stack import Stack, load_stack
from vocabulary.config.release import CanaryTolerances
from vocabulary.stackfile import STACKS_DIR

EXIT = {"promote": 0, "hold": 3, "rollback": 4}
BUCKET_ENV = "LLMOPS_REGISTRY_BUCKET"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "canary", help="analyze a canary from Prometheus, then promote or roll it back",
        description="Release decisions for a model's canary track. See docs/release.md.")
    sub = parser.add_subparsers(dest="canary_command", required=True, metavar="ACTION")

    ana = sub.add_parser("analyze", help="compare canary with stable: promote, hold or rollback "
                         "(exit 0, 3, 4)")
    ana.add_argument("--prometheus", required=True, metavar="URL", help="Prometheus base URL")
    ana.add_argument("--model", required=True)
    ana.add_argument("--window", help="Prometheus duration, e.g. 30m (default: the stack's "
                     "llmops:release.canary.window, else 30m)")
    ana.add_argument("--stack", help="read tolerances from stacks/Pulumi.<stack>.yaml "
                     "(default: the built-in defaults)")
    ana.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR")
    ana.add_argument("--json", type=Path, metavar="PATH", help="also write the analysis as JSON")
    ana.set_defaults(handler=run_analyze)

    pro = sub.add_parser("promote", help="promote the canary's version in the registry and print "
                         "the stack change that makes it stable")
    _stack_args(pro)
    pro.add_argument("--bucket", default=os.environ.get(BUCKET_ENV),
                     help=f"registry bucket (default: ${BUCKET_ENV})")
    pro.add_argument("--prefix", default="registry/")
    pro.add_argument("--stage", default="production", choices=STAGES)
    pro.set_defaults(handler=run_promote)

    rol = sub.add_parser("rollback", help="remove the canary from the stack (its weight to 0) and "
                         "print the immediate and the durable step")
    _stack_args(rol)
    rol.set_defaults(handler=run_rollback)

    tar = sub.add_parser("target", help="print the canary's Service, port and protocol "
                         "(key=value lines for $GITHUB_OUTPUT, or --json)")
    tar.add_argument("--model", required=True)
    tar.add_argument("--stack", required=True, help="the environment: stacks/Pulumi.<stack>.yaml")
    tar.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR")
    tar.add_argument("--json", action="store_true", help="print one JSON object instead")
    tar.set_defaults(handler=run_target)


def _stack_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True)
    parser.add_argument("--stack", required=True, help="the environment: stacks/Pulumi.<stack>.yaml")
    parser.add_argument("--stacks-dir", type=Path, default=STACKS_DIR, metavar="DIR")
    parser.add_argument("--write", action="store_true", help="write the change to the stack file")


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise ReleaseError(f"cannot write {what} {path}: {exc.strerror or exc}") from None


# -- analyze ---------------------------------------------------------------------------------
def run_analyze(args: argparse.Namespace) -> int:
    tolerances, source = CanaryTolerances(), "built-in defaults"
    if args.stack:
        stack = load_stack(args.stack, args.stacks_dir)
        stack.model(args.model)  # the model must exist in that stack
        tolerances, source = stack.config.release.canary, f"{stack.source} llmops:release.canary"
    window = args.window or tolerances.window
    stats = collect(Prometheus(args.prometheus), args.model, window)
    verdict = decide(stats["stable"], stats["canary"], tolerances)
    print(render(args.model, window, source, stats, verdict))
    if args.json:
        _write(args.json, json.dumps(to_json(args.model, window, tolerances, stats, verdict),
                                     indent=2) + "\n", "--json")
    return EXIT[verdict.decision]


def _num(value: float | None, unit: str = "", digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}{unit}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2%}"


def render(model: str, window: str, source: str, stats: dict[str, TrackStats], verdict: Verdict) -> str:
    s, c = stats["stable"], stats["canary"]
    rows = [("requests", f"{s.requests:.0f}", f"{c.requests:.0f}"),
            ("errors (5xx)", f"{s.errors:.0f}", f"{c.errors:.0f}"),
            ("error rate", _pct(s.error_rate), _pct(c.error_rate)),
            ("p95 latency", _num(s.latency_p95_s, " s"), _num(c.latency_p95_s, " s")),
            ("time per token", _num(s.time_per_token_s, " s"), _num(c.time_per_token_s, " s")),
            ("breaker opened", "yes" if s.breaker_tripped else "no", "yes" if c.breaker_tripped else "no")]
    lines = [f"canary analysis of {model} over the last {window} (tolerances: {source})",
             f"  {'':18}{'stable':>12}{'canary':>12}"]
    lines += [f"  {name:18}{a:>12}{b:>12}" for name, a, b in rows]
    if verdict.checks:
        lines.append("checks:")
        lines += [f"  {c.status.upper():7} {c.name}: {c.detail}" for c in verdict.checks]
    lines.append(f"decision: {verdict.decision.upper()}: {verdict.reason}")
    return "\n".join(lines)


def to_json(model: str, window: str, tolerances: CanaryTolerances, stats: dict[str, TrackStats],
            verdict: Verdict) -> dict:
    return {"model": model, "window": window, "decision": verdict.decision, "reason": verdict.reason,
            "tracks": {t: s.to_json() for t, s in stats.items()},
            "checks": [c.__dict__ for c in verdict.checks],
            "tolerances": tolerances.model_dump(by_alias=True)}


# -- promote / rollback ------------------------------------------------------------------------
def _pulumi_up(stack: Stack) -> str:
    return (f"pulumi up --stack {stack.name} --policy-pack policies "
            f"--policy-pack-config policies/config/{stack.name}.json")


def _show_change(stack: Stack, new_text: str, write: bool) -> None:
    print(stackedit.diff(stack.path.read_text(), new_text, stack.source), end="")
    if write:
        _write(stack.path, new_text, "the stack file")
        print(f"wrote {stack.source}")
    else:
        print(f"(not written; re-run with --write to change {stack.source})")


def run_promote(args: argparse.Namespace) -> int:
    if not args.bucket:
        raise ReleaseError(f"no registry bucket: pass --bucket or set {BUCKET_ENV}")
    stack = load_stack(args.stack, args.stacks_dir)
    result = promote_canary(ModelRegistry(args.bucket, prefix=args.prefix), stack, args.model, args.stage)
    p = result.promotion.pointer
    if result.promotion.changed:
        print(f"{p['stage']} of {args.model}: {p['previousVersion'] or '(none)'} -> {p['version']} "
              f"(revision {p['revision']}; audit record {result.promotion.audit_key})")
    else:
        print(f"{p['stage']} of {args.model} already points at {p['version']}; registry unchanged")
    how = (f"the stable track follows stage {args.stage}, so it serves {p['version']} on the next "
           "`pulumi up`; the canary block goes" if result.stable_follows_stage else
           f"the stable track is pinned, so it is re-pinned to {p['version']}; the canary block goes")
    print(f"stack change ({how}):")
    _show_change(stack, result.new_text, args.write)
    print(f"then apply it: {_pulumi_up(stack)}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack, args.stacks_dir)
    model = stack.model(args.model)
    new_text = stackedit.remove_canary(stack.path.read_text(), stack.source, args.model)
    stackedit.validate(new_text, stack.name)
    namespace = stack.config.serving.namespace
    print(f"now (seconds; needs kubectl on the cluster): scale the canary to zero and keep KEDA "
          f"from scaling it back up:\n  kubectl -n {namespace} annotate scaledobject "
          f"{service_target(model, 'canary').service} autoscaling.keda.sh/paused-replicas=0 --overwrite\n"
          "  the gateway's canary share then fails to connect and is retried on stable; after "
          "breaker.failureThreshold failures the canary breaker opens and stops the retries.")
    print("durable (removes the canary Deployment and its gateway route; weight 0 is not a valid "
          "canary weight, so the canary block goes):")
    _show_change(stack, new_text, args.write)
    print(f"then apply it: {_pulumi_up(stack)}\n"
          "  and reload the gateway's routing (it reads its ConfigMap at start): "
          "kubectl -n llm-gateway rollout restart deployment/llm-gateway")
    return 0



# -- target ----------------------------------------------------------------------------------
def run_target(args: argparse.Namespace) -> int:
    stack = load_stack(args.stack, args.stacks_dir)
    model = stack.model(args.model)
    if model.canary is None:
        raise ReleaseError(f"{stack.source}: model {args.model!r} has no canary in llmops:models "
                           "(nothing to evaluate or roll back)")
    target = service_target(model, "canary")
    fields = {"namespace": stack.config.serving.namespace, "service": target.service,
              "scaledObject": target.service, "port": target.port, "protocol": target.protocol,
              "engine": model.engine}
    if args.json:
        print(json.dumps(fields))
    else:
        print("\n".join(f"{key}={value}" for key, value in fields.items()))
    return 0
