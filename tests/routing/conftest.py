"""The real router (vllm-router 0.1.17, the platform's pinned release) in front of model-server
simulators (bench/prefix_sim.py) on loopback: what the routing failure tests drive."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from components.router import router_args

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "bench" / "prefix_sim.py"
ROUTER = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
#: generous: the machine is shared; a deadline only bounds a hang, it never judges speed
DEADLINE_S = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, what: str, deadline_s: float = DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {deadline_s} s")


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


@dataclass
class Sim:
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _counter(self, name: str) -> int:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name + " "):
                    return int(float(line.split()[1]))
        raise AssertionError(f"the simulator exports no {name}")

    def requests_seen(self) -> int:
        return self._counter("vllm:request_success_total")

    def prefix_hits(self) -> int:
        """Prompt blocks served from this replica's prefix cache (vLLM's counter)."""
        return self._counter("vllm:prefix_cache_hits_total")

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


@dataclass
class Cluster:
    """Simulated replicas and the router in front of them, started and stopped by the test."""

    processes: list[subprocess.Popen] = field(default_factory=list)
    router_port: int = 0
    metrics_port: int = 0
    router_process: subprocess.Popen | None = None

    def sim(self, decode_ms: float = 2.0, out_tokens: int = 16, render: bool = True) -> Sim:
        """A replica; `render=False`: one without vLLM's render API (as TGI 3.3.7)."""
        port = free_port()
        process = subprocess.Popen([sys.executable, str(SIM), "serve", "--port", str(port),
                                    "--decode-ms", str(decode_ms), "--out-tokens", str(out_tokens),
                                    *([] if render else ["--no-render"])],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        sim = Sim(port, process)
        wait_until(lambda: answers(sim.url + "/health"), f"simulator on {port} answering")
        return sim

    def start_router(self, workers: list[Sim], policy: str | None = None) -> str:
        """The router with the cluster's routing flags (components/router.py), static workers;
        `policy` as the cluster renders it for an engine (components/router.py policy_of)."""
        if not Path(ROUTER).exists():
            pytest.skip("vllm-router is not installed (pyproject's dev extras pin 0.1.17)")
        self.router_port = self.router_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.router_process = subprocess.Popen(
            [ROUTER, "--host", "127.0.0.1", "--port", str(self.router_port), "--prometheus-host", "127.0.0.1",
             "--prometheus-port", str(self.metrics_port),
             *router_args(policy=policy, workers=[w.url for w in workers])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(self.router_process)
        wait_until(lambda: answers(self.router_url + "/liveness"), "the router answering")
        return self.router_url

    def stop_router(self) -> None:
        assert self.router_process is not None
        self.router_process.kill()
        self.router_process.wait(10)

    @property
    def router_url(self) -> str:
        return f"http://127.0.0.1:{self.router_port}"

    def router_counter(self, name: str, **labels: str) -> float:
        """The sum of the router's own series `name` whose labels include `labels` (0 if none)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        total = 0.0
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series.startswith(name + "{") and all(f'{k}="{v}"' in series for k, v in labels.items()):
                total += float(value)
        return total


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster()
    try:
        yield c
    finally:
        for p in c.processes:
            if p.poll() is None:
                p.kill()
                p.wait(10)


def chat(url: str, system: str, user: str = "hello", stream: bool = True,
         headers: dict[str, str] | None = None, **fields) -> tuple[int, str]:
    """One chat completion; (status, body). Streamed bodies are read to their end."""
    body = json.dumps({"model": "sim", "stream": stream, "max_tokens": 8, "messages": [
        {"role": "system", "content": system}, {"role": "user", "content": user}], **fields}).encode()
    request = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=DEADLINE_S) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def system_prompt(group: int) -> str:
    """A long shared system prompt (many 64-character blocks), one per conversation group."""
    return f"[system {group}] " + "".join(chr(97 + (group * 7 + i) % 26) for i in range(4000))
