"""A real Prometheus server for a test: loopback, a free port, a temp dir, 1 s scrapes;
started and stopped by the test (terminated, then killed if it does not exit)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.release.conftest import free_port

REQUIRE_ENV = "LLMOPS_REQUIRE_PROMTOOL"  # CI sets it: the Prometheus package must be there
SCRAPE_INTERVAL = "1s"


def prometheus_binary() -> str:
    """The prometheus binary; skip without it, unless CI requires it (then fail)."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = ("prometheus is not installed (Debian/Ubuntu: apt-get install prometheus; "
                   "or `make promtool`)")
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(message)
    return binary


def scrape_config(targets: list[tuple[str, dict[str, str]]]) -> dict:
    """One static job per target URL with its labels: the stand-in for the stack's PodMonitors
    (job llm-gateway; job tgi with the model and track labels copied from the pods)."""
    jobs = []
    for i, (url, labels) in enumerate(targets):
        host = url.removeprefix("http://").rstrip("/")
        jobs.append({"job_name": f"target-{i}", "scrape_interval": SCRAPE_INTERVAL,
                     "static_configs": [{"targets": [host], "labels": labels}],
                     "relabel_configs": [{"target_label": "job", "replacement": labels["job"]}]})
    return {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
            "scrape_configs": jobs}


@contextmanager
def running_prometheus(workdir: Path, targets: list[tuple[str, dict[str, str]]],
                       start_timeout_s: float = 30) -> Iterator[str]:
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    url = f"http://127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"prometheus did not become ready at {url}:\n"
                            + (workdir / "prometheus.log").read_text()[-2000:], pytrace=False)
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False
