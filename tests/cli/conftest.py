"""The CLI as a user runs it: its exit code and the lines it prints on stdout and stderr.

`llmops(...)` runs the command line's own entry point, `llmops.cli.main(argv)`, in the test's
process (a subprocess pays ~2 s of CPU importing Pulumi per run); `llmops(..., process=True)`
runs `python -m llmops.cli` as a real process, for the contract only a process shows (the
interpreter's exit, what it prints while tearing down). The pipe and Ctrl-C tests run their
own processes. In this process a command that plans a shipped stack as it is gets the run's
plan of it (tests/shipped_plans.py) instead of planning it again; edited copies of the stack
files are planned as asked."""

from __future__ import annotations

import contextlib
import gc
import io
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import llmops.commands.cost
import llmops.commands.diff
import llmops.commands.outputs
import llmops.commands.plan
from llmops.offline.plan import Plan
from tests.shipped_plans import is_shipped, shipped_plan
from vocabulary.stackfile import STACKS_DIR, StackConfig

ROOT = Path(__file__).resolve().parents[2]
#: the commands that plan a stack (each imported `run_plan` by name)
PLANNING_COMMANDS = (llmops.commands.cost, llmops.commands.diff, llmops.commands.outputs,
                     llmops.commands.plan)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def first_line(self) -> str:
        """The first line a user sees: of stderr on failure, of stdout on success."""
        text = self.stderr if self.returncode else self.stdout
        return text.splitlines()[0] if text.strip() else ""

    def assert_clean(self) -> None:
        assert "Traceback" not in self.stderr + self.stdout, self.stderr
        assert "Task was destroyed" not in self.stderr, self.stderr


def llmops(*args: str, cwd: Path = ROOT, timeout: float = 120, process: bool = False) -> Run:
    """`llmops ARGS` run from `cwd`: in this process, or as `python -m llmops.cli` (`process`)."""
    if process:
        result = subprocess.run([sys.executable, "-m", "llmops.cli", *args], capture_output=True,
                                text=True, cwd=cwd, timeout=timeout)
        run = Run(result.returncode, result.stdout, result.stderr)
    else:
        run = _in_process(list(args), cwd)
    run.assert_clean()
    return run


def _in_process(argv: list[str], cwd: Path) -> Run:
    """`main(argv)` with stdout and stderr captured, as the console script would run it:
    SystemExit (argparse, --version) is the exit code. Warnings Python logs with no handler
    set (asyncio's "Task was destroyed...") go to stderr as in a process: the handler below
    stands in for logging's last resort. Except those the cycle collector triggers: it may
    be collecting an earlier test's garbage, and only a process (the `process=True` runs,
    the pipe and Ctrl-C tests) can tell what a command leaves behind at exit."""
    from llmops.cli import main

    stdout, stderr = io.StringIO(), io.StringIO()
    patch = pytest.MonkeyPatch()
    for module in PLANNING_COMMANDS:
        patch.setattr(module, "run_plan", _shipped_plans_reused(module.run_plan))
    last_resort = logging.StreamHandler(stderr)
    last_resort.setLevel(logging.WARNING)
    last_resort.addFilter(lambda _: not _collecting)
    root = logging.getLogger()
    root.addHandler(last_resort)
    previous = Path.cwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
    finally:
        os.chdir(previous)
        root.removeHandler(last_resort)
        patch.undo()
    return Run(code, stdout.getvalue(), stderr.getvalue())


_collecting = False


def _track_collections(phase: str, _: dict) -> None:
    global _collecting
    _collecting = phase == "start"


gc.callbacks.append(_track_collections)


def _shipped_plans_reused(real: Callable[..., Plan]) -> Callable[..., Plan]:
    """A command's `run_plan` that takes a shipped stack's unchanged plan from the run's
    (tests/shipped_plans.py: planned once, a fresh copy each time); any other plan (an edited
    copy of the stacks, overrides) runs as it is asked for."""
    def run_plan(stack: str, overrides: dict[str, Any] | None = None,
                 stack_config: StackConfig | None = None, stacks_dir: Path = STACKS_DIR) -> Plan:
        if is_shipped(stack, overrides, stack_config, stacks_dir):
            return shipped_plan(stack)
        return real(stack, overrides, stack_config, stacks_dir)
    return run_plan


@pytest.fixture
def stacks_dir(tmp_path: Path) -> Path:
    """A copy of the shipped stack files (environment files, workloads secrets, registry)."""
    target = tmp_path / "stacks"
    target.mkdir()
    for path in (ROOT / "stacks").glob("*.yaml"):
        shutil.copy(path, target / path.name)
    shutil.copytree(ROOT / "stacks" / "workloads", target / "workloads",
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return target


def edit_config(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Load a Pulumi.<stack>.yaml, let `change` edit its `config:` mapping, write it back."""
    document = yaml.safe_load(path.read_text())
    change(document["config"])
    path.write_text(yaml.safe_dump(document, sort_keys=False))
