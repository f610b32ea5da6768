"""Byte progress for long transfers: a listener protocol and a tiny text bar for the CLI.

boto3 calls transfer callbacks from its worker threads, so the bar counts under a lock."""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """What the registry reports while it hashes, uploads or downloads."""

    def start(self, label: str, total_bytes: int) -> None: ...
    def advance(self, n_bytes: int) -> None: ...
    def finish(self) -> None: ...


class NoProgress:
    """The default: report nothing."""

    def start(self, label: str, total_bytes: int) -> None:
        pass

    def advance(self, n_bytes: int) -> None:
        pass

    def finish(self) -> None:
        pass


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class TextProgress:
    """`label [#######.......]  42% 1.2 GiB/2.9 GiB` redrawn in place on a stream (stderr)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30, min_interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._label, self._total, self._done, self._last_draw = "", 0, 0, 0.0

    def start(self, label: str, total_bytes: int) -> None:
        with self._lock:
            self._label, self._total, self._done, self._last_draw = label, total_bytes, 0, 0.0
            self._draw()

    def advance(self, n_bytes: int) -> None:
        with self._lock:
            self._done += n_bytes
            now = time.monotonic()
            if now - self._last_draw >= self.min_interval or self._done >= self._total:
                self._last_draw = now
                self._draw()

    def finish(self) -> None:
        with self._lock:
            self._done = max(self._done, self._total)
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def render(self) -> str:
        fraction = min(1.0, self._done / self._total) if self._total else 1.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        return (f"{self._label} [{bar}] {fraction:4.0%} "
                f"{human_bytes(self._done)}/{human_bytes(self._total)}")

    def _draw(self) -> None:
        self.stream.write("\r" + self.render())
        self.stream.flush()
