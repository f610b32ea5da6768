"""Post-deploy evaluation of a model endpoint (the gateway, or a TGI service directly):
accuracy on a golden set, latency under load, refusals on harmful prompts, each gated by a
threshold in the suite file. The report is JSON; `passed` is false when any gate fails.

An evaluation that cannot measure (unreachable endpoint, answers that are not the chosen protocol,
no request answered at all) raises EvaluationError instead of reporting a pass or a fail.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from serving.evaluation.endpoint import Answer, RequestFailed, Timing
from serving.evaluation.errors import EvaluationError
from serving.evaluation.protocols import ModelEndpoint
from serving.evaluation.scoring import judge, judge_safety
from serving.evaluation.stats import percentile
from serving.evaluation.suite import Suite

T = TypeVar("T")
R = TypeVar("R")

#: threshold key -> (report path, comparison)
GATES: dict[str, tuple[tuple[str, ...], str]] = {
    "min_accuracy": (("accuracy", "score"), ">="),
    "min_safety_pass_rate": (("safety", "passRate"), ">="),
    "max_p50_s": (("latency", "p50S"), "<="),
    "max_p95_s": (("latency", "p95S"), "<="),
    "max_p99_s": (("latency", "p99S"), "<="),
    "max_ttft_p95_s": (("latency", "ttftP95S"), "<="),
    "min_tokens_per_s": (("latency", "tokensPerS"), ">="),
    "max_error_rate": (("errorRate",), "<="),
}


@dataclass(frozen=True)
class Outcome:
    """One request's result: a value, or the endpoint's error for it."""

    value: Any = None
    error: str | None = None
    blocked: bool = False


def _attempt(call: Callable[[], T]) -> Outcome:
    try:
        return Outcome(value=call())
    except RequestFailed as failed:
        return Outcome(error=str(failed), blocked=failed.blocked)


def _run(items: Sequence[T], call: Callable[[T], R], concurrency: int) -> list[Outcome]:
    """Call for every item, `concurrency` at a time, results in item order.
    EvaluationError (endpoint unusable) propagates and ends the run."""
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(lambda item: _attempt(lambda: call(item)), items))


def _golden(suite: Suite, endpoint: ModelEndpoint, concurrency: int) -> tuple[dict, list[Outcome]]:
    outcomes = _run(suite.golden, lambda it: endpoint.generate(it.prompt, it.parameters), concurrency)
    results = []
    for item, outcome in zip(suite.golden, outcomes, strict=True):
        if outcome.error:
            results.append({"id": item.id, "passed": False, "why": "request failed",
                            "error": outcome.error})
            continue
        answer: Answer = outcome.value
        verdict = judge(answer.text, item.expect)
        results.append({"id": item.id, "passed": verdict.passed, "why": verdict.why,
                        "expectation": item.expect.kind, "answer": answer.text})
    passed = sum(r["passed"] for r in results)
    return {"items": len(results), "passed": passed, "score": passed / len(results),
            "errors": sum(1 for o in outcomes if o.error), "results": results}, outcomes


def _safety(suite: Suite, endpoint: ModelEndpoint, concurrency: int) -> tuple[dict, list[Outcome]]:
    outcomes = _run(suite.safety, lambda it: endpoint.generate(it.prompt, it.parameters), concurrency)
    results = []
    for item, outcome in zip(suite.safety, outcomes, strict=True):
        if outcome.blocked:
            results.append({"id": item.id, "passed": True, "why": "blocked by the endpoint's input "
                            "checks", "error": outcome.error})
        elif outcome.error:
            results.append({"id": item.id, "passed": False, "why": "request failed", "error": outcome.error})
        else:
            verdict = judge_safety(outcome.value.text, item, suite.refusals)
            results.append({"id": item.id, "passed": verdict.passed, "why": verdict.why,
                            "answer": outcome.value.text})
    passed = sum(r["passed"] for r in results)
    return {"items": len(results), "passed": passed, "passRate": passed / len(results),
            "errors": sum(1 for o in outcomes if o.error and not o.blocked), "results": results}, outcomes


def _latency(suite: Suite, endpoint: ModelEndpoint) -> tuple[dict, list[Outcome]]:
    spec = suite.spec.latency
    started = time.perf_counter()
    outcomes = _run(range(spec.requests), lambda _i: endpoint.stream(spec.prompt, spec.parameters),
                    spec.concurrency)
    wall = time.perf_counter() - started
    timings: list[Timing] = [o.value for o in outcomes if o.error is None]
    rates = [t.decode_tokens_per_s for t in timings if t.decode_tokens_per_s is not None]
    latencies, ttfts = [t.latency_s for t in timings], [t.ttft_s for t in timings]
    errors = [o.error for o in outcomes if o.error]
    return {"requests": spec.requests, "concurrency": spec.concurrency, "errors": len(errors),
            "firstError": errors[0] if errors else None,
            "p50S": percentile(latencies, 50), "p95S": percentile(latencies, 95),
            "p99S": percentile(latencies, 99), "ttftP50S": percentile(ttfts, 50),
            "ttftP95S": percentile(ttfts, 95),
            "tokensPerS": statistics.median(rates) if rates else None,
            "throughputTokensPerS": sum(t.tokens for t in timings) / wall if wall > 0 else None,
            "wallS": wall}, outcomes


def _gates(suite: Suite, report: dict) -> list[dict]:
    gates = []
    for key, (path, op) in GATES.items():
        threshold = getattr(suite.spec.thresholds, key)
        if threshold is None:
            continue
        value: Any = report
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        passed = value is not None and (value >= threshold if op == ">=" else value <= threshold)
        alias = type(suite.spec.thresholds).model_fields[key].alias or key
        gates.append({"name": alias, "value": value, "op": op, "threshold": threshold, "passed": passed})
    return gates


def evaluate(suite: Suite, endpoint: ModelEndpoint, model: str | None) -> dict:
    """Run the suite against the endpoint and return the report."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    started = time.perf_counter()
    concurrency = suite.spec.latency.concurrency if suite.spec.latency else 4
    report: dict[str, Any] = {"suite": suite.spec.name, "suiteFile": str(suite.path),
                              "endpoint": endpoint.url, "model": model, "startedAt": started_at}
    outcomes: list[Outcome] = []
    if suite.golden:
        report["accuracy"], done = _golden(suite, endpoint, concurrency)
        outcomes += done
    if suite.safety:
        report["safety"], done = _safety(suite, endpoint, concurrency)
        outcomes += done
    if suite.spec.latency:
        report["latency"], done = _latency(suite, endpoint)
        outcomes += done
    answered = [o for o in outcomes if o.error is None or o.blocked]
    if not answered:
        raise EvaluationError(f"{endpoint.url} answered none of {len(outcomes)} requests; the first "
                              f"error was: {outcomes[0].error}")
    failed = sum(1 for o in outcomes if o.error and not o.blocked)
    report["requests"] = len(outcomes)
    report["errorRate"] = failed / len(outcomes)
    report["durationS"] = time.perf_counter() - started
    report["gates"] = _gates(suite, report)
    report["passed"] = all(g["passed"] for g in report["gates"])
    return report
