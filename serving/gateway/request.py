"""Reading and checking one client request: the body however it arrives (pieces, chunked,
slowly), JSON Python can hold, and the fields the gateway acts on with TGI's types.

Everything a client can get wrong ends here as a `Refusal` (400/408/413/422), so nothing
later has to defend against odd input.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from serving.gateway.codings import NotDecodable, TooLarge, decode
from serving.gateway.errors import ClientGone, Refusal, invalid, shown

OPENAI_ROUTES = ("/v1/chat/completions", "/v1/completions")
#: TGI parameters the gateway reads, with the type TGI gives them.
NUMBERS = ("temperature", "top_p", "typical_p", "repetition_penalty", "frequency_penalty")
#: Most sequences one request may ask for (OpenAI's own API allows n up to 128).
MAX_COPIES = 128


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body, at most `limit` bytes, within `timeout_s` (a stalled client is cut off).

    Broken chunked framing is a 400, and so is a body that is not what its `Content-Encoding`
    (gzip or deflate, decoded here: codings.py) says; a client that leaves mid-body raises
    `ClientGone`. aiohttp 3.14 delivers both as the payload's exception (web_protocol.py:
    `RequestPayloadError` from the parser, `ConnectionResetError("Connection lost")` from
    `connection_lost`)."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    try:
        raw = await _read(request.content, limit, timeout_s)
    except (RequestPayloadError, HttpProcessingError):
        raise Refusal(400, "the request body could not be read: its framing is invalid "
                      "(Content-Length or chunked encoding)", "validation", "validation",
                      close=True) from None
    except ConnectionError:
        raise ClientGone from None
    coding = request.headers.get("Content-Encoding")
    if coding is None:
        return raw
    try:
        return decode(raw, coding.strip().lower(), limit)
    except TooLarge:
        raise _too_large(limit) from None
    except NotDecodable:
        raise Refusal(400, f"the request body could not be read: it is not valid "
                      f"{shown(coding, 30)} (Content-Encoding)", "validation", "validation") from None


async def _read(content, limit: int, timeout_s: float) -> bytes:
    if content.is_eof():  # the common case: the body came with the headers
        raw = content.read_nowait(-1)
        if len(raw) > limit:
            raise _too_large(limit)
        return raw
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await content.read(limit + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
    except TimeoutError:
        raise Refusal(408, f"the request body did not arrive within {timeout_s} s", "validation",
                      "validation", close=True) from None
    return b"".join(chunks)


def _too_large(limit: int) -> Refusal:
    return Refusal(413, f"request body is larger than {limit} bytes", "validation", "validation",
                   close=True)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; numbers Python refuses, deep nesting and NaN are 400s."""
    try:
        text = raw.decode() if raw else "null"
    except UnicodeDecodeError:
        raise Refusal(400, "request body is not valid JSON: not UTF-8", "validation", "validation") from None
    try:
        body = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise Refusal(400, "request body is not valid JSON: nested too deeply", "validation",
                      "validation") from None
    except ValueError as exc:
        raise Refusal(400, f"request body is not valid JSON: {exc}", "validation", "validation") from None
    if not isinstance(body, dict):
        raise invalid("request body must be a JSON object")
    return body


@dataclass
class Checked:
    """What the gateway needs from a valid body."""

    stream: bool
    max_new_tokens: int | None    # as requested (None: the model's cap applies)
    texts: list[str]              # what deny patterns look at
    parameters: dict[str, Any] = field(default_factory=dict)  # what decides determinism
    openai: bool = False
    copies: int = 1               # sequences generated (OpenAI `n`/`best_of`, TGI `best_of`)


