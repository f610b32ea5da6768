"""Which test files can notice a bug in a module: those that import it or name it.

A static graph, read with `ast` (no imports run): a test file reaches a project module when it,
a helper it imports (`tests/.../helpers.py`) or a `conftest.py` above it imports the module or
names it (its dotted name or its path in a string, e.g. `python -m llmops.cli`), directly or
through the project's own modules. The walk stops at the entry points that assemble whole
programs (`HUBS`): a test that runs a plan reaches every component through them, and selecting
every plan test for every component would make each surviving mutant pay the whole suite; such
tests are selected where they name what they test (a component's Pulumi type token, a CLI
subcommand they run), see `names_of`.

Test files are ordered cheap first (those that build a plan, then those that start the CLI in a
subprocess, last), and of equal cost those that import the module themselves first, so a mutant
killed by a quick test costs a quick run (`pytest -x`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("components", "llmops", "policies", "serving", "stacks", "vocabulary")
#: Entry points whose imports are not followed: each assembles a whole program (a stack, the
#: offline plan of all stacks, every CLI subcommand), so everything is behind them.
HUBS = frozenset({"stacks.platform_stack", "stacks.workloads_stack", "stacks.bootstrap.program",
                  "llmops.offline.plan", "llmops.offline.bootstrap_plan", "llmops.cli"})
#: What makes a test file slow to start: the CLI in a subprocess, or a plan of a stack.
SUBPROCESS = re.compile(r"\bsubprocess\b|\bllmops\(")
#: A way a test names a module: a literal it must contain (a quick filter), and the pattern.
Mention = tuple[str, re.Pattern[str]]
NAME = re.compile(r"[a-z_][\w.]*\w|[\w/]+\.py")  # a dotted module name or a path, in a string
PLANS = re.compile(r"\bplans\b|\brun_plan\(|\bplan_of\(")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module in the project's packages and in tests/."""
    files = [p for pkg in (*PACKAGES, "tests") for p in (REPO / pkg).rglob("*.py")]
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


