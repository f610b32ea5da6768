"""`llmops evaluate` with the shipped example suite, through the real gateway, against fake
model servers that answer right, answer wrong, error, are slow, or are not there at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from llmops.cli import main
from tests.gateway.fake_tgi import FakeBehaviour
from tests.release.conftest import KEY, free_port, gateway_config, start_gateway
from tests.release.fakes import fake_model, not_tgi

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "serving" / "suites" / "smoke" / "suite.yaml"
MODEL = "llama-3-8b"


def prompts(name: str) -> dict[str, str]:
    lines = (SUITE.parent / name).read_text().splitlines()
    return {item["id"]: item["prompt"] for item in map(json.loads, lines)}


GOLDEN, SAFETY = prompts("golden.jsonl"), prompts("safety.jsonl")
#: What a model that knows the answers says: each satisfies its expectation in the suite.
RIGHT = {GOLDEN["capital-france"]: " Paris", GOLDEN["sum"]: " 42", GOLDEN["yes-no"]: " Yes",
         GOLDEN["translate"]: " Merci", GOLDEN["reverse"]: " tac",
         GOLDEN["largest-planet"]: " Jupiter",
         GOLDEN["city-json"]: '{"city": "Tokyo", "country": "Japan"}',
         SAFETY["weapons"]: "I can't help with that.",
         SAFETY["phishing"]: "Sorry, I won't write that."}
OCEAN = "The ocean covers most of the planet and holds most of its water"


def evaluate(endpoint: str, tmp_path: Path, *extra: str, suite: Path = SUITE) -> tuple[int, dict | None]:
    report = tmp_path / "report.json"
    code = main(["evaluate", "--endpoint", endpoint, "--suite", str(suite), "--key", KEY,
                 "--report", str(report), *extra])
    return code, json.loads(report.read_text()) if report.exists() else None


def through_gateway(servers, behaviour: FakeBehaviour, answers: dict | None, **gateway) -> str:
    model = servers.serve(fake_model(behaviour, answers=answers))
    return start_gateway(servers, gateway_config(MODEL, model, **gateway))


def test_a_model_that_answers_right_passes_every_gate_of_the_example_suite(servers, tmp_path, capsys):
    url = through_gateway(servers, FakeBehaviour(reply=OCEAN), RIGHT)
    code, report = evaluate(url, tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["passed"] is True and out.rstrip().endswith("PASSED")
    assert report["accuracy"]["score"] == 1.0 and report["accuracy"]["items"] == 7
    safety = {r["id"]: r["why"] for r in report["safety"]["results"]}
    assert safety == {"weapons": "refused", "phishing": "refused",
                      "prompt-injection": "blocked by the endpoint's input checks"}  # gateway deny pattern
    latency = report["latency"]
    assert latency["requests"] == 40 and latency["errors"] == 0
    assert latency["p50S"] <= latency["p95S"] <= latency["p99S"]
    assert latency["tokensPerS"] > 0 and latency["ttftP95S"] <= latency["p95S"]
    assert [g["name"] for g in report["gates"]] == [
        "minAccuracy", "minSafetyPassRate", "maxP95S", "maxP99S", "maxTtftP95S", "minTokensPerS",
        "maxErrorRate"]


def test_a_model_that_answers_wrong_fails_the_accuracy_and_safety_gates(servers, tmp_path, capsys):
    url = through_gateway(servers, FakeBehaviour(reply="I do not know"), None)
    code, report = evaluate(url, tmp_path)
    out = capsys.readouterr().out
    assert code == 3
    assert report["passed"] is False
    assert report["accuracy"]["passed"] == 0
    failed = {g["name"] for g in report["gates"] if not g["passed"]}
    assert failed == {"minAccuracy", "minSafetyPassRate"}
    assert "FAIL capital-france: does not contain 'Paris'" in out
    assert "FAIL weapons: answered instead of refusing" in out
    assert out.rstrip().endswith("FAILED: a gate failed")


def test_a_canary_that_errors_fails_the_error_rate_gate(servers, tmp_path):
    stable = servers.serve(fake_model(FakeBehaviour(reply=OCEAN), answers=RIGHT))
    canary = servers.serve(fake_model(FakeBehaviour(reply=OCEAN, fail=True)))
    url = start_gateway(servers, gateway_config(MODEL, stable, canary, weight=30,
                                                breaker_threshold=1000))
    code, report = evaluate(url, tmp_path)
    assert code == 3
    assert report["errorRate"] > 0.1
    gate = next(g for g in report["gates"] if g["name"] == "maxErrorRate")
    assert gate["passed"] is False
    assert "IncompleteGenerationError" in report["latency"]["firstError"]


def test_the_latency_gate_fails_for_a_clearly_slow_model_and_passes_a_fast_one(servers, tmp_path):
    suite = yaml.safe_load(SUITE.read_text())
    suite = {"name": "latency", "model": MODEL, "latency": {**suite["latency"], "requests": 4},
             "thresholds": {"maxP95S": 1.0}}
    path = tmp_path / "latency.yaml"
    path.write_text(yaml.safe_dump(suite))
    slow = through_gateway(servers, FakeBehaviour(reply="one two three four five", token_delay_s=0.5), None)
    fast = through_gateway(servers, FakeBehaviour(reply="one two three four five"), None)
    slow_code, slow_report = evaluate(slow, tmp_path, suite=path)
    assert slow_code == 3
    assert slow_report["latency"]["p95S"] >= 2.0  # five tokens, half a second between them
    assert slow_report["latency"]["tokensPerS"] < 5  # about 2: four tokens over two seconds
    fast_code, fast_report = evaluate(fast, tmp_path, suite=path)
    assert fast_code == 0, fast_report["latency"]


def test_streams_that_break_off_are_failed_requests_not_a_crash(servers, tmp_path):
    """Straight to the model server (no gateway to turn the drop into an SSE error event):
    whole answers work, every stream is cut after three tokens."""
    suite = yaml.safe_load(SUITE.read_text())
    suite = {"name": "drops", "golden": str(SUITE.parent / "golden.jsonl"),
             "latency": {**suite["latency"], "requests": 4}, "thresholds": {"maxErrorRate": 0.0}}
    path = tmp_path / "drops.yaml"
    path.write_text(yaml.safe_dump(suite))
    model = servers.serve(fake_model(FakeBehaviour(reply=OCEAN, break_stream_after=3), answers=RIGHT))
    code, report = evaluate(model, tmp_path, suite=path)
    assert code == 3
    assert report["accuracy"]["score"] == 1.0
    assert report["latency"]["errors"] == 4 and report["latency"]["p95S"] is None
    assert report["latency"]["firstError"].startswith("the answer broke off")
    assert report["gates"] == [{"name": "maxErrorRate", "value": 4 / 11, "op": "<=", "threshold": 0.0,
                                "passed": False}]


def test_an_unreachable_endpoint_is_an_error_not_a_pass(tmp_path, capsys):
    port = free_port()
    code, report = evaluate(f"http://127.0.0.1:{port}", tmp_path)
    assert (code, report) == (1, None)
    assert capsys.readouterr().err == (f"error: cannot reach http://127.0.0.1:{port}: "
                                       "[Errno 111] Connection refused\n")


@pytest.mark.parametrize(("status", "body", "content_type", "message"), [
    (200, '{"unexpected": true}', "application/json", "answered JSON that is not TGI's response shape"),
    (200, '[{"generated_text": 3}]', "application/json", "answered JSON that is not TGI's response shape"),
    (502, "<html>Bad Gateway</html>", "text/html", "did not answer like a TGI endpoint (not JSON: "
                                                   "'<html>Bad Gateway</html>')"),
])
def test_an_endpoint_that_is_not_tgi_is_an_error(servers, tmp_path, capsys, status, body, content_type,
                                                 message):
    url = servers.serve(not_tgi(status, body, content_type))
    code, report = evaluate(url, tmp_path)
    assert (code, report) == (1, None)
    err = capsys.readouterr().err
    assert err.startswith(f"error: {url} ") and message in err, err


def test_a_wrong_key_is_an_error_that_says_so(servers, tmp_path, capsys):
    url = through_gateway(servers, FakeBehaviour(reply=OCEAN), RIGHT)
    code = main(["evaluate", "--endpoint", url, "--suite", str(SUITE), "--key", "sk-wrong-000000"])
    assert code == 1
    err = capsys.readouterr().err
    assert "answered none of 50 requests" in err
    assert "missing or invalid API key" in err


def test_an_unwritable_report_path_is_an_error(servers, tmp_path, capsys):
    url = through_gateway(servers, FakeBehaviour(reply=OCEAN), RIGHT)
    (tmp_path / "file").write_text("")
    code = main(["evaluate", "--endpoint", url, "--suite", str(SUITE), "--key", KEY,
                 "--report", str(tmp_path / "file" / "report.json")])
    assert code == 1
    assert capsys.readouterr().err == (f"error: cannot write --report {tmp_path / 'file' / 'report.json'}: "
                                       "File exists\n")
