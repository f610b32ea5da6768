#!/usr/bin/env python3
# ruff: noqa: E501, RUF100  (a copy of ../shared/sim/prefix_sim.py, behaviour unchanged; opt-in flags added: serve --no-render, load --client-seed)
"""A model-server simulator with a prefix cache, for judging prefix-aware routing offline.

Each server speaks the OpenAI API as vLLM does (POST /v1/chat/completions and /v1/completions,
streaming SSE ending in `data: [DONE]`; GET /health, /v1/models, /metrics with vLLM's metric names).
The prompt is cut into 64-character blocks (~16 tokens); a block is cached if it and every block
before it were seen (a prefix cache with LRU eviction, capacity --cache-blocks). Prefill runs one
request at a time per server (a single compute queue) and costs --prefill-ms-per-block for each
uncached block; then --out-tokens tokens stream at --decode-ms each. TTFT therefore grows with
uncached prefix and with queueing, as on a real engine.

    prefix_sim.py serve --port 9001 [--cache-blocks 4000] [--no-render]
    prefix_sim.py load --url http://127.0.0.1:8000 --groups 12 --concurrency 16 --seconds 20
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import statistics
import time

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

BLOCK = 64


def blocks(text: str) -> list[str]:
    out, h = [], hashlib.sha1()
    for i in range(0, len(text) - len(text) % BLOCK, BLOCK):
        h.update(text[i:i + BLOCK].encode())
        out.append(h.hexdigest())
    return out


class Engine:
    def __init__(self, cache_blocks: int, prefill_ms: float, decode_ms: float, out_tokens: int):
        self.cache: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.cap, self.prefill_ms, self.decode_ms, self.out_tokens = cache_blocks, prefill_ms, decode_ms, out_tokens
        self.compute = asyncio.Lock()
        self.hits = self.queries = self.requests = self.waiting = 0

    def lookup_and_insert(self, bs: list[str]) -> int:
        hit = 0
        for b in bs:
            if b in self.cache:
                hit += 1
                self.cache.move_to_end(b)
            else:
                break
        for b in bs[hit:]:
            self.cache[b] = None
            if len(self.cache) > self.cap:
                self.cache.popitem(last=False)
        self.hits += hit
        self.queries += len(bs)
        return len(bs) - hit

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if "messages" in body:
            prompt = "".join(f"<|{m.get('role')}|>{m.get('content')}" for m in body["messages"])
        else:
            prompt = str(body.get("prompt", ""))
        self.requests += 1
        self.waiting += 1
        try:
            async with self.compute:
                self.waiting -= 1
                miss = self.lookup_and_insert(blocks(prompt))
                await asyncio.sleep(miss * self.prefill_ms / 1000)
        except BaseException:
            self.waiting -= 0
            raise
        n = int(body.get("max_tokens") or self.out_tokens)
        chat = "messages" in body
        if not body.get("stream"):
            await asyncio.sleep(n * self.decode_ms / 1000)
            text = "x" * n
            choice = {"index": 0, "finish_reason": "length", **({"message": {"role": "assistant", "content": text}} if chat else {"text": text})}
            return web.json_response({"id": "sim", "object": "chat.completion" if chat else "text_completion", "model": body.get("model"),
                                      "choices": [choice], "usage": {"prompt_tokens": len(prompt) // 4, "completion_tokens": n,
                                                                     "total_tokens": len(prompt) // 4 + n}})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(n):
            delta = {"delta": {"content": "x"}} if chat else {"text": "x"}
            chunk = {"id": "sim", "object": "chat.completion.chunk" if chat else "text_completion", "model": body.get("model"),
                     "choices": [{"index": 0, **delta, "finish_reason": "length" if i == n - 1 else None}]}
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if i < n - 1:
                await asyncio.sleep(self.decode_ms / 1000)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def render(self, request: web.Request) -> web.Response:
        """vLLM 0.33's render API (/v1/chat/completions/render, /v1/completions/render): token ids of the
        prompt, which prefix-aware routers use. One token per 4 characters, stable across requests."""
        body = await request.json()
        if "messages" in body:
            prompt = "".join(f"<|{m.get('role')}|>{m.get('content')}" for m in body["messages"])
        else:
            prompt = str(body.get("prompt", ""))
        ids = [int.from_bytes(hashlib.blake2b(prompt[i:i + 4].encode(), digest_size=3).digest(), "big") for i in range(0, len(prompt), 4)]
        out = {"request_id": "sim", "token_ids": ids or [0]}
        return web.json_response(out if "messages" in body else [out])

    async def metrics(self, _: web.Request) -> web.Response:
        text = (f"vllm:prefix_cache_hits_total {self.hits}\nvllm:prefix_cache_queries_total {self.queries}\n"
                f"vllm:num_requests_waiting {self.waiting}\nvllm:num_requests_running {1 if self.compute.locked() else 0}\n"
                f"vllm:request_success_total {self.requests}\nvllm:kv_cache_usage_perc {len(self.cache) / self.cap:.4f}\n")
        return web.Response(text=text)


def serve(a: argparse.Namespace) -> None:
    e = Engine(a.cache_blocks, a.prefill_ms_per_block, a.decode_ms, a.out_tokens)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", e.handle)
    app.router.add_post("/v1/completions", e.handle)
    if not a.no_render:  # --no-render: a server without vLLM's render API, as TGI 3.3.7 (404)
        app.router.add_post("/v1/chat/completions/render", e.render)
        app.router.add_post("/v1/completions/render", e.render)
    app.router.add_get("/health", lambda _: web.Response(text="ok"))
    app.router.add_get("/v1/models", lambda _: web.json_response({"object": "list", "data": [{"id": a.model, "object": "model"}]}))
    app.router.add_get("/metrics", e.metrics)
    web.run_app(app, host="127.0.0.1", port=a.port, print=None, access_log=None)


async def load(a: argparse.Namespace) -> dict:
    rnd = random.Random(a.seed)
    systems = [f"[system prompt {g}] " + "".join(rnd.choice("abcdefghij klmnop") for _ in range(a.system_chars)) for g in range(a.groups)]
    if a.client_seed is not None:  # opt-in: the same system prompts, other conversations and user turns
        rnd = random.Random(a.client_seed)
    convs = [{"g": rnd.randrange(a.groups), "turns": []} for _ in range(a.conversations)]
    ttft, errors, done = [], 0, 0
    headers = {"Authorization": f"Bearer {a.key}"} if a.key else {}
    end = time.monotonic() + a.seconds
    async with ClientSession(connector=TCPConnector(limit=0), timeout=ClientTimeout(total=120)) as s:
        async def worker(i: int) -> None:
            nonlocal errors, done
            while time.monotonic() < end:
                c = convs[rnd.randrange(len(convs))]
                user = "".join(rnd.choice("qrstuvwxyz ") for _ in range(a.user_chars))
                msgs = [{"role": "system", "content": systems[c["g"]]}] + c["turns"] + [{"role": "user", "content": user}]
                if a.api == "chat":
                    body, route = {"model": a.model, "messages": msgs, "max_tokens": a.max_tokens, "stream": True}, "/v1/chat/completions"
                else:
                    prompt = "".join(f"<|{m['role']}|>{m['content']}" for m in msgs)
                    body, route = {"model": a.model, "prompt": prompt, "max_tokens": a.max_tokens, "stream": True}, "/v1/completions"
                t0 = time.perf_counter()
                try:
                    async with s.post(a.url + route, json=body, headers=headers) as r:
                        if r.status != 200:
                            errors += 1
                            await r.read()
                            continue
                        first = None
                        async for line in r.content:
                            if first is None and line.startswith(b"data:"):
                                first = time.perf_counter() - t0
                        ttft.append(first if first is not None else time.perf_counter() - t0)
                        done += 1
                        c["turns"] = (c["turns"] + [{"role": "user", "content": user}, {"role": "assistant", "content": "x" * a.max_tokens}])[-8:]
                except Exception:  # noqa: BLE001 - a load generator counts, it does not judge
                    errors += 1
        t_start = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(a.concurrency)))
        elapsed = time.monotonic() - t_start
    q = sorted(ttft)
    return {"requests": done, "errors": errors, "rps": done / elapsed if elapsed else 0,
            "ttft_p50_ms": 1000 * statistics.median(q) if q else None,
            "ttft_p95_ms": 1000 * q[int(0.95 * (len(q) - 1))] if q else None}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--model", default="sim")
    s.add_argument("--cache-blocks", type=int, default=3000)
    s.add_argument("--prefill-ms-per-block", type=float, default=1.0)
    s.add_argument("--decode-ms", type=float, default=2.0)
    s.add_argument("--out-tokens", type=int, default=16)
    s.add_argument("--no-render", action="store_true", help="serve no render API (as TGI 3.3.7); off by default")
    l_ = sub.add_parser("load")
    l_.add_argument("--url", required=True)
    l_.add_argument("--model", default="sim")
    l_.add_argument("--key", default="")
    l_.add_argument("--groups", type=int, default=12)
    l_.add_argument("--conversations", type=int, default=200)
    l_.add_argument("--system-chars", type=int, default=8000)
    l_.add_argument("--user-chars", type=int, default=200)
    l_.add_argument("--max-tokens", type=int, default=16)
    l_.add_argument("--concurrency", type=int, default=16)
    l_.add_argument("--seconds", type=float, default=20)
    l_.add_argument("--seed", type=int, default=7)
    l_.add_argument("--client-seed", type=int, default=None, help="seed the conversations and user turns apart from the system prompts (off by default)")
    l_.add_argument("--api", choices=("chat", "completions"), default="chat")
    a = p.parse_args()
    if a.cmd == "serve":
        serve(a)
    else:
        print(json.dumps(asyncio.run(load(a))))


if __name__ == "__main__":
    main()
