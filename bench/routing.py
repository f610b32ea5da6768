"""Prefix-cache-aware routing: round robin, vllm-router cache_aware, and the platform's chain.

Starts N model-server simulators with prefix caches on loopback (bench/prefix_sim.py, a copy
of ../shared/sim/prefix_sim.py, unchanged), then, in the same run and on the same workload
(multi-turn chats over a few shared system prompts), measures three targets, each on freshly
started servers so every target begins with cold caches:

  round_robin   vllm-router --policy round_robin: what a Kubernetes Service's spreading does
  cache_aware   vllm-router --policy cache_aware alone
  chain         the platform: gateway (auth, budgets, audit) -> vllm-router cache_aware ->
                servers, with the router flags the cluster renders (components/router.py)

Prints one JSON line per target (TTFT p50/p95, requests/s, prefix-cache hit rate from the
servers' own vllm:prefix_cache_* counters) per round, then per target the median over
`--rounds` interleaved rounds (the order reversed every other round), then the ratios.

    .venv/bin/python bench/routing.py [--servers 4] [--seconds 20] [--concurrency 16] [--rounds 3]

Needs the vllm-router package (pyproject's dev extras). The numbers are from whatever
machine runs it: on a busy 2-core machine every process here shares two cores, so compare
the targets with each other (ratios), not with a GPU deployment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.router import router_args  # noqa: E402  (the flags the cluster deploys)

SIM = Path(__file__).with_name("prefix_sim.py")
KEY = "sk-bench-routing-0123456789"
MODEL = "sim"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout_s:.0f} s")


def router_binary() -> str:
    found = shutil.which("vllm-router") or str(Path(sys.executable).with_name("vllm-router"))
    if not Path(found).exists():
        raise SystemExit("vllm-router is not installed: pip install -e '.[dev]' (vllm-router==0.1.17)")
    return found


@contextmanager
def processes(commands: list[list[str]], env: dict[str, str] | None = None):
    started = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env) for c in commands]
    try:
        yield started
    finally:
        for p in started:
            p.terminate()
        for p in started:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def sim_commands(ports: list[int], cache_blocks: int) -> list[list[str]]:
    return [[sys.executable, str(SIM), "serve", "--port", str(p), "--model", MODEL,
             "--cache-blocks", str(cache_blocks)] for p in ports]


def router_command(port: int, workers: list[str], policy: str) -> list[str]:
    """The deployed flags (components/router.py), with static workers instead of discovery."""
    return [router_binary(), "--host", "127.0.0.1", "--port", str(port),
            "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()),
            *router_args(policy=policy, workers=workers)]


def gateway_files(backend: str, directory: str) -> Path:
    from serving.gateway.auth import hash_key

    keys = Path(directory, "keys.yaml")
    keys.write_text(yaml.safe_dump({"keys": [{"id": "bench", "sha256": hash_key(KEY), "models": ["*"],
                                              "requestsPerMinute": 10**9, "tokensPerMinute": 10**12}]}))
    config = Path(directory, "gateway.yaml")
    config.write_text(yaml.safe_dump({
        "models": {MODEL: {"engine": "vllm", "backends": {"stable": {"url": backend}}}},
        "keysFile": "keys.yaml", "cache": {"enabled": False}, "auditLog": os.devnull}))
    return config


def gateway_command(config: Path, port: int) -> list[str]:
    """The gateway as its pods run it (`llmops gateway`, serving/Dockerfile's CMD)."""
    return [sys.executable, "-m", "llmops.cli", "gateway", "--config", str(config),
            "--host", "127.0.0.1", "--port", str(port)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hit_rate(ports: list[int]) -> float:
    hits = queries = 0.0
    for p in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name == "vllm:prefix_cache_hits_total":
                    hits += float(value)
                elif name == "vllm:prefix_cache_queries_total":
                    queries += float(value)
    return hits / queries if queries else 0.0


def load(url: str, args: argparse.Namespace, key: str = "") -> dict:
    out = subprocess.run([sys.executable, str(SIM), "load", "--url", url, "--model", MODEL,
                          "--groups", str(args.groups), "--concurrency", str(args.concurrency),
                          "--seconds", str(args.seconds), *(["--key", key] if key else [])],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(target: str, args: argparse.Namespace) -> dict:
    """One target on fresh servers (cold caches), so no target inherits another's warm cache."""
    ports = [free_port() for _ in range(args.servers)]
    workers = [f"http://127.0.0.1:{p}" for p in ports]
    router_port, gateway_port = free_port(), free_port()
    policy = "round_robin" if target == "round_robin" else "cache_aware"
    commands = [*sim_commands(ports, args.cache_blocks), router_command(router_port, workers, policy)]
    with tempfile.TemporaryDirectory() as directory:
        url = f"http://127.0.0.1:{router_port}"
        if target == "chain":
            commands.append(gateway_command(gateway_files(url, directory), gateway_port))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with processes(commands, env=env) as started:
            for w in workers:
                wait_http(w + "/health")
            wait_http(url + "/health")
            if target == "chain":
                url = f"http://127.0.0.1:{gateway_port}"
                wait_http(url + "/health")
            # what the routing layer itself costs: CPU of the router (and gateway) per request
            layer = {"router": started[args.servers].pid,
                     **({"gateway": started[args.servers + 1].pid} if target == "chain" else {})}
            before = {name: cpu_seconds(pid) for name, pid in layer.items()}
            result = load(url, args, key=KEY if target == "chain" else "")
            result["prefix_hit_rate"] = round(hit_rate(ports), 4)
            for name, pid in layer.items():
                used = cpu_seconds(pid) - before[name]
                result[f"{name}_cpu_ms_per_request"] = 1000 * used / max(1, result["requests"])
    return {"target": target, **{k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}}


def median_of(rounds: list[dict]) -> dict:
    """A target's summary: the median over rounds of each number (the machine's noise moves
    single rounds; the median of interleaved rounds is what the ratios compare)."""
    keys = ("rps", "ttft_p50_ms", "ttft_p95_ms", "prefix_hit_rate")
    summary = {k: round(statistics.median(r[k] for r in rounds), 3 if k == "prefix_hit_rate" else 2)
               for k in keys}
    return {"target": rounds[0]["target"], "rounds": len(rounds),
            "requests": sum(r["requests"] for r in rounds), "errors": sum(r["errors"] for r in rounds),
            **summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--cache-blocks", type=int, default=600)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="each target this many times, the "
                        "order reversed every other round so no target always runs first or last")
    args = parser.parse_args()
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
                      "servers": args.servers, "cache_blocks": args.cache_blocks, "groups": args.groups,
                      "concurrency": args.concurrency, "seconds": args.seconds, "rounds": args.rounds}),
          flush=True)
    targets = ["round_robin", "cache_aware", "chain"]
    runs: dict[str, list[dict]] = {t: [] for t in targets}
    for number in range(args.rounds):
        for target in (targets if number % 2 == 0 else targets[::-1]):
            runs[target].append(measure(target, args))
            print(json.dumps({"round": number + 1, **runs[target][-1]}), flush=True)
    results = {t: median_of(r) for t, r in runs.items()}
    for target in targets:
        print(json.dumps(results[target]), flush=True)
    rr, ca, chain = results["round_robin"], results["cache_aware"], results["chain"]
    ratios = {
        "chain_over_cache_aware_ttft_p50": round(chain["ttft_p50_ms"] / ca["ttft_p50_ms"], 3),
        "chain_over_cache_aware_ttft_p95": round(chain["ttft_p95_ms"] / ca["ttft_p95_ms"], 3),
        "round_robin_over_cache_aware_ttft_p50": round(rr["ttft_p50_ms"] / ca["ttft_p50_ms"], 3),
        "chain_over_round_robin_rps": round(chain["rps"] / rr["rps"], 3),
        "cache_aware_over_round_robin_rps": round(ca["rps"] / rr["rps"], 3)}
    done = ratios["chain_over_cache_aware_ttft_p50"] <= 1.2 and chain["prefix_hit_rate"] >= 0.85
    print(json.dumps({"ratios": ratios, "chain_within_1.2x_and_hit_rate_85": done,
                      "load_average_1m": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
