"""What a preflight check reports: one line, and when it fails, what to run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: the command or step that fixes a failure
    fix: str = ""

    def line(self, width: int) -> str:
        mark = "ok  " if self.ok else "FAIL"
        text = f"  {mark}  {self.name:<{width}}  {self.detail}"
        return text if self.ok or not self.fix else f"{text}; {self.fix}"


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def render(stack: str, checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = [f"Preflight of stack {stack!r}:", *(c.line(width) for c in checks)]
    failures = [c for c in checks if not c.ok]
    lines.append(f"{len(failures)} of {len(checks)} checks failed: fix them before `up`." if failures
                 else f"All {len(checks)} checks passed.")
    return "\n".join(lines)
