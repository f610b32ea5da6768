"""Gateway overhead: the same load straight at a fast TGI fake and through the gateway.

Runs the fake upstream and the gateway in their own processes, drives both from this one,
and prints requests/s both ways, their ratio, the latency the gateway adds at p50 and p99,
and the gateway's CPU time per request (from /proc, so other load on the machine barely
moves it), for plain (/generate) and streaming (/generate_stream) requests.

    .venv/bin/python bench/gateway.py [--requests 2000] [--concurrency 32] [--baseline DIR]

`--baseline DIR` runs a second gateway from another checkout (e.g. `git worktree add
/tmp/base main`) in the same run, measured interleaved with this one (the loaded run in slices,
each target in turn), so a change is judged against its baseline under the same noise.
`--loops` runs this checkout's gateway once per event loop (uvloop, asyncio). Ratios, not
absolute numbers, are the point: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_upstream(port: int) -> None:
    from aiohttp import web

    from tests.gateway.fake_tgi import FakeBehaviour, create_fake_tgi

    web.run_app(create_fake_tgi(FakeBehaviour(reply="one two three four five six seven eight")),
                host="127.0.0.1", port=port, access_log=None, print=None)


def run_gateway(config_path: str, port: int, code_root: str, loop: str) -> None:
    """The gateway as `llmops gateway` runs it (its listener, caps and drain: server.py), on
    the event loop named."""
    sys.path.insert(0, code_root)  # this checkout, or the baseline's
    from serving.gateway.app import create_app
    from serving.gateway.config import load_config
    from serving.gateway.server import serve_until_signalled

    app = create_app(load_config(Path(config_path)))
    serving = serve_until_signalled(app, "127.0.0.1", port, 1.0)
    if loop == "uvloop":
        import uvloop
        uvloop.run(serving)
    else:
        asyncio.run(serving)


async def wait_until_up(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def drive(url: str, path: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    """Send `total` requests with `concurrency` workers; returns (requests/s, latencies)."""
    headers = {"Authorization": f"Bearer {KEY}", "X-Model": "bench"}
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 8, "do_sample": True}}
    latencies: list[float] = []
    remaining = total

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            async with session.post(url + path, json=body, headers=headers) as response:
                await response.read()
                assert response.status == 200, response.status
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


async def alternate(targets: dict[str, str], path: str, rounds: int) -> dict[str, list[float]]:
    """Latency of single requests, one to each target in turn, `rounds` times."""
    headers = {"Authorization": f"Bearer {KEY}", "X-Model": "bench"}
    body = {"inputs": "hello", "parameters": {"max_new_tokens": 8, "do_sample": True}}
    latencies: dict[str, list[float]] = {name: [] for name in targets}
    async with aiohttp.ClientSession() as session:
        for _ in range(rounds):
            for name, url in targets.items():
                started = time.perf_counter()
                async with session.post(url + path, json=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 200, response.status
                latencies[name].append(time.perf_counter() - started)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(direct: str, gateways: dict[str, tuple[str, int]], total: int, concurrency: int,
                  slices: int = 10) -> None:
    """`gateways`: name -> (url, pid); every number is taken interleaved with the others: the
    loaded run is cut into `slices`, each target getting its slice in turn, so a change in the
    machine's other load falls on all of them alike."""
    for label, path in (("plain", "/generate"), ("stream", "/generate_stream")):
        for target in (direct, *(url for url, _ in gateways.values())):  # warm the pools
            await drive(target, path, 50, 4)
        # added latency: unloaded, one request at a time, alternating request by request
        # between direct and each gateway so all of them see the same noise
        latencies = await alternate({"direct": direct, **{n: u for n, (u, _) in gateways.items()}},
                                    path, total // 4)
        targets = {"direct": (direct, None), **gateways}
        elapsed = dict.fromkeys(targets, 0.0)
        cpu = dict.fromkeys(targets, 0.0)
        loaded: dict[str, list[float]] = {name: [] for name in targets}
        per_slice = max(concurrency, total // slices)
        for _ in range(slices):
            for name, (url, pid) in targets.items():
                before = cpu_seconds(pid) if pid else 0.0
                rps, lat = await drive(url, path, per_slice, concurrency)
                elapsed[name] += per_slice / rps
                cpu[name] += (cpu_seconds(pid) - before) if pid else 0.0
                loaded[name] += lat
        sent = per_slice * slices
        direct_rps = sent / elapsed["direct"]
        direct_p50 = percentile(latencies["direct"], 50)
        for name in gateways:
            rps = sent / elapsed[name]
            lat = latencies[name]
            added = {q: (percentile(lat, q) - percentile(latencies["direct"], q)) * 1000 for q in (50, 99)}
            loaded_added = (percentile(loaded[name], 50) - percentile(loaded["direct"], 50)) * 1000
            print(f"{label:6} {name:14} direct {direct_rps:6.0f} req/s, via gateway {rps:6.0f} req/s, "
                  f"ratio {rps / direct_rps:4.2f} | unloaded p50 direct {direct_p50 * 1000:5.2f} ms, "
                  f"gateway {percentile(lat, 50) * 1000:5.2f} ms -> added p50 {added[50]:5.2f} ms, "
                  f"p99 {added[99]:5.2f} ms | at c={concurrency} added p50 {loaded_added:5.2f} ms | "
                  f"gateway CPU {cpu[name] / sent * 1e6:4.0f} us/request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--baseline", type=Path, help="another checkout to measure alongside")
    parser.add_argument("--loops", default="uvloop,asyncio",
                        help="event loops to run this checkout's gateway on, each its own process "
                        "(default: %(default)s; the baseline runs on the first)")
    args = parser.parse_args()

    from serving.gateway.auth import hash_key

    upstream_port = free_port()
    loops = args.loops.split(",")
    roots = {f"this/{loop}": (str(ROOT), loop) for loop in loops}
    if args.baseline:
        roots[f"base/{loops[0]}"] = (str(args.baseline.resolve()), loops[0])
    ports = {name: free_port() for name in roots}
    config = {"models": {"bench": {"backends": {"stable": {"url": f"http://127.0.0.1:{upstream_port}"}}}},
              "keys": [{"id": "bench", "sha256": hash_key(KEY), "models": ["*"],
                        "requestsPerMinute": 10**9, "tokensPerMinute": 10**12}],
              "cache": {"enabled": False}, "auditLog": "/dev/null"}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    context = multiprocessing.get_context("spawn")
    upstream = context.Process(target=run_upstream, args=(upstream_port,), daemon=True)
    gateways = {name: context.Process(target=run_gateway, args=(handle.name, ports[name], *where),
                                      daemon=True) for name, where in roots.items()}
    processes = [upstream, *gateways.values()]
    for process in processes:
        process.start()
    try:
        direct = f"http://127.0.0.1:{upstream_port}"
        urls = {name: (f"http://127.0.0.1:{ports[name]}", gateways[name].pid) for name in roots}

        async def run() -> None:
            await wait_until_up(direct)
            for url, _ in urls.values():
                await wait_until_up(url)
            print(f"gateway overhead, {args.requests} requests, concurrency {args.concurrency} "
                  f"(fake upstream, 8 tokens per reply; load average {os.getloadavg()[0]:.1f})")
            await measure(direct, urls, args.requests, args.concurrency)

        asyncio.run(run())
    finally:
        for process in processes:
            process.terminate()


if __name__ == "__main__":
    main()