def model_field(body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise invalid(f"'model' must be a string (got {shown(model)})")
    return model


def check_body(route: str, body: dict[str, Any], model: str, cap: int,
               deny: list[re.Pattern[str]]) -> Checked:
    """Check the fields the gateway acts on; TGI validates the rest itself (422)."""
    checked = _check_openai(route, body) if route in OPENAI_ROUTES else _check_tgi(route, body)
    requested = checked.max_new_tokens
    if requested is not None and (type(requested) is not int or not 1 <= requested <= cap):
        raise invalid(f"max_new_tokens must be an integer from 1 to {cap} for model {model!r} "
                      f"(got {shown(requested)})")
    for text in checked.texts:
        for pattern in deny:
            if pattern.search(text):
                raise Refusal(422, "the prompt matches a denied pattern", "validation", "denied")
    return checked


def _check_tgi(route: str, body: dict[str, Any]) -> Checked:
    inputs = body.get("inputs")
    if not isinstance(inputs, str) or not inputs:
        raise invalid("'inputs' is required and must be a non-empty string")
    parameters = body.get("parameters")
    if parameters is None:
        parameters = {}
    elif not isinstance(parameters, dict):
        raise invalid("'parameters' must be an object")
    for name in ("do_sample", "details", "decoder_input_details", "return_full_text"):
        _boolean(parameters, name, "parameters.")
    for name in (*NUMBERS, "top_k"):
        value = parameters.get(name)
        if value is not None and (type(value) not in (int, float)):
            raise invalid(f"parameters.{name} must be a number (got {shown(value)})")
    best_of = parameters.get("best_of")
    if best_of is not None and (type(best_of) is not int or best_of < 1):
        raise invalid(f"parameters.best_of must be an integer of at least 1 (got {shown(best_of)})")
    _seed(parameters, "parameters.")
    stream = route == "/generate_stream" or _boolean(body, "stream", "")
    return Checked(stream, parameters.get("max_new_tokens"), [inputs], parameters,
                   copies=best_of or 1)


def _check_openai(route: str, body: dict[str, Any]) -> Checked:
    texts: list[str] = []
    if route.endswith("chat/completions"):
        messages = body.get("messages")
        if messages is None:
            raise invalid("'messages' is required")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) for m in messages):
            raise invalid("'messages' must be a non-empty list of {role, content} objects")
        for i, message in enumerate(messages):
            texts += _contents(message.get("content"), f"messages[{i}].content")
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, str) and prompt:
            texts = [prompt]
        elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
            texts = list(prompt)
        else:
            raise invalid("'prompt' must be a non-empty string or list of strings")
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = body.get(name)
        if value is not None and type(value) not in (int, float):
            raise invalid(f"'{name}' must be a number (got {shown(value)})")
    _seed(body, "")
    stream = _boolean(body, "stream", "")
    requested = body.get("max_tokens")
    if requested is None:
        requested = body.get("max_completion_tokens")
    copies = 1
    for name in ("n", "best_of"):  # vLLM generates max(n, best_of) sequences
        value = body.get(name)
        if value is not None and (type(value) is not int or not 1 <= value <= MAX_COPIES):
            raise invalid(f"'{name}' must be an integer from 1 to {MAX_COPIES} (got {shown(value)})")
        copies = max(copies, value or 1)
    parameters = {k: v for k, v in body.items() if k not in ("stream", "model")}
    return Checked(stream, requested, texts, parameters, openai=True, copies=copies)


def _contents(content: Any, where: str) -> list[str]:
    if content is None or isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        texts = [p.get("text") for p in content]
        if any(t is not None and not isinstance(t, str) for t in texts):
            raise invalid(f"{where}[].text must be a string")
        return [t for t in texts if t]
    raise invalid(f"{where} must be a string or a list of content parts")


def _boolean(body: dict[str, Any], name: str, prefix: str) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid(f"'{name}' must be true or false (got {shown(value)})" if not prefix
                      else f"{prefix}{name} must be true or false (got {shown(value)})")
    return bool(value)


def _seed(body: dict[str, Any], prefix: str) -> None:
    seed = body.get("seed")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise invalid(f"{prefix}seed must be a non-negative integer (got {shown(seed)})" if prefix
                      else f"'seed' must be a non-negative integer (got {shown(seed)})")
