"""The CLI as a user runs it: a subprocess, its exit code, the lines it prints."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


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


def llmops(*args: str, cwd: Path = ROOT, timeout: float = 120) -> Run:
    result = subprocess.run([sys.executable, "-m", "llmops.cli", *args], capture_output=True,
                            text=True, cwd=cwd, timeout=timeout)
    run = Run(result.returncode, result.stdout, result.stderr)
    run.assert_clean()
    return run


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
