"""The offline plans of the shipped stacks (stacks/Pulumi.<env>.yaml as they are), planned
once per test run and handed out as copies.

A plan of an unchanged stack is the same every time (tests/test_offline_harness.py plans one
twice and compares), and planning one costs about a second of CPU, so the `plans` fixture
and the in-process CLI runs of tests/cli/conftest.py take them from here. Under pytest-xdist
the first worker to need a stack plans it and leaves it pickled in the run's shared temp dir
(pytest-xdist's documented `tmp_path_factory.getbasetemp().parent`), the others load it.
Every caller gets its own unpickled copy, so a test (or command) that changes one changes
nothing for anyone else. Plans with overrides or another stacks dir are never shared: they
run as they are asked for.

A separate module (not a conftest) so every importer shares one instance of its state.
"""

from __future__ import annotations

import fcntl
import pickle
from pathlib import Path

from llmops.offline.plan import Plan, run_plan
from vocabulary.stackfile import STACKS_DIR

STACKS = ("dev", "staging", "prod")

#: where the workers of this run meet (None: one process, nothing to share)
_shared: Path | None = None
#: this process's pickled plans, by stack
_pickled: dict[str, bytes] = {}


def share_through(directory: Path) -> None:
    """Meet the run's other workers in `directory` (the conftest calls it once per worker)."""
    global _shared
    directory.mkdir(exist_ok=True)
    _shared = directory


def shipped_plan(stack: str) -> Plan:
    """A fresh copy of the shipped stack's plan."""
    if stack not in _pickled:
        _pickled[stack] = _plan_once(stack) if _shared else pickle.dumps(run_plan(stack))
    return pickle.loads(_pickled[stack])


def is_shipped(stack: str, overrides: object, stack_config: object, stacks_dir: Path) -> bool:
    """Whether `run_plan(stack, overrides, stack_config, stacks_dir)` plans a shipped stack as is."""
    return (stack in STACKS and overrides is None and stack_config is None
            and Path(stacks_dir).resolve() == STACKS_DIR.resolve())


def _plan_once(stack: str) -> bytes:
    """The pickled plan from the shared dir, planned and stored there by whoever comes first."""
    assert _shared is not None
    done = _shared / f"{stack}.pickle"
    with (_shared / f"{stack}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.is_file():
            partial = _shared / f"{stack}.pickle.partial"
            partial.write_bytes(pickle.dumps(run_plan(stack)))
            partial.rename(done)
        return done.read_bytes()
