"""Mutation testing of the Prometheus rule files: `python -m mutation.alerts` (or
`make mutate AREAS=alerts`).

Rules are YAML + PromQL, which no Python mutation tool understands, so this driver plants
the bugs itself, one at a time, in a scratch copy of components/assets/prometheus/:

- every number in an `expr` (thresholds, burn-rate factors, quantiles, the generated
  parameter values) nudged 10% up and 10% down; a ratio between 0.5 and 1 (an objective,
  a memory share) has its complement nudged instead (0.99 -> 0.989 / 0.991), which is where
  such a value is sensitive;
- every comparison loosened or tightened (`>` -> `>=`, `<`; `<` -> `<=`, `>`; `==` -> `!=`);
- `and` <-> `or` between vectors;
- every `for:` duration and range selector halved and doubled ([5m] -> [2m30s], [10m]);
- every `offset` dropped.

A mutant is killed when `promtool test rules` fails on the shipped unit tests, invalid when
`promtool check rules` rejects the mutated file (not counted). gpu-prices.yaml is a data
table generated from vocabulary/data/gpu_instances.yaml (checked by its own test), so it is
not mutated. Report: .mutation/alerts/report.txt.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS = REPO / "components" / "assets" / "prometheus"
REPORT = REPO / ".mutation" / "alerts" / "report.txt"
SKIPPED_FILES = ("gpu-prices.yaml",)

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
NUMBER = re.compile(r"(?<![\w.:$])(\d+(?:\.\d+)?(?:e\d+)?)(?![\w.])")
COMPARISON = re.compile(r"(?<![=!<>])(>=|<=|==|!=|>|<)(?![=~])")
SET_OPERATOR = re.compile(r"\b(and|or)\b")
RANGE = re.compile(r"\[(\d+)([smhd])\]")
OFFSET = re.compile(r"\s+offset\s+\d+[smhd]")
FOR = re.compile(r"^(\s+for:\s*)(\d+)([smh])\s*$")
SWAPS = {">": (">=", "<"), ">=": (">", "<"), "<": ("<=", ">"), "<=": ("<", ">"),
         "==": ("!=",), "!=": ("==",)}


@dataclass(frozen=True)
class Mutant:
    file: str
    line: int
    description: str
    text: str  # the whole mutated file


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _number_variants(token: str) -> list[str]:
    value = float(token)
    if value == 0:
        return ["1"]
    if 0.5 < value < 1:
        budget = 1 - value
        return [_fmt(1 - budget * 1.1), _fmt(1 - budget * 0.9)]
    return [_fmt(value * 1.1), _fmt(value * 0.9)]


def _duration_variants(amount: int, unit: str) -> list[str]:
    seconds = amount * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    out = []
    for factor in (0.5, 2):
        s = int(seconds * factor)
        out.append(f"{s // 60}m" if s % 60 == 0 else f"{s}s")
    return out


def _outside_strings(line: str) -> list[tuple[int, int]]:
    """Spans of the line that are not inside double-quoted strings (label values, regexes)."""
    spans, last = [], 0
    for m in STRING.finditer(line):
        spans.append((last, m.start()))
        last = m.end()
    spans.append((last, len(line)))
    return spans


def _in_expr(lines: list[str]) -> Iterator[int]:
    """Indexes of the lines that hold PromQL (`expr:` and its block continuation)."""
    inside, indent = False, 0
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("expr:"):
            inside, indent = True, len(line) - len(stripped)
            if stripped.rstrip() not in ("expr: |", "expr: >-", "expr: >"):
                yield i
                inside = False
            continue
        if inside:
            if stripped and len(line) - len(stripped) <= indent:
                inside = False
            elif stripped and not stripped.startswith("#"):
                yield i


def mutants_of(path: Path) -> Iterator[Mutant]:
    text = path.read_text()
    lines = text.splitlines(keepends=True)

    def with_line(i: int, new: str, description: str) -> Mutant:
        return Mutant(path.name, i + 1, description, "".join([*lines[:i], new, *lines[i + 1:]]))

    for i in _in_expr(lines):
        line = lines[i]
        if line.lstrip().startswith("expr:") and "expr: " in line:
            head = line.index("expr:") + len("expr:")
        else:
            head = 0
        for start, end in _outside_strings(line):
            start = max(start, head)
            segment = line[start:end]
            for m in NUMBER.finditer(segment):
                a, b = start + m.start(1), start + m.end(1)
                if line[a - 1:a] == "[" or re.match(r"[smhd]\]", line[b:b + 2]):
                    continue
                for variant in _number_variants(m.group(1)):
                    yield with_line(i, line[:a] + variant + line[b:],
                                    f"col {a + 1}: {m.group(1)} -> {variant}")
            for m in COMPARISON.finditer(segment):
                a, b = start + m.start(1), start + m.end(1)
                for swap in SWAPS[m.group(1)]:
                    yield with_line(i, line[:a] + swap + line[b:], f"'{m.group(1)}' -> '{swap}'")
            for m in SET_OPERATOR.finditer(segment):
                a, b = start + m.start(1), start + m.end(1)
                swap = "or" if m.group(1) == "and" else "and"
                yield with_line(i, line[:a] + swap + line[b:], f"'{m.group(1)}' -> '{swap}'")
            for m in RANGE.finditer(segment):
                a, b = start + m.start(), start + m.end()
                for variant in _duration_variants(int(m.group(1)), m.group(2)):
                    yield with_line(i, line[:a] + f"[{variant}]" + line[b:],
                                    f"{m.group(0)} -> [{variant}]")
            for m in OFFSET.finditer(segment):
                a, b = start + m.start(), start + m.end()
                yield with_line(i, line[:a] + line[b:], f"drop '{m.group(0).strip()}'")
    for i, line in enumerate(lines):
        m = FOR.match(line.rstrip("\n"))
        if m:
            for variant in _duration_variants(int(m.group(2)), m.group(3)):
                yield with_line(i, f"{m.group(1)}{variant}\n", f"for: {m.group(2)}{m.group(3)} -> {variant}")


def _promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("promtool")
    if binary is None:
        raise SystemExit("promtool is not installed (make promtool)")
    return subprocess.run([binary, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def run(only: list[str] | None = None) -> dict:
    """Mutate every rule file (or only the named ones, e.g. ["slo.yaml"])."""
    started = time.monotonic()
    rule_files = sorted(p for p in (PROMETHEUS / "rules").glob("*.yaml")
                        if p.name not in SKIPPED_FILES and (not only or p.name in only))
    killed, survived, invalid = [], [], []
    with tempfile.TemporaryDirectory(prefix="llmops-alert-mutants-") as tmp:
        scratch = Path(tmp) / "prometheus"
        shutil.copytree(PROMETHEUS, scratch)
        tests = sorted(p.name for p in (scratch / "tests").glob("*.test.yaml"))
        baseline = _promtool("test", "rules", *tests, cwd=scratch / "tests")
        # promtool loads only a test file's rule_files: run the ones that load the mutant
        loading = {name: [Path(r).name for r in
                          yaml.safe_load((scratch / "tests" / name).read_text())["rule_files"]]
                   for name in tests}
        if baseline.returncode != 0:
            raise SystemExit("promtool unit tests fail without mutation:\n" + baseline.stdout)
        for path in rule_files:
            target = scratch / "rules" / path.name
            covering = [t for t in tests if path.name in loading[t]]
            for mutant in mutants_of(path):
                target.write_text(mutant.text)
                if _promtool("check", "rules", target, cwd=scratch).returncode != 0:
                    invalid.append(mutant)
                elif covering and _promtool("test", "rules", *covering,
                                               cwd=scratch / "tests").returncode != 0:
                    killed.append(mutant)
                else:
                    survived.append(mutant)
            target.write_text(path.read_text())
    total = len(killed) + len(survived)
    score = 100.0 * len(killed) / total if total else 100.0
    minutes = (time.monotonic() - started) / 60
    lines = [f"area alerts: {len(killed)}/{total} mutants killed ({score:.1f}%), "
             f"{len(survived)} survived, {len(invalid)} invalid (promtool check rejects them); "
             f"{minutes:.1f} min", ""]
    lines += [f"SURVIVED {m.file}:{m.line} {m.description}" for m in survived]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print(lines[0], flush=True)
    return {"area": "alerts", "killed": len(killed), "total": total, "score": score}


if __name__ == "__main__":
    run(sys.argv[1:] or None)
