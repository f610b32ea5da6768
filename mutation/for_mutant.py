"""The test command cosmic-ray runs for each mutant: pytest on the tests of the mutated module.

`python -m mutation.for_mutant SELECTION.json` finds the module that differs from the digest
recorded when the session was set up (cosmic-ray edits one module in place per mutant) and
runs the test files selected for that module (`mutation/select.py`); with no module changed
(cosmic-ray's baseline) it runs every test file of the area. So a surviving mutant pays for
its own module's tests, not for the whole area's. A mutant in a module that no offline plan
imports reads the shipped stacks' plans from a cache (`mutation/plan_cache.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

RAN = re.compile(r"\b\d+ passed\b")  # in pytest -q's summary line
PYTEST = ["-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def changed_modules(selection: dict, tree: Path) -> list[str]:
    return [m for m, entry in selection["modules"].items() if digest(tree / m) != entry["sha256"]]


def tests_to_run(selection: dict, changed: list[str]) -> list[str]:
    if not changed:
        return selection["all"]
    return list(dict.fromkeys(t for m in changed for t in selection["modules"][m]["tests"]))


def main() -> None:
    selection = json.loads(Path(sys.argv[1]).read_text())
    changed = changed_modules(selection, Path.cwd())
    tests = tests_to_run(selection, changed)
    if not tests:  # no test imports or names the module: nothing can notice the mutant
        sys.exit(0)
    plugins = []
    if selection.get("plan_cache") and not any(selection["modules"][m]["in_plan"] for m in changed):
        os.environ["MUTATION_PLAN_CACHE"] = selection["plan_cache"]
        plugins = ["-p", "mutation.plan_cache"]
    # cosmic-ray kills the process group on a timeout, this child included
    result = subprocess.run([sys.executable, *PYTEST, *plugins, *tests], capture_output=True, text=True)
    sys.stdout.write(result.stdout + result.stderr)
    if result.returncode == 0 and not RAN.search(result.stdout):
        # e.g. a mutant that calls sys.exit(0) on import ends pytest "successfully" before any test
        print("pytest exited 0 without running the tests: the mutant is noticed")
        sys.exit(1)
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
