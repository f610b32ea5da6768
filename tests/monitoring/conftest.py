"""Fixtures for the monitoring tests: promtool, which CI requires and laptops may lack."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REQUIRE_ENV = "LLMOPS_REQUIRE_PROMTOOL"


@pytest.fixture(scope="session")
def promtool() -> Callable[..., subprocess.CompletedProcess]:
    """Run promtool; skip without it, unless LLMOPS_REQUIRE_PROMTOOL=1 (CI) makes that a failure."""
    binary = shutil.which("promtool")
    if binary is None:
        message = "promtool is not installed (Debian/Ubuntu: apt-get install prometheus; or `make promtool`)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{message}; {REQUIRE_ENV}=1 requires it", pytrace=False)
        pytest.skip(message)

    def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *map(str, args)], capture_output=True, text=True,
                              cwd=cwd, timeout=120, check=False)

    return run
