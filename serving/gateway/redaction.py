r"""The one redaction path: every shape of answer a model gives goes through `Redaction`.

Whole answers (TGI's object and the compat list, `details.tokens`, `best_of_sequences`,
OpenAI's `message.content` / `text`, the reasoning text and tool-call arguments) and stream
events (TGI tokens, OpenAI deltas) are all redacted by the same `StreamRedactor`, so token
texts always join up to the redacted `generated_text`. Per-token alternatives (logprobs, TGI's
top tokens) cannot be redacted exactly and are refused on a redactPii model (app.py). Cached
replays are recorded after this path, so they replay redacted bytes.

Tool-call arguments are JSON text inside JSON: the model may write `\u0040` for `@` (or
escape any other character of an address or number), which no pattern over the raw text
sees. Their `\uXXXX` escapes of printable characters are decoded before matching (whole and
streamed, a partial escape at a fragment's end held back), which keeps the text the same JSON.
"""

from __future__ import annotations

import json
import re
from typing import Any

from serving.gateway.pii import StreamRedactor, redact

#: The texts an OpenAI message or delta carries besides tool calls: the answer and the
#: reasoning (vLLM 0.34.0 chat_completion/protocol.py: `reasoning_content`; newer `reasoning`).
MESSAGE_TEXTS = ("content", "reasoning_content", "reasoning")


#: A JSON `\uXXXX` escape that is not itself escaped (an even run of backslashes before it).
_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u([0-9a-fA-F]{4})")
#: The end of a fragment that may be the start of such an escape (`\`, `\u`, `\u0`, ...).
_PARTIAL = re.compile(r"(?<!\\)(?:\\\\)*\\(?:u[0-9a-fA-F]{0,3})?$")


def _decoded(match: re.Match[str]) -> str:
    char = chr(int(match.group(2), 16))
    if char in '"\\' or not char.isprintable():  # these must stay escaped to stay JSON
        return match.group(0)
    return match.group(1) + char


def unescape_json_text(text: str) -> str:
    r"""JSON text with its `\uXXXX` escapes of printable characters decoded: the same JSON
    value, in the characters the PII patterns match."""
    return _ESCAPE.sub(_decoded, text) if "\\u" in text else text


def redact_arguments(text: str) -> str:
    """A whole tool call's arguments (JSON text), redacted with its escapes decoded."""
    return redact(unescape_json_text(text))


class JsonTextRedactor:
    """A `StreamRedactor` for streamed JSON text (tool-call arguments): each fragment's escapes
    are decoded before matching, a partial escape at its end held until the next one."""

    def __init__(self) -> None:
        self._inner, self._pending = StreamRedactor(), ""

    def feed(self, text: str) -> str:
        text = self._pending + text
        partial = _PARTIAL.search(text)
        cut = partial.start() if partial else len(text)
        self._pending = text[cut:]
        return self._inner.feed(unescape_json_text(text[:cut]))

    def flush(self) -> str:
        rest, self._pending = unescape_json_text(self._pending), ""
        return self._inner.feed(rest) + self._inner.flush()


def redact_tokens(tokens: list[Any]) -> list[Any]:
    """Token texts as a stream would show them: PII split across tokens is still caught."""
    redactor, out = StreamRedactor(), []
    for token in tokens:
        if isinstance(token, dict) and isinstance(token.get("text"), str):
            token = {**token, "text": redactor.feed(token["text"])}
        out.append(token)
    rest = redactor.flush()
    for i in range(len(out) - 1, -1, -1):  # the held tail goes to the last text token
        if isinstance(out[i], dict) and isinstance(out[i].get("text"), str):
            out[i] = {**out[i], "text": out[i]["text"] + rest}
            break
    return out


def _sequence(sequence: dict[str, Any]) -> dict[str, Any]:
    out = dict(sequence)
    if isinstance(out.get("generated_text"), str):
        out["generated_text"] = redact(out["generated_text"])
    if isinstance(out.get("tokens"), list):
        out["tokens"] = redact_tokens(out["tokens"])
    return out


def redact_payload(payload: Any) -> Any:
    """A whole answer of any shape, redacted."""
    if isinstance(payload, list):
        return [redact_payload(p) for p in payload]
    if not isinstance(payload, dict):
        return payload
    out = _sequence(payload)
    details = out.get("details")
    if isinstance(details, dict):
        details = _sequence(details)
        if isinstance(details.get("best_of_sequences"), list):
            details["best_of_sequences"] = [_sequence(s) if isinstance(s, dict) else s
                                            for s in details["best_of_sequences"]]
        out["details"] = details
    if isinstance(out.get("choices"), list):
        out["choices"] = [_choice_whole(c) for c in out["choices"]]
    return out


