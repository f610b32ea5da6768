"""A TGI-protocol fake upstream: the routes, payloads, SSE framing and error shapes of TGI's
router (see shared reference tgi.md), with knobs for overload, failures and slow streams."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class FakeBehaviour:
    name: str = "stable"
    reply: str = "Hello from the model"
    tokens_per_reply: int | None = None   # default: one token per word (split on spaces)
    overloaded: bool = False              # 429 like max-concurrent-requests exceeded
    fail: bool = False                    # 500 incomplete generation
    break_stream_after: int | None = None  # drop the connection after N token events
    token_delay_s: float = 0.0
    whole_delay_s: float = 0.0            # a whole (non-streamed) answer takes this long
    usage_tokens: int | None = None       # what OpenAI routes report as usage.completion_tokens
    generated_tokens: int | None = None   # what TGI routes report (header, details)
    requests: list[dict] = field(default_factory=list)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)


def _tokens(b: FakeBehaviour) -> list[str]:
    words = b.reply.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


def _error(status: int, message: str, kind: str) -> web.Response:
    return web.json_response({"error": message, "error_type": kind}, status=status)


def _details(tokens: list[str]) -> dict:
    return {"finish_reason": "length", "generated_tokens": len(tokens), "seed": None,
            "prefill": [], "tokens": [{"id": i, "text": t, "logprob": -0.1, "special": False}
                                      for i, t in enumerate(tokens)]}


def create_fake_tgi(b: FakeBehaviour) -> web.Application:
    async def generate(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        b.requests.append({"path": request.path, "body": body, "headers": dict(request.headers)})
        if b.overloaded:
            return _error(429, "Model is overloaded", "overloaded")
        if b.fail:
            return _error(500, "Request failed during generation", "incomplete_generation")
        if not isinstance(body.get("inputs", body.get("messages", body.get("prompt"))), (str, list)):
            return _error(422, "Input validation error: `inputs` must be a string", "validation")
        tokens = _tokens(b)
        stream = request.path.endswith("_stream") or bool(body.get("stream"))
        if not stream and b.whole_delay_s:
            try:
                await asyncio.sleep(b.whole_delay_s)
            except asyncio.CancelledError:  # the gateway dropped the request: generation stops
                b.cancelled.set()
                raise
        completion = len(tokens) if b.usage_tokens is None else b.usage_tokens
        reported = len(tokens) if b.generated_tokens is None else b.generated_tokens
        if stream:
            usage = (body.get("stream_options") or {}).get("include_usage")
            return await _stream(request, tokens, openai=request.path.startswith("/v1/"),
                                 chat=request.path == "/v1/chat/completions",
                                 usage=completion if usage else None)
        text = "".join(tokens)
        headers = {"x-generated-tokens": str(reported), "x-compute-time": "0.01"}
        if request.path == "/v1/chat/completions":
            return web.json_response({"id": "1", "object": "chat.completion", "model": b.name,
                                      "choices": [{"index": 0, "finish_reason": "length",
                                                   "message": {"role": "assistant", "content": text}}],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": completion,
                                                "total_tokens": 3 + len(tokens)}})
        if request.path == "/v1/completions":
            return web.json_response({"id": "1", "object": "text_completion", "model": b.name,
                                      "choices": [{"index": 0, "text": text, "finish_reason": "length"}],
                                      "usage": {"prompt_tokens": 3, "completion_tokens": completion,
                                                "total_tokens": 3 + len(tokens)}})
        payload = {"generated_text": text, "details": {**_details(tokens), "generated_tokens": reported}}
        best_of = (body.get("parameters") or {}).get("best_of") or 1
        if best_of > 1:  # TGI returns the other candidates in details.best_of_sequences
            payload["details"]["best_of_sequences"] = [
                {"generated_text": text, "finish_reason": "length", "generated_tokens": len(tokens),
                 "seed": i, "prefill": [], "tokens": _details(tokens)["tokens"]}
                for i in range(best_of - 1)]
        if request.path == "/":  # the compat route answers a list
            return web.json_response([payload], headers=headers)
        return web.json_response(payload, headers=headers)

    async def _stream(request: web.Request, tokens: list[str], openai: bool,
                      chat: bool = False, usage: int | None = None) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "X-Accel-Buffering": "no"})
        await response.prepare(request)
        try:
            for i, text in enumerate(tokens):
                if b.break_stream_after is not None and i == b.break_stream_after:
                    request.transport.close()  # the server dies mid-stream
                    return response
                if openai:
                    last = i == len(tokens) - 1
                    choice = {"index": 0, "finish_reason": "length" if last else None}
                    choice.update({"delta": {"content": text}} if chat else {"text": text})
                    event = {"choices": [choice]}
                    await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                else:
                    last = i == len(tokens) - 1
                    event = {"index": i, "token": {"id": i, "text": text, "logprob": -0.1,
                                                   "special": False},
                             "generated_text": "".join(tokens) if last else None,
                             "details": {"finish_reason": "length", "generated_tokens": len(tokens),
                                         "seed": None} if last else None}
                    await response.write(b"data:" + json.dumps(event).encode() + b"\n\n")
                if b.token_delay_s:
                    await asyncio.sleep(b.token_delay_s)
            if openai and usage is not None:  # vLLM's last chunk with stream_options.include_usage
                event = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": usage,
                                                  "total_tokens": 3 + usage}}
                await response.write(b"data: " + json.dumps(event).encode() + b"\n\n")
            if openai:
                await response.write(b"data: [DONE]\n\n")
        except (asyncio.CancelledError, ConnectionResetError):
            b.cancelled.set()
            raise
        return response

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({})

    async def info(_request: web.Request) -> web.Response:
        return web.json_response({"model_id": b.name, "max_input_tokens": 4096, "time": time.time()})

    app = web.Application()
    for path in ("/generate", "/generate_stream", "/", "/v1/chat/completions", "/v1/completions"):
        app.router.add_post(path, generate)
    app.router.add_get("/health", health)
    app.router.add_get("/info", info)
    return app


def main() -> None:
    """Serve the fake on loopback for the README's tour: `python -m tests.gateway.fake_tgi`."""
    import argparse

    parser = argparse.ArgumentParser(description="A TGI-protocol fake model server on loopback")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--reply", default="Hello from the model")
    args = parser.parse_args()
    web.run_app(create_fake_tgi(FakeBehaviour(reply=args.reply)), host="127.0.0.1", port=args.port,
                print=lambda _: print(f"fake TGI on http://127.0.0.1:{args.port}", flush=True))


if __name__ == "__main__":
    main()
