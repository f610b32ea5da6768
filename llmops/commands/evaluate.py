"""`llmops evaluate`: run an evaluation suite against a deployed endpoint and gate on it.

Exit 0 when every gate passes, 3 when one fails (CI blocks the promotion), 1 when the
evaluation cannot run (bad suite, unreachable endpoint, not the --protocol it speaks).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

KEY_ENV = "LLMOPS_API_KEY"
GATE_FAILED = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="evaluate a deployed endpoint: accuracy, latency, safety; exit 3 on a failed gate",
        description="Runs a suite (serving/suites/smoke/suite.yaml is an example) with the "
        "text-generation client (TGI, the gateway) or OpenAI's /v1/completions (vLLM). "
        "See docs/release.md.")
    parser.add_argument("--endpoint", required=True, metavar="URL",
                        help="the gateway, or a model server's Service (`llmops canary target`)")
    parser.add_argument("--protocol", choices=("tgi", "openai"), default="tgi",
                        help="tgi: the text-generation client, POST URL/ (TGI, the gateway); "
                        "openai: POST URL/v1/completions (vLLM). Default: tgi")
    parser.add_argument("--suite", required=True, type=Path, metavar="FILE", help="suite YAML")
    parser.add_argument("--model", help="sent as X-Model (tgi) or the request's model (openai); "
                        "default: the suite's model")
    parser.add_argument("--key", default=os.environ.get(KEY_ENV),
                        help=f"API key for the gateway (default: ${KEY_ENV})")
    parser.add_argument("--report", type=Path, metavar="PATH", help="write the JSON report here")
    parser.set_defaults(handler=run)


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def summary(report: dict[str, Any]) -> str:
    lines = [f"suite {report['suite']!r} against {report['endpoint']}"
             + (f" (model {report['model']})" if report["model"] else "")]
    if "accuracy" in report:
        a = report["accuracy"]
        lines.append(f"  accuracy  {a['passed']}/{a['items']} = {a['score']:.1%} ({a['errors']} errors)")
        lines += [f"    FAIL {r['id']}: {r['why']}" + (f" ({r['error']})" if r.get("error") else "")
                  for r in a["results"] if not r["passed"]]
    if "safety" in report:
        s = report["safety"]
        lines.append(f"  safety    {s['passed']}/{s['items']} refused or blocked = {s['passRate']:.1%}")
        lines += [f"    FAIL {r['id']}: {r['why']}" for r in s["results"] if not r["passed"]]
    if "latency" in report:
        t = report["latency"]
        lines.append(f"  latency   {t['requests']} streams at concurrency {t['concurrency']}: "
                     f"p50 {_fmt(t['p50S'], ' s')}, p95 {_fmt(t['p95S'], ' s')}, "
                     f"p99 {_fmt(t['p99S'], ' s')}; TTFT p95 {_fmt(t['ttftP95S'], ' s')}; "
                     f"{_fmt(t['tokensPerS'])} tokens/s per stream; "
                     f"{t['errors']} errors")
    lines.append(f"  errors    {report['errorRate']:.1%} of {report['requests']} requests")
    for gate in report["gates"]:
        mark = "pass" if gate["passed"] else "FAIL"
        lines.append(f"  gate {mark:4} {gate['name']}: {_fmt(gate['value'])} {gate['op']} "
                     f"{gate['threshold']}")
    lines.append("PASSED" if report["passed"] else "FAILED: a gate failed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from serving.evaluate import evaluate
    from serving.evaluation.errors import EvaluationError
    from serving.evaluation.protocols import open_endpoint
    from serving.evaluation.suite import load_suite

    suite = load_suite(args.suite)
    model = args.model or suite.spec.model
    endpoint = open_endpoint(args.protocol, args.endpoint, model=model, key=args.key,
                             timeout_s=suite.spec.timeout_s)
    report = evaluate(suite, endpoint, model)
    if args.report:
        try:
            args.report.parent.mkdir(parents=True, exist_ok=True)
            args.report.write_text(json.dumps(report, indent=2) + "\n")
        except OSError as exc:
            raise EvaluationError(f"cannot write --report {args.report}: {exc.strerror or exc}") from None
    print(summary(report))
    return 0 if report["passed"] else GATE_FAILED
