"""`make mutate`'s areas stay true to the tree: every module and test file they name exists,
every module of the project is in an area (or in the short, explained list of those that are
not), and the tests run against a module's mutants include every test file that imports it, so
a new module or test file cannot silently drop out of the mutation score."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mutation import select
from mutation.run import AREAS, NOT_MUTATED
from mutation.select import PACKAGES, modules_in, project_modules

ROOT = Path(__file__).resolve().parents[1]


def area_files(area: str) -> set[str]:
    spec = AREAS[area]
    return {str(project_modules()[m].relative_to(ROOT)) for m in spec.module_names()}


def importers(module: str) -> set[str]:
    """Test files whose own text imports `module` (read with a regex, not with the selection
    code under test): `import a.b`, `from a.b import x`, `from a import b`."""
    package, _, leaf = module.rpartition(".")
    statement = re.compile(rf"^\s*(import {re.escape(module)}\b|from {re.escape(module)} import"
                           + (rf"|from {re.escape(package)} import [^\n]*\b{leaf}\b)" if package else ")"),
                           re.MULTILINE)
    return {str(t.relative_to(ROOT)) for t in (ROOT / "tests").rglob("test_*.py")
            if statement.search(t.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("area", list(AREAS))
def test_every_path_an_area_names_exists(area):
    spec = AREAS[area]
    missing = [p for p in (*spec.modules, *spec.excluded, *spec.tests) if not (ROOT / p).exists()]
    assert missing == []


def test_every_project_module_is_in_one_area_or_explained():
    owners: dict[str, list[str]] = {}
    for area in AREAS:
        for path in area_files(area):
            owners.setdefault(path, []).append(area)
    excluded = {str(project_modules()[m].relative_to(ROOT))
                for spec in AREAS.values() for m in modules_in(spec.excluded)}
    source = {str(p.relative_to(ROOT)) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
              if "__pycache__" not in p.parts}
    assert sorted(source - set(owners) - excluded - set(NOT_MUTATED)) == []
    assert {path: areas for path, areas in owners.items() if len(areas) > 1} == {}
    assert sorted(set(NOT_MUTATED) - source) == []


@pytest.mark.parametrize("area", list(AREAS))
def test_each_module_runs_every_test_file_that_imports_it(area):
    missed = {}
    for module in AREAS[area].module_names():
        selected = {str(f.relative_to(ROOT)) for t in AREAS[area].selected_tests([module])
                    for f in ((ROOT / t).rglob("test_*.py") if (ROOT / t).is_dir() else [ROOT / t])}
        assert selected, f"no test file imports or names {module}"
        if importers(module) - selected:
            missed[module] = sorted(importers(module) - selected)
    assert missed == {}


def test_a_hand_listed_area_runs_its_own_list_first():
    # the registry's files are listed quickest-killing first (a moto bucket per test)
    selected = AREAS["registry"].selected_tests(["serving.registry.store"])
    assert selected[:len(AREAS["registry"].tests)] == AREAS["registry"].tests
    assert "tests/test_runner_identity.py" in selected  # imports serving.registry.store


def test_a_plan_test_is_selected_where_it_names_the_resources_of_an_otherwise_untested_module():
    # components/interruption_queue.py is only ever checked through a plan: tests/test_cluster.py
    # names the SQS queue it creates, so it runs against the module's mutants.
    assert "tests/test_cluster.py" in select.tests_for(["components.interruption_queue"])


def test_cli_subcommand_modules_run_the_tests_that_run_the_subcommand():
    assert "tests/cli/test_cost.py" in select.tests_for(["llmops.commands.cost"])


def test_cheap_test_files_run_first_and_cli_subprocesses_last():
    selected = select.tests_for(["components.allocatable"])
    assert selected.index("tests/release/test_canary_target.py") < selected.index(
        "tests/test_capacity_checks.py") < selected.index("tests/cli/test_commands.py")


def test_a_mutant_runs_the_tests_of_the_module_it_changed_and_the_baseline_runs_all(tmp_path):
    from mutation.for_mutant import changed_modules, digest, tests_to_run

    for name in ("a.py", "b.py"):
        (tmp_path / name).write_text("X = 1\n")
    selection = {"all": ["t_a", "t_b", "t_ab"],
                 "modules": {"a.py": {"sha256": digest(tmp_path / "a.py"), "tests": ["t_a", "t_ab"]},
                             "b.py": {"sha256": digest(tmp_path / "b.py"), "tests": ["t_b", "t_ab"]}}}
    assert tests_to_run(selection, changed_modules(selection, tmp_path)) == ["t_a", "t_b", "t_ab"]
    (tmp_path / "b.py").write_text("X = 2\n")  # what cosmic-ray does to the mutated module
    assert tests_to_run(selection, changed_modules(selection, tmp_path)) == ["t_b", "t_ab"]


def test_a_mutant_that_ends_pytest_with_status_0_before_any_test_counts_as_noticed(tmp_path):
    import json
    import subprocess
    import sys

    from mutation.for_mutant import digest

    (tmp_path / "pkg.py").write_text("X = 1\n")
    (tmp_path / "conftest.py").write_text("import pkg  # as tests/conftest.py imports the plan harness\n")
    (tmp_path / "test_pkg.py").write_text("import pkg\n\n\ndef test_x():\n    assert pkg.X == 1\n")
    selection = tmp_path / "selection.json"
    selection.write_text(json.dumps({"all": ["test_pkg.py"], "modules": {
        "pkg.py": {"sha256": digest(tmp_path / "pkg.py"), "tests": ["test_pkg.py"], "in_plan": True}}}))

    def run() -> int:
        return subprocess.run([sys.executable, "-m", "mutation.for_mutant", str(selection)],
                              cwd=tmp_path, capture_output=True,
                              env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""}).returncode

    assert run() == 0
    # exits on import: pytest, still loading conftest.py, ends with status 0 and no test run
    (tmp_path / "pkg.py").write_text("import sys\n\nX = 1\nsys.exit(0)\n")
    assert run() == 1
