"""Imports only point down (ARCHITECTURE.md): vocabulary at the bottom, then policies, then
components and serving, then the stack programs, then the CLI; what runs in pods (serving/)
never imports the offline tooling or the stack programs."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what each package may import from the project (besides itself)
ALLOWED = {
    "vocabulary": set(),
    "policies": {"vocabulary"},
    "serving": {"vocabulary"},
    "components": {"vocabulary", "policies", "serving"},
    "stacks": {"vocabulary", "components"},
    "llmops": {"vocabulary", "policies", "components", "serving", "stacks"},
}


def project_imports(path: Path) -> set[str]:
    """Top-level project packages a module imports (absolute imports, at any depth)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_climbs_back_up_the_layers(package):
    climbing = {
        str(path.relative_to(ROOT)): sorted(imported - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
        if (imported := project_imports(path)) - ALLOWED[package] - {package}}
    assert not climbing, f"{package}/ may import only {sorted(ALLOWED[package])}: {climbing}"


def test_the_layer_check_sees_a_climbing_import(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from stacks.platform_stack import build_platform\n")
    assert project_imports(module) - ALLOWED["serving"] == {"stacks"}
