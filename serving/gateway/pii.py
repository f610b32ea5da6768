"""Redact PII in generated text: emails, phone numbers, card numbers (Luhn-checked).

Streaming: `StreamRedactor` holds back a short tail so a number split across token events
is still caught; held text is released (redacted) as the stream moves on or ends.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
PHONE = re.compile(r"(?<!\w)(?:\+?\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\w)")
HOLD_BACK = 40  # longer than any PII form above


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, replacement) spans, in order."""
    spans = [(m.start(), m.end(), "[REDACTED_EMAIL]") for m in EMAIL.finditer(text)]
    spans += [(m.start(), m.end(), "[REDACTED_CARD]") for m in CARD.finditer(text)
              if luhn_valid(m.group())]
    spans += [(m.start(), m.end(), "[REDACTED_PHONE]") for m in PHONE.finditer(text)]
    spans.sort()
    kept: list[tuple[int, int, str]] = []
    for span in spans:
        if not kept or span[0] >= kept[-1][1]:
            kept.append(span)
    return kept


def redact(text: str) -> str:
    out, last = [], 0
    for start, end, replacement in find_pii(text):
        out += [text[last:start], replacement]
        last = end
    out.append(text[last:])
    return "".join(out)


class StreamRedactor:
    """Feed token texts in order; get back the text safe to emit for each, redacted."""

    def __init__(self) -> None:
        self._pending = ""

    def feed(self, text: str) -> str:
        self._pending += text
        cut = max(0, len(self._pending) - HOLD_BACK)
        for start, end, _ in find_pii(self._pending):
            if start < cut < end or (start >= cut and end == len(self._pending)):
                cut = min(cut, start)
        return self._release(cut)

    def flush(self) -> str:
        return self._release(len(self._pending))

    def _release(self, cut: int) -> str:
        # redact against the whole pending text so a span is never split at the cut
        spans = [s for s in find_pii(self._pending) if s[1] <= cut]
        out, last = [], 0
        for start, end, replacement in spans:
            out += [self._pending[last:start], replacement]
            last = end
        out.append(self._pending[last:cut])
        self._pending = self._pending[cut:]
        return "".join(out)
