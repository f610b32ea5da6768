"""One JSON line per access decision: who (key id), what (model, action), allowed, when.

Written on the request path, so the line is assembled from pre-encoded pieces: key ids,
model names and routes repeat (they come from config), and only new strings are encoded.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

#: Encoded strings kept at most; values beyond it (client-sent names) are encoded each time.
MEMO_SIZE = 4096


class AuditLog:
    def __init__(self, target: str):
        self._stream: TextIO = sys.stdout if target == "-" else open(target, "a", buffering=1)  # noqa: SIM115
        self._encoded: dict[str | None, str] = {None: "null"}

    def _json(self, value: str | None) -> str:
        encoded = self._encoded.get(value)
        if encoded is None:
            encoded = json.dumps(value)
            if len(self._encoded) < MEMO_SIZE:
                self._encoded[value] = encoded
        return encoded

    def record(self, key_id: str | None, model: str | None, action: str, allowed: bool,
               reason: str | None = None, *, status: int | None = None, outcome: str | None = None,
               answered_by: str | None = None) -> None:
        """One line per request (`allowed`: it was admitted past auth, access, checks and
        limits; `status`/`outcome`: how it ended; `answered_by`: a fallback that answered)."""
        line = (f'{{"time": {time.time():.3f}, "key_id": {self._json(key_id)}, '
                f'"model": {self._json(model)}, "action": {self._json(action)}, '
                f'"allowed": {"true" if allowed else "false"}')
        if status is not None:
            line += f', "status": {int(status)}, "outcome": {self._json(outcome)}'
        if answered_by:
            line += f', "answered_by": {self._json(answered_by)}'
        if reason:
            line += f', "reason": {json.dumps(reason)}'
        self._stream.write(line + "}\n")

    def close(self) -> None:
        if self._stream is not sys.stdout:
            self._stream.close()
