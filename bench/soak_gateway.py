"""Soak the gateway: minutes of good traffic with clients that leave and clients that send
garbage mixed in, against `llmops gateway` as it runs in the pod (a subprocess) in front of a
healthy TGI fake. Not part of `make test`.

    .venv/bin/python bench/soak_gateway.py [--seconds 180] [--concurrency 16]

Reports every 15 s the gateway's RSS, open file descriptors and open connections, and at the
end: requests by kind and status, 5xx answers (the model server is healthy, so every one is
the gateway's), tracebacks and ERROR lines in the gateway's log, and its 5xx counter.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gzip
import json
import multiprocessing
import os
import random
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.gateway import free_port, run_upstream, wait_until_up  # noqa: E402

KEY = "sk-soak-0123456789"
BODY = json.dumps({"inputs": "hello", "parameters": {"max_new_tokens": 8, "do_sample": True}}).encode()


def quiet_upstream(port: int) -> None:
    """The fake model server, without its own log lines about clients (the gateway) leaving."""
    import logging

    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    run_upstream(port)


def sample(pid: int) -> tuple[float, int]:
    """(RSS in MB, open file descriptors) of a process."""
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))


class Soak:
    def __init__(self, url: str, seconds: float):
        self.url, self.deadline = url, time.monotonic() + seconds
        host, port = url.removeprefix("http://").split(":")
        self.address = (host, int(port))
        self.counts: collections.Counter[tuple[str, int]] = collections.Counter()
        self.server_errors: list[str] = []

    def running(self) -> bool:
        return time.monotonic() < self.deadline

    async def good(self, session: aiohttp.ClientSession, rng: random.Random) -> None:
        headers = {"Authorization": f"Bearer {KEY}", "X-Model": "m"}
        while self.running():
            kind = rng.choice(["/generate", "/generate_stream", "/v1/chat/completions"])
            body = (json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                                "max_tokens": 8, "stream": rng.random() < 0.5}).encode()
                    if kind.startswith("/v1") else BODY)
            try:
                async with session.post(self.url + kind, data=body, headers=headers) as response:
                    await response.read()
                    self.count(f"good {kind}", response.status)
            except aiohttp.ClientError as exc:
                self.count(f"good {kind} ({type(exc).__name__})", 0)

    async def leaver(self, rng: random.Random) -> None:
        """Streams dropped mid-way, bodies cut short, resets."""
        while self.running():
            _, writer = await asyncio.open_connection(*self.address)
            body = BODY if rng.random() < 0.5 else BODY[: rng.randrange(len(BODY))]
            expect = b"Expect: 100-continue\r\n" if rng.random() < 0.25 else b""
            writer.write(b"POST /generate_stream HTTP/1.1\r\nHost: soak\r\nX-Model: m\r\n" + expect
                         + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(BODY)}\r\n\r\n".encode()
                         + body)
            await asyncio.sleep(rng.random() * 0.05)
            if rng.random() < 0.5:
                writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                           struct.pack("ii", 1, 0))
            writer.close()
            self.count("leaver", 0)
            await asyncio.sleep(0.01)

    async def bad(self, rng: random.Random) -> None:
        """Garbage a careless or hostile client sends; every answer must be a 4xx."""
        garbage = [
            b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer \xff\xfe\r\n"
            b"Content-Length: 2\r\n\r\n{}",
            b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer " + KEY.encode()
            + b"\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY),
            b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer " + KEY.encode()
            + b"\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(gzip.compress(BODY)), gzip.compress(BODY)),
            b"POST /generate HTTP/1.1\r\nHost: s\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
            b"POST /generate HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer "
            + KEY.encode() + b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
            b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer " + KEY.encode()
            + b"\r\nX-Model: m\r\nContent-Length: 9\r\n\r\n{not json",
            b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer wrong\r\nExpect: 100-continue"
            b"\r\nContent-Length: 10\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(rng.randrange(256) for _ in range(40)),
            *(b"POST /generate HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer " + KEY.encode()
              + b"\r\nContent-Encoding: %s\r\nContent-Length: 4\r\n\r\n\x28\xb5\x2f\xfd" % coding
              for coding in (b"br", b"zstd")),
        ]
        while self.running():
            data = rng.choice(garbage)
            try:
                reader, writer = await asyncio.open_connection(*self.address)
                writer.write(data)
                head = await asyncio.wait_for(reader.readline(), 10)
                status = int(head.split()[1]) if head.startswith(b"HTTP/") else 0
                self.count("bad", status)
                writer.close()
            except (OSError, TimeoutError, ValueError, IndexError):
                self.count("bad (connection closed)", 0)
            await asyncio.sleep(0.02)

    async def idler(self) -> None:
        """Connections that never finish their headers (closed by the gateway's idle timeout)."""
        while self.running():
            try:
                reader, writer = await asyncio.open_connection(*self.address)
                writer.write(b"POST /generate HTTP/1.1\r\nHost: s\r\nX-Partial")
                await asyncio.wait_for(reader.read(), 30)
                writer.close()
                self.count("idler closed by gateway", 0)
            except (OSError, TimeoutError):
                self.count("idler (error)", 0)

    def count(self, kind: str, status: int) -> None:
        self.counts[(kind, status)] += 1


async def soak(url: str, pid: int, seconds: float, concurrency: int) -> Soak:
    run = Soak(url, seconds)
    samples: list[tuple[float, float, int, str]] = []

    async def sampler() -> None:
        started = time.monotonic()
        async with aiohttp.ClientSession() as session:
            while run.running():
                async with session.get(url + "/metrics") as response:
                    text = await response.text()
                connections = re.search(r"^llm_gateway_open_connections (\S+)", text, re.M)
                rss, fds = sample(pid)
                samples.append((time.monotonic() - started, rss, fds,
                                connections.group(1) if connections else "?"))
                print(f"  t={samples[-1][0]:5.0f} s  RSS {rss:6.1f} MB  fds {fds:4d}  "
                      f"open connections {samples[-1][3]}", flush=True)
                await asyncio.sleep(15)

    rngs = [random.Random(i) for i in range(concurrency + 8)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        await asyncio.gather(sampler(), *(run.good(session, rngs[i]) for i in range(concurrency)),
                             *(run.leaver(rngs[concurrency + i]) for i in range(3)),
                             *(run.bad(rngs[concurrency + 3 + i]) for i in range(3)),
                             *(run.idler() for _ in range(20)))
        await asyncio.sleep(1)
        async with session.get(url + "/metrics") as response:
            run.metrics = await response.text()
    run.samples = samples
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="the gateway's event loop (llmops gateway --loop)")
    args = parser.parse_args()

    from serving.gateway.auth import hash_key

    upstream_port, port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    config = {"models": {"m": {"backends": {"stable": {"url": f"http://127.0.0.1:{upstream_port}"}}}},
              "keys": [{"id": "soak", "sha256": hash_key(KEY), "models": ["*"],
                        "requestsPerMinute": 10**9, "tokensPerMinute": 10**12}],
              "limits": {"idleTimeoutS": 5, "bodyTimeoutS": 2},
              "cache": {"enabled": False}, "auditLog": str(workdir / "audit.jsonl")}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    upstream = multiprocessing.get_context("spawn").Process(target=quiet_upstream, args=(upstream_port,),
                                                            daemon=True)
    upstream.start()
    stderr = open(workdir / "gateway.log", "w")  # noqa: SIM115
    gateway = subprocess.Popen([sys.executable, "-m", "llmops.cli", "gateway", "--config",
                                str(workdir / "config.yaml"), "--port", str(port), "--drain-seconds", "5",
                                "--loop", args.loop],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_until_up(url))
        print(f"soak ({args.loop}, load average {os.getloadavg()[0]:.1f}): {args.seconds:.0f} s, "
              f"{args.concurrency} good clients, 3 leavers, 3 bad clients, "
              f"20 half-open idlers; gateway pid {gateway.pid}, log {workdir / 'gateway.log'}")
        run = asyncio.run(soak(url, gateway.pid, args.seconds, args.concurrency))
    finally:
        gateway.terminate()
        gateway.wait(30)
        upstream.terminate()
        stderr.close()
    log = (workdir / "gateway.log").read_text()
    print("requests by kind and status:")
    for (kind, status), n in sorted(run.counts.items()):
        print(f"  {kind:40} {status:4d}  {n:7d}")
    five = sum(n for (kind, status), n in run.counts.items() if status >= 500)
    counted = sum(float(v) for v in re.findall(r'^llm_requests_total\{[^}]*status_class="5xx"[^}]*\} (\S+)',
                                              run.metrics, re.M))
    first, last = run.samples[0], run.samples[-1]
    print(f"gateway-caused 5xx seen by clients: {five}; in its metrics: {counted:.0f}")
    print(f"tracebacks in its log: {log.count('Traceback')}; ERROR lines: {log.count(' ERROR ')}")
    with open(workdir / "audit.jsonl") as lines:
        outcomes = collections.Counter((line["status"], line["outcome"]) for line in map(json.loads, lines))
    print("audit lines by status and outcome: " + ", ".join(
        f"{status} {outcome} {n}" for (status, outcome), n in sorted(outcomes.items())))
    print(f"RSS {first[1]:.1f} -> {last[1]:.1f} MB (max {max(s[1] for s in run.samples):.1f}); "
          f"fds {first[2]} -> {last[2]} (max {max(s[2] for s in run.samples)})")


if __name__ == "__main__":
    main()
