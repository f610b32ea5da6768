"""A real Prometheus server for tests: loopback, a free port, a temp dir, 1 s scrapes;
started and stopped by the test or a module (terminated, then killed if it does not exit).

Prometheus starts scraping a target only at its scrape manager's first reload, 5 s after it
starts or its targets change (Prometheus v2.42 scrape/manager.go `reloader`: a fixed 5 s
ticker; later releases made it --scrape.discovery-reload-interval). `SharedPrometheus` pays
that once per module: its targets are fixed loopback ports that each test serves in turn,
and each test starts from an empty TSDB (the admin API's delete_series)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
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
                       start_timeout_s: float = 30, admin: bool = False) -> Iterator[str]:
    binary = prometheus_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    url = f"http://127.0.0.1:{free_port()}"
    log = (workdir / "prometheus.log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
         f"--web.listen-address={url.removeprefix('http://')}", "--log.level=warn",
         *(["--web.enable-admin-api"] if admin else [])],
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


class SharedPrometheus:
    """One Prometheus scraping fixed loopback ports, one per named target (`labels`), which
    the tests of a module serve in turn. Between tests the ports stay held, so no other
    server on the machine is handed one; `serve` gives a test the ports and an empty TSDB."""

    def __init__(self, url: str, labels: dict[str, dict[str, str]], holders: dict[str, socket.socket]):
        self.url, self.labels, self._holders = url, labels, holders

    @contextmanager
    def serve(self) -> Iterator[dict[str, int]]:
        """The target ports, free to bind, with every sample scraped so far deleted; held
        again afterwards (the test's servers must be closed by then)."""
        self.delete_everything()
        ports = {name: holder.getsockname()[1] for name, holder in self._holders.items()}
        for holder in self._holders.values():
            holder.close()
        try:
            yield ports
        finally:
            self._holders = {name: _hold(port) for name, port in ports.items()}

    def delete_everything(self) -> None:
        """Every series' samples up to now (the admin API; without `end` the deletion would
        also hide every sample scraped later)."""
        form = urllib.parse.urlencode({"match[]": '{__name__=~".+"}', "end": f"{time.time():.3f}"})
        request = urllib.request.Request(f"{self.url}/api/v1/admin/tsdb/delete_series",
                                         data=form.encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.read()


@contextmanager
def shared_prometheus(workdir: Path, labels: dict[str, dict[str, str]]) -> Iterator[SharedPrometheus]:
    """A `SharedPrometheus` for the targets named in `labels` (name -> the target's labels)."""
    shared = SharedPrometheus("", labels, {name: _hold(0) for name in labels})
    targets = [(f"http://127.0.0.1:{shared._holders[name].getsockname()[1]}", target)
               for name, target in labels.items()]
    try:
        with running_prometheus(workdir, targets, admin=True) as shared.url:
            yield shared
    finally:
        for holder in shared._holders.values():
            holder.close()


def _hold(port: int) -> socket.socket:
    """A socket listening on loopback `port` (0: a free one) that never accepts: scrapes of it
    time out, and no other bind gets the port, SO_REUSEADDR or not. It binds with
    SO_REUSEADDR itself, as the test servers do, to take the port back while their closed
    connections linger in TIME_WAIT."""
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    return holder
