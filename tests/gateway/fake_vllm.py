"""A fake vLLM OpenAI server with vLLM 0.33.0's wire format (read from the wheel):

- routes: `/v1/chat/completions`, `/v1/completions`, `/health`, `/v1/models` only
  (`entrypoints/openai/*/api_router.py`); TGI's `/generate` is a 404;
- `model` optional, else it must be the served name (`serve/engine/serving.py`: "The model
  `x` does not exist.", 404);
- errors as `{"error": {"message", "type", "param", "code"}}` (`ErrorResponse`);
- stream chunks are pydantic's compact JSON (`model_dump_json(exclude_unset=True,
  exclude_none=not chunk.choices)`), the last one carries `usage` (and no choices) only when
  `stream_options.include_usage` is set (`serve/utils/api_utils.py: should_include_usage`),
  and the stream ends with `data: [DONE]` (`chat_completion/serving.py`);
- `n` sequences per request, each `max_tokens` long at most;
- optionally a reasoning text (`reasoning_content`) and one tool call whose `arguments`
  arrive in pieces (`tool_calls[].function.arguments`, chat_completion/protocol.py), streamed
  before the answer's words.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class VllmBehaviour:
    served: str = "chat"
    words: tuple[str, ...] = ("vLLM", " says", " hello", " to", " you", " today")
    not_ready: bool = False               # answer 503 as a Service with no ready replica would
    max_prompt_chars: int = 100           # longer prompts are refused (400) like a long context
    token_delay_s: float = 0.0
    reasoning: tuple[str, ...] = ()       # reasoning_content, piece by piece
    tool_arguments: tuple[str, ...] = ()  # one tool call's arguments, piece by piece
    requests: list[dict] = field(default_factory=list)


def _dump(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _error(status: int, message: str, kind: str, param: str | None = None) -> web.Response:
    return web.Response(body=_dump({"error": {"message": message, "type": kind, "param": param,
                                              "code": status}}),
                        status=status, content_type="application/json")


def create_fake_vllm(b: VllmBehaviour) -> web.Application:
    async def complete(request: web.Request) -> web.StreamResponse:
        if b.not_ready:
            return web.Response(status=503, text="no healthy upstream")
        body = await request.json()
        b.requests.append({"path": request.path, "body": body})
        if body.get("model") not in (None, b.served):
            return _error(404, f"The model `{body['model']}` does not exist.", "NotFoundError")
        prompt = json.dumps(body.get("messages", body.get("prompt")))
        if len(prompt) > b.max_prompt_chars:
            return _error(400, f"This model's maximum context length is {b.max_prompt_chars} "
                          f"characters; the prompt has {len(prompt)}", "BadRequestError", "messages")
        limit = body.get("max_completion_tokens") or body.get("max_tokens") or 16
        n = body.get("n") or 1
        if not isinstance(n, int) or n < 1:
            return _error(400, "n must be at least 1", "BadRequestError", "n")
        words = list(b.words[:limit])
        chat = request.path == "/v1/chat/completions"
        kind = "chat.completion" if chat else "text_completion"
        usage = {"prompt_tokens": 3, "total_tokens": 3 + n * len(words),
                 "completion_tokens": n * len(words)}
        if not body.get("stream"):
            text = "".join(words)
            message = {"role": "assistant", "content": text}
            if b.reasoning:
                message["reasoning_content"] = "".join(b.reasoning)
            if b.tool_arguments:
                message["tool_calls"] = [{"id": "call-1", "type": "function", "function": {
                    "name": "send", "arguments": "".join(b.tool_arguments)}}]
            choices = [{"index": i, "finish_reason": "length", "logprobs": None,
                        **({"message": message} if chat else {"text": text})} for i in range(n)]
            return web.Response(body=_dump({"id": "cmpl-1", "object": kind, "created": 1,
                                            "model": b.served, "choices": choices, "usage": usage}),
                                content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"
        extras = [{"reasoning_content": piece} for piece in b.reasoning] + [
            {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]} for piece in b.tool_arguments]
        for delta in extras if chat else []:
            await response.write(b"data: " + _dump({"id": "cmpl-1", "object": chunk_kind, "created": 1,
                                                     "model": b.served, "choices": [
                                                         {"index": 0, "delta": delta, "logprobs": None,
                                                          "finish_reason": None}]}) + b"\n\n")
        for position, word in enumerate(words):
            for i in range(n):
                last = position == len(words) - 1
                choice = {"index": i, **({"delta": {"content": word}} if chat else {"text": word}),
                          "logprobs": None, "finish_reason": "length" if last else None}
                await response.write(b"data: " + _dump({"id": "cmpl-1", "object": chunk_kind,
                                                         "created": 1, "model": b.served,
                                                         "choices": [choice]}) + b"\n\n")
            if b.token_delay_s:
                await asyncio.sleep(b.token_delay_s)
        if (body.get("stream_options") or {}).get("include_usage"):
            await response.write(b"data: " + _dump({"id": "cmpl-1", "object": chunk_kind, "created": 1,
                                                     "model": b.served, "choices": [],
                                                     "usage": usage}) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def health(_request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": b.served, "object": "model"}]})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", complete)
    app.router.add_post("/v1/completions", complete)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    return app