@cache
def _source(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _resolve(name: str) -> str | None:
    """The project module `name` is, or the nearest package above it that is one."""
    modules = project_modules()
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


@cache
def edges(module: str) -> frozenset[str]:
    """Project modules `module` imports (anywhere in its body) or names in a string."""
    path = project_modules()[module]
    tree = ast.parse(_source(path), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(filter(None, (_resolve(a.name) for a in node.names)))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from pkg import module` imports the module itself
                found.add(_resolve(f"{base}.{alias.name}") or "")
            found.add(_resolve(base) or "")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (
                "." in node.value or "/" in node.value):
            for candidate in NAME.findall(node.value):
                dotted = candidate.removesuffix(".py").replace("/", ".")
                if dotted in project_modules() and "." in dotted:
                    found.add(dotted)
    found.discard("")
    found.discard(module)
    return frozenset(found)


def _conftests(test: Path) -> list[str]:
    """The conftest modules pytest loads for `test`: its directory's and every one above."""
    found, folder = [], test.parent
    while True:
        conftest = folder / "conftest.py"
        if conftest.is_file():
            found.append(module_name(conftest))
        if folder == REPO / "tests" or folder == REPO:
            break
        folder = folder.parent
    return found


@cache
def reached(test: Path) -> frozenset[str]:
    """Every project module `test` imports or names: itself, through its helpers and conftests,
    or through modules of the same package as one it imports (`llmops.offline.deploy_checks`
    imports its rule modules). Not across packages (a test of the cost report that happens to
    call a GPU helper of `components` is not a test of `components`), and not through a hub."""
    seen: set[str] = set()
    todo = [module_name(test), *_conftests(test)]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if module in HUBS:
            continue
        top = module.split(".")[0]
        todo.extend(n for n in edges(module) - seen if top == "tests" or n.split(".")[0] == top)
    return frozenset(seen)


def directly(test: Path) -> frozenset[str]:
    """The project modules `test` (or a helper or conftest of the tests) imports or names itself."""
    return frozenset(n for m in reached(test) if m.startswith("tests.") for n in edges(m))


@cache
def names_of(module: str) -> list[Mention]:
    """What a test that exercises `module` without importing it says: the Pulumi type token of
    a component it registers (tests that filter a plan on it), or the subcommand whose module
    is, or imports, `module` (`llmops("cost", ...)`, `main(["cost", ...])`)."""
    source = _source(project_modules()[module])
    patterns = [(token, re.compile(re.escape(token))) for token in
                re.findall(r'"(llmops:[a-z]+:[A-Za-z]+)"', source)]
    commands = [c for c in project_modules() if c.startswith("llmops.commands.")
                and (c == module or module in edges(c))]
    for command_module in commands:  # the subcommand's module, or one it imports
        for command in re.findall(r'add_parser\(\s*"([a-z-]+)"', _source(project_modules()[command_module])):
            patterns.append((f'"{command}"',
                             re.compile(rf'(llmops|main|run)\(\[?\s*"{re.escape(command)}"')))
    return patterns


@cache
@cache
def plan_modules() -> frozenset[str]:
    """Every project module an offline plan (`llmops.offline.plan.run_plan`) can import."""
    seen: set[str] = set()
    todo = ["llmops.offline.plan"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(edges(module) - seen)
    return frozenset(seen)


@cache
def resource_types_of(module: str) -> list[Mention]:
    """The Pulumi type tokens of the resources `module` creates (`aws.sqs.Queue(` ->
    "aws:sqs/queue:Queue"): how a plan test names what it checks. Used only for a module no
    test imports or names, where the plan tests are the only ones that can notice."""
    source = _source(project_modules()[module])
    patterns = [(f':{c}"', re.compile(rf'"aws:{m}/\w+:{c}"')) for m, c in
                re.findall(r"\baws\.(\w+)\.([A-Z]\w*)\(", source) if not c.endswith("Args")]
    patterns += [(f':{c}"', re.compile(rf'"kubernetes:[\w.]*/{v}:{c}"')) for v, c in
                 re.findall(r"\bk8s\.[\w.]*?\.(v\w+)\.([A-Z]\w*)\(", source)
                 if not c.endswith("Args")]
    return patterns


@cache
def test_files() -> list[Path]:
    """Every test file, but those of the mutation tool itself (they name modules as data)."""
    return sorted(t for t in (REPO / "tests").rglob("test_*.py")
                  if not re.search(r"^from mutation\b", _source(t), re.MULTILINE))


def cost(test: Path) -> int:
    """A rough start-up cost, for ordering: 1 for a plain test file, 5 for one whose file (or
    a conftest it loads, but the root one) builds plans, 10 for one that runs the CLI."""
    texts = [_source(test)] + [_source(project_modules()[c]) for c in _conftests(test)
                               if c != "tests.conftest"]
    if any(SUBPROCESS.search(t) for t in texts):
        return 10
    return 5 if any(PLANS.search(t) for t in texts) else 1


def _mentions(test: Path, mentions: list[Mention]) -> bool:
    source = _source(test)
    return any(literal in source and pattern.search(source) for literal, pattern in mentions)


@cache
def _tests_of(module: str) -> frozenset[Path]:
    found = {t for t in test_files() if module in reached(t) or _mentions(t, names_of(module))}
    if not any(module in directly(t) for t in found):
        found |= {t for t in test_files() if _mentions(t, resource_types_of(module))}
    if not found:  # reached only through the modules that import it: their tests
        found = {t for user in project_modules() if not user.startswith("tests.")
                 and module in edges(user) for t in _tests_of(user)}
    return frozenset(found)


def tests_for(modules: Iterable[str]) -> list[str]:
    """Test files (relative paths) that import or name any of `modules`, cheap first; for a
    module that no test imports or names directly (only through other modules), also the plan
    tests that name a resource type it creates; for one that no test reaches at all, the tests
    of the modules that import it."""
    wanted = set(modules)

    def order(test: Path) -> tuple:  # cheap first; of equal cost, those that import it first
        return cost(test), not wanted & directly(test), str(test)

    chosen = {t for module in wanted for t in _tests_of(module)}
    return [str(t.relative_to(REPO)) for t in sorted(chosen, key=order)]


def modules_in(paths: Iterable[str], excluded: Iterable[str] = ()) -> list[str]:
    """Dotted names of the .py files under `paths` (files or folders), minus `excluded`."""
    skip = {REPO / e for e in excluded}
    files: list[Path] = []
    for p in paths:
        target = REPO / p
        files.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    return [module_name(f) for f in files if f not in skip and "__pycache__" not in f.parts]
