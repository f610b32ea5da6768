"""A pytest plugin for mutants the offline plan cannot see: the shipped stacks' plans are read
from a folder that outlives each mutant's pytest process.

Most test files of the deploy checks, the contract and the CLI use plans of the shipped stacks
(seconds each), and each mutant runs in a fresh pytest process, so a mutant in a module the
plan never imports would pay for the same plans again and again. `mutation/for_mutant.py`
loads this plugin (`-p mutation.plan_cache`) only for such a mutant, and for the baseline run
that fills the folder: `MUTATION_PLAN_CACHE` names it. The plans are the ones tests/
shipped_plans.py already shares between pytest-xdist workers (the `plans` fixture and the
in-process CLI runs of an unchanged shipped stack; anything with overrides is planned as
asked), so this plugin only points that sharing at the cache folder. `mutation/run.py` runs
the baseline twice, with the folder cold and warm, so a test whose plan depends on anything
else fails before any mutant runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.shipped_plans import share_through

if os.environ.get("MUTATION_PLAN_CACHE"):
    share_through(Path(os.environ["MUTATION_PLAN_CACHE"]))
