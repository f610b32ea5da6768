"""`llmops evaluate --protocol openai` end to end through the CLI, against a fake with vLLM's
wire format (tests/gateway/fake_vllm.py): answers, streams timed with tokens from `usage`, the
suite's parameters as an OpenAI completion request, and the three failure kinds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from llmops.cli import main
from tests.gateway.fake_vllm import VllmBehaviour, create_fake_vllm
from tests.release.conftest import KEY, free_port

MODEL = "llama-3-8b"
WORDS = ("Hello", " from", " vLLM", " on", " the", " canary")


def write_suite(tmp_path: Path, golden: list[dict], latency: dict | None = None) -> Path:
    (tmp_path / "golden.jsonl").write_text("".join(json.dumps(item) + "\n" for item in golden))
    spec = {"name": "vllm-smoke", "model": MODEL, "timeoutS": 10, "golden": "golden.jsonl",
            "thresholds": {"minAccuracy": 1.0, "maxErrorRate": 0.0}}
    if latency:
        spec["latency"] = latency
        spec["thresholds"]["minTokensPerS"] = 0.001
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


GREETING = {"id": "greet", "prompt": "Say hello", "expect": {"contains": "vLLM"},
            "parameters": {"maxNewTokens": 4, "stop": ["\n"], "seed": 7}}
LATENCY = {"requests": 6, "concurrency": 2, "prompt": "Stream a little",
           "parameters": {"maxNewTokens": 5, "doSample": True, "temperature": 0.7, "topP": 0.9}}


def run(endpoint: str, suite: Path, tmp_path: Path, *extra: str) -> tuple[int, dict | None]:
    report = tmp_path / "report.json"
    code = main(["evaluate", "--endpoint", endpoint, "--suite", str(suite), "--key", KEY,
                 "--protocol", "openai", "--report", str(report), *extra])
    return code, json.loads(report.read_text()) if report.exists() else None


def test_a_vllm_server_is_evaluated_over_the_openai_api_with_streams_timed(servers, tmp_path, capsys):
    behaviour = VllmBehaviour(served=MODEL, words=WORDS, token_delay_s=0.002)
    url = servers.serve(create_fake_vllm(behaviour))
    code, report = run(url, write_suite(tmp_path, [GREETING], LATENCY), tmp_path)
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["passed"] is True and out.rstrip().endswith("PASSED")
    assert report["accuracy"]["results"][0]["answer"] == "Hello from vLLM on"
    latency = report["latency"]
    assert latency["requests"] == 6 and latency["errors"] == 0
    assert 0 < latency["ttftP95S"] <= latency["p95S"] and latency["tokensPerS"] > 0
    # 6 streams of 5 tokens each (the usage chunk's completion_tokens)
    assert latency["throughputTokensPerS"] * latency["wallS"] == pytest.approx(30)


def test_the_suites_parameters_become_an_openai_completion_request(servers, tmp_path, capsys):
    behaviour = VllmBehaviour(served=MODEL, words=WORDS)
    url = servers.serve(create_fake_vllm(behaviour))
    code, _ = run(url, write_suite(tmp_path, [GREETING], LATENCY), tmp_path)
    assert code == 0, capsys.readouterr().out
    assert {r["path"] for r in behaviour.requests} == {"/v1/completions"}
    golden = next(r["body"] for r in behaviour.requests if not r["body"].get("stream"))
    assert golden == {"prompt": "Say hello", "model": MODEL, "max_tokens": 4, "temperature": 0.0,
                      "seed": 7, "stop": ["\n"]}  # greedy, as TGI without doSample
    streamed = next(r["body"] for r in behaviour.requests if r["body"].get("stream"))
    assert streamed == {"prompt": "Stream a little", "model": MODEL, "max_tokens": 5, "temperature": 0.7,
                        "top_p": 0.9, "stream": True, "stream_options": {"include_usage": True}}


def test_a_grammar_becomes_vllms_structured_outputs(servers, tmp_path, capsys):
    behaviour = VllmBehaviour(served=MODEL, words=WORDS)
    url = servers.serve(create_fake_vllm(behaviour))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    item = {**GREETING, "parameters": {"grammar": {"type": "json", "value": schema}}}
    run(url, write_suite(tmp_path, [item]), tmp_path)
    capsys.readouterr()
    assert behaviour.requests[0]["body"]["structured_outputs"] == {"json": schema}


def test_a_stream_that_stalls_past_the_timeout_fails_that_request(servers, tmp_path, capsys):
    url = servers.serve(create_fake_vllm(VllmBehaviour(served=MODEL, words=WORDS, token_delay_s=2)))
    suite = write_suite(tmp_path, [GREETING], {**LATENCY, "requests": 1, "concurrency": 1})
    suite.write_text(suite.read_text().replace("timeoutS: 10", "timeoutS: 0.3"))
    code, report = run(url, suite, tmp_path)
    capsys.readouterr()
    assert code == 3
    assert report["accuracy"]["passed"] == 1  # the answer without streaming is not delayed
    assert report["latency"]["errors"] == 1
    assert report["latency"]["firstError"].startswith("no token within the suite's timeoutS")


def test_an_error_answer_fails_that_request_and_the_run_goes_on(servers, tmp_path, capsys):
    url = servers.serve(create_fake_vllm(VllmBehaviour(served=MODEL, words=WORDS, max_prompt_chars=40)))
    long = {"id": "long", "prompt": "x" * 60, "expect": {"contains": "vLLM"}}
    code, report = run(url, write_suite(tmp_path, [GREETING, long]), tmp_path)
    out = capsys.readouterr().out
    assert code == 3
    failed = report["accuracy"]["results"][1]
    assert failed["why"] == "request failed"
    assert failed["error"].startswith("HTTP 400 BadRequestError: This model's maximum context length is 40")
    assert "FAIL long: request failed (HTTP 400 BadRequestError" in out


def test_a_model_the_server_does_not_serve_stops_with_vllms_message(servers, tmp_path, capsys):
    url = servers.serve(create_fake_vllm(VllmBehaviour(served="other", words=WORDS)))
    code, report = run(url, write_suite(tmp_path, [GREETING]), tmp_path)
    err = capsys.readouterr().err
    assert code == 1 and report is None
    assert "answered none of 1 requests" in err
    assert "HTTP 404 NotFoundError: The model `llama-3-8b` does not exist." in err


def test_an_unreachable_endpoint_stops_the_run(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code, report = run(url, write_suite(tmp_path, [GREETING], LATENCY), tmp_path)
    err = capsys.readouterr().err
    assert code == 1 and report is None
    assert f"error: cannot reach {url}: [Errno 111] Connection refused" in err


def test_a_server_answering_text_is_not_an_openai_endpoint(servers, tmp_path, capsys):
    url = servers.serve(create_fake_vllm(VllmBehaviour(served=MODEL, not_ready=True)))
    code, _ = run(url, write_suite(tmp_path, [GREETING]), tmp_path)
    err = capsys.readouterr().err
    assert code == 1
    assert (f"error: {url}/v1/completions did not answer like an OpenAI endpoint (HTTP 503, not JSON: "
            "'no healthy upstream')") in err
    assert "is --protocol right?" in err


async def tgi_shaped(_request: web.Request) -> web.Response:
    return web.json_response([{"generated_text": "Hello", "details": {"generated_tokens": 1}}])


def test_a_tgi_shaped_answer_is_not_an_openai_endpoint(servers, tmp_path, capsys):
    app = web.Application()
    app.router.add_post("/v1/completions", tgi_shaped)
    url = servers.serve(app)
    code, _ = run(url, write_suite(tmp_path, [GREETING]), tmp_path)
    err = capsys.readouterr().err
    assert code == 1
    assert f"error: {url}/v1/completions answered JSON that is not the OpenAI completion shape" in err


def test_the_default_protocol_is_still_tgi(servers, tmp_path, capsys):
    """A vLLM server has no TGI route: without --protocol openai the run says so and stops."""
    url = servers.serve(create_fake_vllm(VllmBehaviour(served=MODEL, words=WORDS)))
    code = main(["evaluate", "--endpoint", url, "--suite", str(write_suite(tmp_path, [GREETING])),
                 "--key", KEY])
    assert code == 1
    err = capsys.readouterr().err
    assert "did not answer like a TGI endpoint" in err
    assert "A vLLM server needs --protocol openai" in err
