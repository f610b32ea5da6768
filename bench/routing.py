"""Prefix-cache-aware routing: round robin, vllm-router cache_aware, and the platform's chain.

Starts N model-server simulators with prefix caches on loopback (bench/prefix_sim.py, a copy
of ../shared/sim/prefix_sim.py, unchanged in behaviour), then, in the same run and on the same
workload (multi-turn chats over a few shared system prompts), measures these targets, each on
freshly started servers so every target begins with cold caches:

  round_robin   vllm-router --policy round_robin: what a Kubernetes Service's spreading does
  cache_aware   vllm-router --policy cache_aware alone
  chain         the platform: gateway (auth, budgets, audit) -> vllm-router cache_aware ->
                servers, with the router flags the cluster renders (components/router.py)
  paired        one router and one gateway on the same servers, loaded at the same time by two
                clients of half the concurrency each (the same system prompts, each with its
                own half of the conversations), one straight to the router and one through
                the gateway: both halves see the same placements, caches and machine load,
                so their ratio is what the gateway hop itself adds
  no_render     (opt-in) cache_aware in front of servers without vLLM's render API, as TGI
                3.3.7 serves none: what cache_aware would do for a TGI model (load alone)
  tgi_chain     (opt-in) what the platform deploys for a TGI model: gateway with
                routerAffinity prompt-prefix -> vllm-router consistent_hash -> servers without
                the render API (serving/gateway/affinity.py, components/router.py policy_of)

vllm-router 0.1.17's cache_aware asks every worker's render API for the prompt's token ids
(src/backend/preprocess.rs `prepare_http_token_inputs`) and places a prompt no worker holds on
the least-loaded one. Where the first requests of each system prompt land decides how evenly the
servers are used for the rest of the run, so single runs of cache_aware (and of the chain, which
routes the same way) vary a lot: each target line carries `max_server_share`, the share of
requests the busiest server answered (0.25 is even for 4 servers).

Prints one JSON line per target (TTFT p50/p95, requests/s, prefix-cache hit rate from the
servers' own vllm:prefix_cache_* counters) per round, then per target the median over
`--rounds` interleaved rounds (the order reversed every other round), then the ratios: of the
medians, and the median of each round's own ratio.

    .venv/bin/python bench/routing.py [--servers 4] [--seconds 20] [--concurrency 16] [--rounds 3]
                                      [--targets round_robin,cache_aware,chain,paired]

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


def sim_commands(ports: list[int], cache_blocks: int, render: bool = True) -> list[list[str]]:
    return [[sys.executable, str(SIM), "serve", "--port", str(p), "--model", MODEL,
             "--cache-blocks", str(cache_blocks), *([] if render else ["--no-render"])] for p in ports]


def router_command(port: int, workers: list[str], policy: str) -> list[str]:
    """The deployed flags (components/router.py), with static workers instead of discovery."""
    return [router_binary(), "--host", "127.0.0.1", "--port", str(port),
            "--prometheus-host", "127.0.0.1", "--prometheus-port", str(free_port()),
            *router_args(policy=policy, workers=workers)]


def gateway_files(backend: str, directory: str, affinity: bool = False) -> Path:
    from serving.gateway.auth import hash_key

    keys = Path(directory, "keys.yaml")
    keys.write_text(yaml.safe_dump({"keys": [{"id": "bench", "sha256": hash_key(KEY), "models": ["*"],
                                              "requestsPerMinute": 10**9, "tokensPerMinute": 10**12}]}))
    config = Path(directory, "gateway.yaml")
    config.write_text(yaml.safe_dump({
        "models": {MODEL: {"engine": "vllm", "backends": {"stable": {"url": backend, **(
            {"router": backend, "routerAffinity": "prompt-prefix"} if affinity else {})}}}},
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


def server_counters(ports: list[int]) -> dict[str, float]:
    """The servers' prefix-cache hit rate and the busiest server's share of the requests."""
    totals, served = {"hits": 0.0, "queries": 0.0}, []
    for p in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{p}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                name, _, value = line.partition(" ")
                if name == "vllm:prefix_cache_hits_total":
                    totals["hits"] += float(value)
                elif name == "vllm:prefix_cache_queries_total":
                    totals["queries"] += float(value)
                elif name == "vllm:request_success_total":
                    served.append(float(value))
    return {"prefix_hit_rate": round(totals["hits"] / totals["queries"], 4) if totals["queries"] else 0.0,
            "max_server_share": round(max(served) / sum(served), 3) if sum(served) else 0.0}


def load_command(url: str, args: argparse.Namespace, concurrency: int, key: str = "",
                 extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, str(SIM), "load", "--url", url, "--model", MODEL, "--groups", str(args.groups),
            "--concurrency", str(concurrency), "--seconds", str(args.seconds),
            *(["--key", key] if key else []), *extra]


def half(client_seed: int) -> tuple[str, ...]:
    """One half of the paired load: the same system prompts (--seed), its own 100 of the
    workload's 200 conversations and its own user turns (--client-seed), so the halves never
    replay each other's requests."""
    return ("--conversations", "100", "--client-seed", str(client_seed))


