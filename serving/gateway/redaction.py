"""The one redaction path: every shape of answer a model gives goes through `Redaction`.

Whole answers (TGI's object and the compat list, `details.tokens`, `best_of_sequences`,
OpenAI's `message.content` / `text`) and stream events (TGI tokens, OpenAI deltas) are all
redacted by the same `StreamRedactor`, so token texts always join up to the redacted
`generated_text`. Cached replays are recorded after this path, so they replay redacted bytes.
"""

from __future__ import annotations

import json
from typing import Any

from serving.gateway.pii import StreamRedactor, redact


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
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        out["message"] = {**message, "content": redact(message["content"])}
    if isinstance(out.get("text"), str):
        out["text"] = redact(out["text"])
    return out


class StreamRedaction:
    """One per streamed answer: rewrites each SSE data line, keeping the hold-back state."""

    def __init__(self) -> None:
        self._tgi = StreamRedactor()
        self._choices: dict[Any, StreamRedactor] = {}

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

    def _choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return choice
        redactor = self._choices.setdefault(choice.get("index", 0), StreamRedactor())
        out = dict(choice)
        delta = out.get("delta")
        key = "content" if isinstance(delta, dict) else "text"
        holder = dict(delta) if isinstance(delta, dict) else out
        text = holder.get(key)
        released = redactor.feed(text) if isinstance(text, str) else ""
        if out.get("finish_reason") is not None:
            released += redactor.flush()
        if isinstance(text, str) or released:
            holder[key] = released
        if isinstance(delta, dict):
            out["delta"] = holder
        return out

    def rest(self) -> list[bytes]:
        """Events carrying text still held when an OpenAI stream ends without finish_reason."""
        lines = []
        for index, redactor in self._choices.items():
            text = redactor.flush()
            if text:
                event = {"choices": [{"index": index, "delta": {"content": text}}]}
                lines.append(b"data: " + json.dumps(event).encode() + b"\n\n")
        return lines
