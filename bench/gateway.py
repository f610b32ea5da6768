"""Gateway overhead: the same load straight at a fast TGI fake and through the gateway.

Runs the fake upstream and the gateway in their own processes, drives both from this one,
and prints requests/s both ways, their ratio, and the latency the gateway adds at p50 and
p99, for plain (/generate) and streaming (/generate_stream) requests.

    .venv/bin/python bench/gateway.py [--requests 2000] [--concurrency 32]

Ratios, not absolute numbers, are the point: this machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
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


def run_gateway(config_path: str, port: int) -> None:
    from aiohttp import web

    from serving.gateway.app import create_app
    from serving.gateway.config import load_config

    web.run_app(create_app(load_config(Path(config_path))), host="127.0.0.1", port=port,
                access_log=None, print=None)


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


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def measure(direct: str, gateway: str, total: int, concurrency: int) -> None:
    for label, path in (("plain", "/generate"), ("stream", "/generate_stream")):
        for target in (direct, gateway):  # warm both connection pools
            await drive(target, path, 50, 4)
        # added latency: unloaded, one request at a time, interleaved to share the noise
        direct_lat: list[float] = []
        gateway_lat: list[float] = []
        for _ in range(5):
            direct_lat += (await drive(direct, path, total // 20, 1))[1]
            gateway_lat += (await drive(gateway, path, total // 20, 1))[1]
        direct_rps, _ = await drive(direct, path, total, concurrency)
        gateway_rps, _ = await drive(gateway, path, total, concurrency)
        added = {q: (percentile(gateway_lat, q) - percentile(direct_lat, q)) * 1000 for q in (50, 99)}
        print(f"{label:6}  direct {direct_rps:7.0f} req/s  via gateway {gateway_rps:7.0f} req/s  "
              f"ratio {gateway_rps / direct_rps:4.2f}  |  unloaded latency direct "
              f"p50 {percentile(direct_lat, 50) * 1000:5.2f} ms, gateway p50 "
              f"{percentile(gateway_lat, 50) * 1000:5.2f} ms  ->  added p50 {added[50]:5.2f} ms, "
              f"p99 {added[99]:5.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    from serving.gateway.auth import hash_key

    upstream_port, gateway_port = free_port(), free_port()
    config = {"models": {"bench": {"backends": {"stable": {"url": f"http://127.0.0.1:{upstream_port}"}}}},
              "keys": [{"id": "bench", "sha256": hash_key(KEY), "models": ["*"],
                        "requestsPerMinute": 10**9, "tokensPerMinute": 10**12}],
              "cache": {"enabled": False}, "auditLog": "/dev/null"}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(config, handle)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_upstream, args=(upstream_port,), daemon=True),
                 context.Process(target=run_gateway, args=(handle.name, gateway_port), daemon=True)]
    for process in processes:
        process.start()
    try:
        direct, gateway = f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{gateway_port}"

        async def run() -> None:
            await wait_until_up(direct)
            await wait_until_up(gateway)
            print(f"gateway overhead, {args.requests} requests, concurrency {args.concurrency} "
                  "(fake upstream, 8 tokens per reply)")
            await measure(direct, gateway, args.requests, args.concurrency)

        asyncio.run(run())
    finally:
        for process in processes:
            process.terminate()


if __name__ == "__main__":
    main()
