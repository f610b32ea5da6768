"""One JSON line per access decision: who (key id), what (model, action), allowed, when."""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO


class AuditLog:
    def __init__(self, target: str):
        self._stream: TextIO = sys.stdout if target == "-" else open(target, "a", buffering=1)  # noqa: SIM115

    def record(self, key_id: str | None, model: str | None, action: str, allowed: bool,
               reason: str | None = None) -> None:
        line = {"time": round(time.time(), 3), "key_id": key_id, "model": model,
                "action": action, "allowed": allowed}
        if reason:
            line["reason"] = reason
        self._stream.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