def _choice_whole(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return choice
    out = dict(choice)
    message = out.get("message")
    if isinstance(message, dict):
        message = {k: redact(v) if k in MESSAGE_TEXTS and isinstance(v, str) else v
                   for k, v in message.items()}
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [_tool_call(c, redact_arguments) for c in message["tool_calls"]]
        out["message"] = message
    if isinstance(out.get("text"), str):
        out["text"] = redact(out["text"])
    return out


def _tool_call(call: Any, redactor) -> Any:
    """A tool call with its arguments (the model's text) redacted by `redactor`."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    if not isinstance(function.get("arguments"), str):
        return call
    return {**call, "function": {**function, "arguments": redactor(function["arguments"])}}


class StreamRedaction:
    """One per streamed answer: rewrites each SSE data line, keeping the hold-back state."""

    def __init__(self) -> None:
        self._tgi = StreamRedactor()
        self._choices: dict[Any, StreamRedactor | JsonTextRedactor] = {}

    def line(self, line: bytes) -> bytes:
        """A `data:` line, redacted; lines that are not JSON objects pass unchanged."""
        prefix = b"data: " if line.startswith(b"data: ") else b"data:"
        try:
            event = json.loads(line[5:])
        except ValueError:
            return line
        if not isinstance(event, dict):
            return line
        if isinstance(event.get("token"), dict):
            event = self._tgi_event(event)
        elif isinstance(event.get("choices"), list):
            event = {**event, "choices": [self._choice(c) for c in event["choices"]]}
        else:
            return line
        return prefix + json.dumps(event).encode() + b"\n"

    def _tgi_event(self, event: dict[str, Any]) -> dict[str, Any]:
        token = event["token"]
        text = self._tgi.feed(token["text"]) if isinstance(token.get("text"), str) else ""
        out = dict(event)
        if event.get("generated_text") is not None:  # the final event: release the rest
            text += self._tgi.flush()
            out["generated_text"] = redact(str(event["generated_text"]))
        out["token"] = {**token, "text": text}
        return out

    def _text(self, where: tuple, text: Any, last: bool) -> str | None:
        """The part of one text stream (a choice's content, reasoning or one tool call's
        arguments) that is safe to send now; None when there is nothing to carry."""
        redactor = self._choices.get(where)
        if redactor is None:
            redactor = self._choices[where] = JsonTextRedactor() if where[1] == "tool" else StreamRedactor()
        released = redactor.feed(text) if isinstance(text, str) else ""
        if last:
            released += redactor.flush()
        return released if isinstance(text, str) or released else None

    def _choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return choice
        index, last = choice.get("index", 0), choice.get("finish_reason") is not None
        out = dict(choice)
        delta = out.get("delta")
        if not isinstance(delta, dict):
            text = self._text((index, "text"), out.get("text"), last)
            if text is not None:
                out["text"] = text
            return out
        holder = dict(delta)
        for key in MESSAGE_TEXTS:  # the last event releases every held text of its choice,
            # so nothing follows the event that says the choice is finished
            if key in holder or (last and (key == "content" or (index, key) in self._choices)):
                text = self._text((index, key), holder.get(key), last)
                if text is not None:
                    holder[key] = text
        if isinstance(holder.get("tool_calls"), list):
            holder["tool_calls"] = [
                _tool_call(c, lambda t, c=c: self._text(
                    (index, "tool", c.get("index", 0)), t, last) or "")
                for c in holder["tool_calls"]]
        if last:
            held = [(tool, self._text(where, None, True)) for where in list(self._choices)
                    if where[:2] == (index, "tool") for tool in where[2:]]
            calls = [{"index": tool, "function": {"arguments": text}} for tool, text in held if text]
            if calls:
                holder["tool_calls"] = [*(holder.get("tool_calls") or []), *calls]
        out["delta"] = holder
        return out

    def rest(self) -> list[bytes]:
        """Events carrying text still held when an OpenAI stream ends without finish_reason."""
        lines = []
        for (index, key, *tool), redactor in self._choices.items():
            text = redactor.flush()
            if not text:
                continue
            if key == "tool":
                delta: dict[str, Any] = {"tool_calls": [{"index": tool[0], "function": {"arguments": text}}]}
            else:
                delta = {"content" if key == "text" else key: text}
            event = {"choices": [{"index": index, "delta": delta}]}
            lines.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        return lines
