"""`llmops canary analyze` against a real Prometheus scraping the real gateway and two fake
TGI servers (stable and canary), after real traffic: a canary that errors or is slow is
rolled back, a healthy one is promoted. Tolerances come from a stack file's llmops:release."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from llmops.cli import main
from serving.gateway.app import create_app
from serving.release.errors import ReleaseError
from serving.release.prometheus import Prometheus
from tests.gateway.fake_tgi import FakeBehaviour
from tests.release.conftest import KEY, gateway_config
from tests.release.fakes import fake_model
from tests.release.prometheus_server import SharedPrometheus, running_prometheus, shared_prometheus
from tests.release.servers import Servers

pytestmark = pytest.mark.long_pole  # a real Prometheus per module: start it early

ROOT = Path(__file__).resolve().parents[2]
MODEL = "llama-3-8b"
REQUESTS = 160
BASE_DELAY_S = 0.1  # every fake model takes this long: both tracks' p95 sit in one bucket
#: what Prometheus scrapes, with the labels the stack's PodMonitors give each target
TARGETS = {"gateway": {"job": "llm-gateway"},
           "stable": {"job": "tgi", "model": MODEL, "track": "stable"},
           "canary": {"job": "tgi", "model": MODEL, "track": "canary"}}


def stack_dir(tmp_path: Path) -> Path:
    """The staging stack (it has a canary for MODEL) with tolerances for a short test run."""
    document = yaml.safe_load((ROOT / "stacks" / "Pulumi.staging.yaml").read_text())
    document["config"]["llmops:release"] = {"canary": {"window": "2m", "minRequests": 40}}
    target = tmp_path / "stacks"
    target.mkdir()
    (target / "Pulumi.staging.yaml").write_text(yaml.safe_dump(document))
    return target


def drive(gateway: str, count: int) -> list[int]:
    def one(i: int) -> int:
        response = requests.post(f"{gateway}/generate", timeout=30,
                                 headers={"Authorization": f"Bearer {KEY}", "X-Model": MODEL},
                                 json={"inputs": f"request {i}", "parameters": {"max_new_tokens": 8}})
        return response.status_code
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(count)))


def wait_for_scrape(prometheus: str, expected: int, timeout_s: float = 30) -> None:
    """Until Prometheus has scraped the gateway after the last request (its counter total)."""
    client, deadline = Prometheus(prometheus), time.monotonic() + timeout_s
    query = f'sum(llm_requests_total{{model="{MODEL}"}})'
    while time.monotonic() < deadline:
        samples = client.query(query)
        if samples and samples[0].value == expected:
            return
        time.sleep(0.25)
    pytest.fail(f"Prometheus did not see {expected} requests within {timeout_s} s", pytrace=False)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Iterator[SharedPrometheus]:
    """One Prometheus for the module's analyses: each serves the same three targets in turn,
    on an emptied TSDB (tests/release/prometheus_server.py says why)."""
    with shared_prometheus(tmp_path_factory.mktemp("prometheus"), TARGETS) as shared:
        yield shared


def analyze(prometheus: SharedPrometheus, tmp_path: Path, canary: FakeBehaviour,
            canary_delay_s: float, breaker_threshold: int) -> tuple[int, dict]:
    with prometheus.serve() as ports:
        servers = Servers()
        try:
            stable_url = servers.serve(fake_model(FakeBehaviour(name="stable", reply="fine answer here"),
                                                  extra_delay_s=BASE_DELAY_S), ports["stable"])
            canary_url = servers.serve(fake_model(canary, extra_delay_s=canary_delay_s), ports["canary"])
            servers.serve(create_app(gateway_config(MODEL, stable_url, canary_url, weight=50,
                                                    breaker_threshold=breaker_threshold, cache=False)),
                          ports["gateway"])
            gateway = f"http://127.0.0.1:{ports['gateway']}"
            # first request per track creates the series; let Prometheus see them before the
            # load, so increase() over the window counts the load from a first sample
            warm = drive(gateway, 8)
            wait_for_scrape(prometheus.url, len(warm))
            time.sleep(1.5)
            sent = len(warm) + len(drive(gateway, REQUESTS))
            wait_for_scrape(prometheus.url, sent)
            report = tmp_path / "analysis.json"
            code = main(["canary", "analyze", "--prometheus", prometheus.url, "--model", MODEL,
                         "--stack", "staging", "--stacks-dir", str(stack_dir(tmp_path)),
                         "--json", str(report)])
        finally:
            servers.close()  # before the ports are held again
    return code, json.loads(report.read_text())


def test_a_canary_that_errors_is_rolled_back(prometheus, tmp_path, capsys):
    code, report = analyze(prometheus, tmp_path, FakeBehaviour(name="canary", fail=True),
                              BASE_DELAY_S, breaker_threshold=100_000)
    out = capsys.readouterr().out
    assert code == 4, out
    assert report["decision"] == "rollback"
    canary, stable = report["tracks"]["canary"], report["tracks"]["stable"]
    assert canary["requests"] >= 40 and stable["requests"] >= 40
    assert canary["error_rate"] > 0.9 and stable["error_rate"] == 0
    assert "canary error rate" in report["reason"]
    assert "decision: ROLLBACK" in out


def test_a_canary_cut_off_by_the_gateway_breaker_is_rolled_back(prometheus, tmp_path, capsys):
    code, report = analyze(prometheus, tmp_path, FakeBehaviour(name="canary", fail=True),
                              BASE_DELAY_S, breaker_threshold=5)
    assert code == 4, capsys.readouterr().out
    assert report["tracks"]["canary"]["breaker_tripped"] is True
    assert "circuit breaker for the canary opened" in report["reason"]


def test_a_slow_canary_is_rolled_back_on_latency_and_time_per_token(prometheus, tmp_path, capsys):
    code, report = analyze(prometheus, tmp_path, FakeBehaviour(name="canary", reply="fine answer here"),
                              0.6, breaker_threshold=100_000)
    assert code == 4, capsys.readouterr().out
    failed = {c["name"] for c in report["checks"] if c["status"] == "fail"}
    assert failed == {"latency_p95", "time_per_token"}
    canary, stable = report["tracks"]["canary"], report["tracks"]["stable"]
    assert canary["latency_p95_s"] > 2 * stable["latency_p95_s"]
    assert canary["time_per_token_s"] > 2 * stable["time_per_token_s"]


def test_a_healthy_canary_is_promoted(prometheus, tmp_path, capsys):
    code, report = analyze(prometheus, tmp_path, FakeBehaviour(name="canary", reply="fine answer here"),
                              BASE_DELAY_S, breaker_threshold=100_000)
    out = capsys.readouterr().out
    assert code == 0, out
    assert report["decision"] == "promote"
    assert [c["status"] for c in report["checks"]] == ["pass"] * 4
    assert "decision: PROMOTE" in out


def test_prometheus_problems_are_clear_errors(servers, tmp_path, capsys):
    model = servers.serve(fake_model(FakeBehaviour()))
    with running_prometheus(tmp_path / "prometheus", [(model, {"job": "tgi"})]) as prometheus:
        with pytest.raises(ReleaseError, match=r"rejected the query \(400 bad_data: .*\): sum\(") as caught:
            Prometheus(prometheus).query("sum(")
        assert str(caught.value).startswith(f"Prometheus at {prometheus} rejected the query")
    for url, message in [
        (prometheus, f"error: cannot reach Prometheus at {prometheus}: [Errno 111] Connection refused"),
        (model, f"error: {model} did not answer like Prometheus's HTTP API (HTTP 404, not JSON: "),
        ("prometheus:9090", "error: --prometheus must be an http(s) URL like http://prometheus:9090 "
                            "(got 'prometheus:9090')"),
    ]:
        assert main(["canary", "analyze", "--prometheus", url, "--model", MODEL]) == 1
        assert capsys.readouterr().err.startswith(message)
    assert main(["canary", "analyze", "--prometheus", model, "--model", MODEL, "--window", "30 min"]) == 1
    assert capsys.readouterr().err == ("error: --window must be a Prometheus duration: a whole number of "
                                       "s, m, h or d such as 30m or 2h (got '30 min')\n")
