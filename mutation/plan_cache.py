"""A pytest plugin for mutants the offline plan cannot see: plans are read from a cache.

Most test files of the deploy checks, the contract and the CLI build plans of the shipped
stacks (seconds each), and each mutant runs in a fresh pytest process, so a mutant in a module
the plan never imports would pay for the same plans again and again. `mutation/for_mutant.py`
loads this plugin (`-p mutation.plan_cache`) only for such a mutant, and for the baseline run
that fills the cache: `MUTATION_PLAN_CACHE` names the folder. Only the shared plans of the
shipped stacks come from the cache (the `plans` fixture of tests/conftest.py, which most test
files use; a test that calls `run_plan` itself may watch what a run does, and runs it), keyed
by the stack and the environment (but pytest's own PYTEST_CURRENT_TEST, which names each test);
every call returns a fresh copy. `mutation/run.py` runs the baseline twice, with the cache cold
and warm, so a test whose plan depends on anything else fails before any mutant runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

from llmops.offline import plan as offline_plan

_run_plan = offline_plan.run_plan


def cached_run_plan(stack, overrides=None, stack_config=None, stacks_dir=offline_plan.STACKS_DIR):
    callers = {(f.f_code.co_name, Path(f.f_code.co_filename).name)  # (a comprehension's frame)
               for f in (sys._getframe(1), sys._getframe(2))}
    if (stacks_dir != offline_plan.STACKS_DIR or stack_config is not None
            or ("plans", "conftest.py") not in callers):
        return _run_plan(stack, overrides, stack_config, stacks_dir)
    environment = sorted((k, v) for k, v in os.environ.items() if not k.startswith("PYTEST_"))
    key = hashlib.sha256(json.dumps([stack, overrides, environment], sort_keys=True,
                                    default=repr).encode())
    path = Path(os.environ["MUTATION_PLAN_CACHE"]) / f"{key.hexdigest()}.pickle"
    if path.is_file():
        return pickle.loads(path.read_bytes())
    plan = _run_plan(stack, overrides, stack_config, stacks_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_bytes(pickle.dumps(plan))
    path.with_suffix(".tmp").replace(path)
    return plan


if os.environ.get("MUTATION_PLAN_CACHE"):
    offline_plan.run_plan = cached_run_plan
