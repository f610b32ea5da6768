"""Redact PII in generated text: emails, phone numbers, card numbers (Luhn-checked).

Streaming: `StreamRedactor` holds back only the tail of the text that could still become
part of a match: the trailing run of characters a pattern is made of, at most as long as
that pattern's longest match (computed from the pattern itself). So a stream redacts
exactly as the whole text would be redacted, however it is split, and ordinary prose is
released at once.
"""

from __future__ import annotations

import re
from re import _parser as sre_parse  # the stdlib's own pattern parser, for match widths

#: RFC 5321 bounds (64-octet local part, 255-octet domain) keep the pattern's width finite.
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,252}\.[A-Za-z]{2,24}")
CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
PHONE = re.compile(r"(?<!\w)(?:\+?\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?!\w)")


def max_width(pattern: re.Pattern[str]) -> int:
    """The longest text the pattern can match."""
    return sre_parse.parse(pattern.pattern).getwidth()[1]


#: (characters a match is made of, characters a match can start with, longest match)
TAILS = (
    (frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-@"),
     None, max_width(EMAIL)),
    (frozenset("0123456789()+. -"), frozenset("0123456789(+"), max(max_width(PHONE), max_width(CARD))),
)


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


def find_pii(text: str, pos: int = 0) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, replacement) spans from `pos` on, in order; the text
    before `pos` is context the patterns' look-behinds and word boundaries see."""
    spans = [(m.start(), m.end(), "[REDACTED_EMAIL]") for m in EMAIL.finditer(text, pos)]
    spans += [(m.start(), m.end(), "[REDACTED_CARD]") for m in CARD.finditer(text, pos)
              if luhn_valid(m.group())]
    spans += [(m.start(), m.end(), "[REDACTED_PHONE]") for m in PHONE.finditer(text, pos)]
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


def undecided_tail(text: str) -> int:
    """Where the part of `text` that more text could still turn into PII begins."""
    end = len(text)
    cut = end
    for alphabet, starts, width in TAILS:
        i = end
        while i > 0 and end - i < width and text[i - 1] in alphabet:
            i -= 1
        if starts is not None:
            while i < end and text[i] not in starts:
                i += 1
        cut = min(cut, i)
    return cut


class StreamRedactor:
    """Feed token texts in order; get back the text safe to emit for each, redacted."""

    def __init__(self) -> None:
        self._pending = ""
        self._before = ""  # the last character released: the patterns' look-behind context

    def _spans(self) -> list[tuple[int, int, str]]:
        shift = len(self._before)
        return [(start - shift, end - shift, r)
                for start, end, r in find_pii(self._before + self._pending, shift)]

    def feed(self, text: str) -> str:
        self._pending += text
        return self._release(self._safe_cut(undecided_tail(self._pending)), self._spans())

    def _safe_cut(self, cut: int) -> int:
        """Move the cut before any candidate match it would split (Luhn-invalid ones too),
        so scanning on from the cut finds what scanning the whole text would."""
        text, shift = self._before + self._pending, len(self._before)
        candidates = [(m.start() - shift, m.end() - shift)
                      for pattern in (EMAIL, CARD, PHONE) for m in pattern.finditer(text, shift)]
        moved = True
        while moved:
            moved = False
            for start, end in candidates:
                if start < cut < end:
                    cut, moved = start, True
        return cut

    def flush(self) -> str:
        return self._release(len(self._pending), self._spans())

    def _release(self, cut: int, spans: list[tuple[int, int, str]]) -> str:
        # spans come from the whole pending text, so one is never split at the cut
        out, last = [], 0
        for start, end, replacement in spans:
            if end > cut:
                break
            out += [self._pending[last:start], replacement]
            last = end
        out.append(self._pending[last:cut])
        if cut:
            self._before = self._pending[cut - 1]
        self._pending = self._pending[cut:]
        return "".join(out)