def loads(commands: list[list[str]]) -> list[dict]:
    """Run load generators at the same time; their results in order."""
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for c in commands]
    results = []
    try:
        for p in running:
            out, err = p.communicate()
            if p.returncode:
                raise RuntimeError(f"the load generator failed: {err.strip()[-500:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:  # interrupted, or one failed: none outlives the run
        for p in running:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def measure(target: str, args: argparse.Namespace) -> dict:
    """One target on fresh servers (cold caches), so no target inherits another's warm cache."""
    ports = [free_port() for _ in range(args.servers)]
    workers = [f"http://127.0.0.1:{p}" for p in ports]
    router_port, gateway_port = free_port(), free_port()
    policy = {"round_robin": "round_robin", "tgi_chain": "consistent_hash"}.get(target, "cache_aware")
    gated = target in ("chain", "paired", "tgi_chain")
    commands = [*sim_commands(ports, args.cache_blocks, render=target not in ("no_render", "tgi_chain")),
                router_command(router_port, workers, policy)]
    with tempfile.TemporaryDirectory() as directory:
        router_url, gateway_url = f"http://127.0.0.1:{router_port}", f"http://127.0.0.1:{gateway_port}"
        if gated:
            config = gateway_files(router_url, directory, affinity=target == "tgi_chain")
            commands.append(gateway_command(config, gateway_port))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with processes(commands, env=env) as started:
            for w in workers:
                wait_http(w + "/health")
            wait_http(router_url + "/health")
            if gated:
                wait_http(gateway_url + "/health")
            # what the routing layer itself costs: CPU of the router (and gateway) per request
            layer = {"router": started[args.servers].pid,
                     **({"gateway": started[args.servers + 1].pid} if gated else {})}
            before = {name: cpu_seconds(pid) for name, pid in layer.items()}
            if target == "paired":  # half the clients straight to the router, half through the gateway
                clients = max(1, args.concurrency // 2)
                direct, chained = loads([load_command(router_url, args, clients, extra=half(1)),
                                         load_command(gateway_url, args, clients, key=KEY, extra=half(2))])
                result = {**chained, "requests": direct["requests"] + chained["requests"],
                          "errors": direct["errors"] + chained["errors"],
                          "rps": direct["rps"] + chained["rps"],
                          **{f"direct_{k}": v for k, v in direct.items() if k.startswith("ttft")},
                          "chain_requests": chained["requests"], "direct_requests": direct["requests"]}
                result["chain_over_direct_ttft_p50"] = result["ttft_p50_ms"] / result["direct_ttft_p50_ms"]
            else:
                url = gateway_url if gated else router_url
                result = loads([load_command(url, args, args.concurrency, key=KEY if gated else "")])[0]
            result.update(server_counters(ports))
            for name, pid in layer.items():
                used = cpu_seconds(pid) - before[name]
                served = result["requests"]
                if name == "gateway":  # in the paired target it served only its half
                    served = result.get("chain_requests", served)
                result[f"{name}_cpu_ms_per_request"] = 1000 * used / max(1, served)
    return {"target": target, **{k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}}


def median_of(rounds: list[dict]) -> dict:
    """A target's summary: the median over rounds of each number (the machine's noise moves
    single rounds; the median of interleaved rounds is what the ratios compare)."""
    keys = [k for k in ("rps", "ttft_p50_ms", "ttft_p95_ms", "prefix_hit_rate", "max_server_share",
                        "direct_ttft_p50_ms", "direct_ttft_p95_ms", "chain_over_direct_ttft_p50")
            if k in rounds[0]]
    summary = {k: round(statistics.median(r[k] for r in rounds), 3) for k in keys}
    return {"target": rounds[0]["target"], "rounds": len(rounds),
            "requests": sum(r["requests"] for r in rounds), "errors": sum(r["errors"] for r in rounds),
            **summary}


def per_round_ratio(runs: dict[str, list[dict]], over: str, under: str) -> float | None:
    """The median of each round's own ratio of TTFT p50 (two targets measured minutes apart
    in the same round share the machine's load more closely than the medians of all rounds)."""
    if over not in runs or under not in runs:
        return None
    return round(statistics.median(a["ttft_p50_ms"] / b["ttft_p50_ms"]
                                   for a, b in zip(runs[over], runs[under], strict=True)), 3)


TARGETS = ("round_robin", "cache_aware", "chain", "paired", "no_render", "tgi_chain")


def targets_of(text: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = sorted(set(chosen) - set(TARGETS))
    if unknown or not chosen:
        raise SystemExit(f"--targets {text!r}: unknown {', '.join(unknown) or '(none given)'}; "
                         f"allowed: {', '.join(TARGETS)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--cache-blocks", type=int, default=600)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="each target this many times, the "
                        "order reversed every other round so no target always runs first or last")
    parser.add_argument("--targets", default="round_robin,cache_aware,chain,paired",
                        help=f"comma-separated, from: {', '.join(TARGETS)}")
    args = parser.parse_args()
    targets = targets_of(args.targets)
    print(json.dumps({"machine": {"cpus": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2)},
                      "servers": args.servers, "cache_blocks": args.cache_blocks, "groups": args.groups,
                      "concurrency": args.concurrency, "seconds": args.seconds, "rounds": args.rounds,
                      "targets": targets}), flush=True)
    runs: dict[str, list[dict]] = {t: [] for t in targets}
    for number in range(args.rounds):
        for target in (targets if number % 2 == 0 else targets[::-1]):
            runs[target].append(measure(target, args))
            print(json.dumps({"round": number + 1, **runs[target][-1],
                              "load_average_1m": round(os.getloadavg()[0], 2)}), flush=True)
    results = {t: median_of(r) for t, r in runs.items()}
    for target in targets:
        print(json.dumps(results[target]), flush=True)
    ratios: dict[str, float | None] = {}
    if {"chain", "cache_aware"} <= results.keys():
        chain, ca = results["chain"], results["cache_aware"]
        ratios |= {"chain_over_cache_aware_ttft_p50": round(chain["ttft_p50_ms"] / ca["ttft_p50_ms"], 3),
                   "chain_over_cache_aware_ttft_p50_per_round": per_round_ratio(runs, "chain", "cache_aware"),
                   "chain_over_cache_aware_ttft_p95": round(chain["ttft_p95_ms"] / ca["ttft_p95_ms"], 3)}
    if {"round_robin", "cache_aware"} <= results.keys():
        rr, ca = results["round_robin"], results["cache_aware"]
        ratios |= {"round_robin_over_cache_aware_ttft_p50": round(rr["ttft_p50_ms"] / ca["ttft_p50_ms"], 3),
                   "cache_aware_over_round_robin_rps": round(ca["rps"] / rr["rps"], 3)}
    if {"tgi_chain", "no_render"} <= results.keys():
        tgi, only = results["tgi_chain"], results["no_render"]
        ratios |= {"tgi_chain_over_no_render_ttft_p50": round(tgi["ttft_p50_ms"] / only["ttft_p50_ms"], 3),
                   "tgi_chain_over_no_render_ttft_p95": round(tgi["ttft_p95_ms"] / only["ttft_p95_ms"], 3)}
    if "paired" in results:
        ratios["paired_chain_over_direct_ttft_p50"] = results["paired"]["chain_over_direct_ttft_p50"]
    verdict = {}
    if "chain_over_cache_aware_ttft_p50" in ratios:
        verdict["chain_within_1.2x_and_hit_rate_85"] = (ratios["chain_over_cache_aware_ttft_p50"] <= 1.2
                                                        and results["chain"]["prefix_hit_rate"] >= 0.85)
    if "paired" in results:
        verdict["paired_within_1.2x_and_hit_rate_85"] = (ratios["paired_chain_over_direct_ttft_p50"] <= 1.2
                                                         and results["paired"]["prefix_hit_rate"] >= 0.85)
    print(json.dumps({"ratios": ratios, **verdict, "load_average_1m": round(os.getloadavg()[0], 2)}),
          flush=True)


if __name__ == "__main__":
    main()
