"""Deploy checks of the CI workflows that apply the stacks: what a job on the in-VPC
CodeBuild runner can run, and where each action looks for the files it is given.

Both read `.github/workflows` from the repository (offline, a few milliseconds) and the
runner image from the plan's CodeBuild project:

- `ci-runner-image`: a job on the CodeBuild runner runs in the project's image, not on
  GitHub's. actions/setup-python downloads builds made for GitHub's Ubuntu images only
  (actions/setup-python issues 460, 750, 1214: none for Amazon Linux), and `make setup`
  needs an interpreter the image ships.
- `ci-paths`: pulumi/actions runs the CLI with cwd = `work-dir` (src/main.ts at v6.6.1:
  `resolve(GITHUB_WORKSPACE, workDir)` handed to `LocalWorkspace`), so `policyPacks` and
  `policyPackConfigs` are relative to it, and `work-dir` must hold a Pulumi.yaml.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from llmops.offline.deploy_checks.base import CODEBUILD_PROJECT, Finding, Rule
from llmops.offline.plan import Plan
from vocabulary.stackfile import PROJECT_ROOT, available_stacks

WORKFLOWS_DIR = PROJECT_ROOT / ".github" / "workflows"
PULUMI_ACTION = "pulumi/actions@"
SETUP_PYTHON = "actions/setup-python@"
EXPRESSION = re.compile(r"\$\{\{\s*([\w.-]+)\s*\}\}")
MAKE_SETUP = re.compile(r"\bmake\s+setup\b(?P<args>[^\n;&|]*)")
PYTHON_ARG = re.compile(r"""\bPYTHON=["']?(?P<python>[^\s"']+)""")


@dataclass(frozen=True)
class RunnerImage:
    """What a CodeBuild curated image runs: its OS family and the Pythons on its PATH."""

    os_family: str
    pythons: frozenset[str]
    #: what `python3` is (pyenv global)
    default_python: str


_PYENV_PYTHONS = frozenset({"3.9", "3.10", "3.11", "3.12", "3.13", "3.14"})
#: aws/aws-codebuild-docker-images at 1590e48 (2026-04-09): both install these Pythons
#: through pyenv and make 3.11 global (ubuntu/standard/7.0/Dockerfile stage std_v7 on
#: ubuntu:22.04; al/x86_64/standard/5.0/Dockerfile on amazonlinux:2023).
RUNNER_IMAGES: dict[str, RunnerImage] = {
    "aws/codebuild/standard:7.0": RunnerImage("ubuntu", _PYENV_PYTHONS, "3.11"),
    "aws/codebuild/amazonlinux-x86_64-standard:5.0": RunnerImage("amazonlinux", _PYENV_PYTHONS, "3.11"),
}


def load_workflows(directory: Path = WORKFLOWS_DIR) -> dict[str, dict[str, Any]]:
    """file name -> parsed workflow, for every workflow in the directory."""
    return {path.name: yaml.safe_load(path.read_text()) or {}
            for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")])}


@cache
def _repository_workflows() -> dict[str, dict[str, Any]]:
    return load_workflows()


def _jobs(workflows: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for file, document in workflows.items():
        for name, job in (document.get("jobs") or {}).items():
            yield file, name, job


def _on_codebuild(job: Mapping[str, Any]) -> bool:
    runs_on = job.get("runs-on")
    return isinstance(runs_on, str) and runs_on.startswith("codebuild-")


def _minimum_python(root: Path) -> tuple[int, int]:
    """The lowest Python pyproject.toml's requires-python (">=3.11") accepts."""
    requires = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    found = re.search(r">=\s*(\d+)\.(\d+)", requires)
    return (int(found[1]), int(found[2])) if found else (3, 0)


def _expand_env(text: str, env: Mapping[str, Any]) -> str:
    """`$NAME` / `${NAME}` from the workflow's, job's and step's env, as the shell would."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m[1], m[0])), text)


def runner_image_findings(workflows: Mapping[str, Mapping[str, Any]], image: str, stack: str,
                          root: Path = PROJECT_ROOT) -> list[Finding]:
    """Every step of every job on the CodeBuild runner that the runner's image cannot run."""
    facts = RUNNER_IMAGES.get(image)
    minimum = _minimum_python(root)
    findings: list[Finding] = []
    for file, name, job in _jobs(workflows):
        if not _on_codebuild(job):
            continue
        where = f"{file}:{name}"

        def finding(message: str, where: str = where) -> None:
            findings.append(Finding("ci-runner-image", stack, where, message))

        if facts is None:
            finding(f"runs on the CodeBuild runner, whose image {image!r} is not one whose tools "
                    f"were verified ({', '.join(RUNNER_IMAGES)}); set llmops:ci.runner.image to "
                    "one of them or add the image's facts to RUNNER_IMAGES")
            continue
        env = {**workflows[file].get("env", {}), **job.get("env", {})}
        python_given = False
        for step in job.get("steps", []):
            if str(step.get("uses", "")).startswith(SETUP_PYTHON):
                python_given = True
                if facts.os_family != "ubuntu":
                    finding(f"uses actions/setup-python on {image} ({facts.os_family}): it has "
                            "Python builds for GitHub's Ubuntu images only (actions/setup-python "
                            "issues 460, 750); drop it and install with the image's Python: "
                            "`make setup PYTHON=python3.11`")
            for match in MAKE_SETUP.finditer(str(step.get("run", ""))):
                if python_given:
                    continue
                given = PYTHON_ARG.search(match["args"])
                python = _expand_env(given["python"], {**env, **step.get("env", {})}) if given else "python3"
                version = facts.default_python if python == "python3" else python.removeprefix("python")
                if version not in facts.pythons:
                    finding(f"`make setup` uses {python}, which {image} does not ship (it has "
                            f"{', '.join(sorted(facts.pythons))} through pyenv)")
                elif tuple(map(int, version.split("."))) < minimum:
                    finding(f"`make setup` uses Python {version}; pyproject.toml requires "
                            f">={minimum[0]}.{minimum[1]}")
    return findings


def _callers(workflows: Mapping[str, Mapping[str, Any]], file: str) -> list[dict[str, Any]]:
    """The `with:` of every job that calls this reusable workflow."""
    return [dict(job.get("with") or {}) for _, _, job in _jobs(workflows)
            if str(job.get("uses", "")).endswith(f".github/workflows/{file}")]


def _bindings(workflows: Mapping[str, Mapping[str, Any]], file: str,
              job: Mapping[str, Any], stacks: list[str]) -> list[dict[str, str]]:
    """Each set of values the job's expressions take: matrix rows, callers' inputs, or a
    workflow_dispatch input's options."""
    rows = (job.get("strategy") or {}).get("matrix", {}).get("include") or [{}]
    triggers = workflows[file].get("on", workflows[file].get(True)) or {}
    inputs: list[dict[str, Any]] = _callers(workflows, file) if isinstance(triggers, dict) and \
        "workflow_call" in triggers else []
    dispatch = (triggers.get("workflow_dispatch") or {}) if isinstance(triggers, dict) else {}
    for key, spec in (dispatch.get("inputs") or {}).items():
        options = spec.get("options") or (stacks if key == "stack" else None)
        if options:
            inputs = [{**given, key: option} for given in inputs or [{}] for option in options]
    bindings = []
    for row in rows:
        for given in inputs or [{}]:
            bindings.append({**{f"matrix.{k}": str(v) for k, v in row.items()},
                             **{f"inputs.{k}": str(v) for k, v in given.items()}})
    return bindings


def _split(value: Any) -> list[str]:
    """pulumi/actions' list inputs: lines, each split on ';' (src/config.ts, parseSemicolorToArray)."""
    return [part.strip() for line in str(value or "").splitlines() for part in line.split(";")
            if part.strip()]


def path_findings(workflows: Mapping[str, Mapping[str, Any]], stack: str,
                  root: Path = PROJECT_ROOT) -> list[Finding]:
    """pulumi/actions steps whose work-dir, policy packs or pack configs do not exist where
    the action looks for them."""
    stacks = available_stacks(root / "stacks")
    findings: list[Finding] = []
    for file, name, job in _jobs(workflows):
        for step in job.get("steps", []):
            if not str(step.get("uses", "")).startswith(PULUMI_ACTION):
                continue
            given = step.get("with") or {}
            for binding in _bindings(workflows, file, job, stacks):
                def resolve(text: str, binding: dict[str, str] = binding) -> str | None:
                    resolved = EXPRESSION.sub(lambda m: binding.get(m[1], m[0]), text)
                    return None if "${{" in resolved else resolved

                work_dir = resolve(str(given.get("work-dir", "./")))
                if work_dir is None:
                    continue
                base = (root / work_dir).resolve()
                where = f"{file}:{name}"
                if not (base / "Pulumi.yaml").is_file():
                    findings.append(Finding("ci-paths", stack, where,
                                            f"work-dir {work_dir!r} holds no Pulumi.yaml"))
                wanted = [(p, "PulumiPolicy.yaml", "policy pack") for p in _split(given.get("policyPacks"))]
                wanted += [(p, None, "policy pack config") for p in _split(given.get("policyPackConfigs"))]
                for raw, marker, what in wanted:
                    path = resolve(raw)
                    if path is None:
                        continue
                    target = (base / path).resolve()
                    exists = (target / marker).is_file() if marker else target.is_file()
                    if not exists:
                        shown = target.relative_to(root) if target.is_relative_to(root) else target
                        findings.append(Finding(
                            "ci-paths", stack, where,
                            f"{what} {path!r} resolves to {shown} (pulumi/actions runs the CLI in "
                            f"work-dir {work_dir!r}), which does not exist; give it relative to "
                            "work-dir"))
    return sorted(set(findings), key=lambda f: (f.resource, f.message))


def _runner_image(plan: Plan) -> str | None:
    projects = plan.of_type(CODEBUILD_PROJECT)
    return projects[0].inputs.get("environment", {}).get("image") if projects else None


# -- rules ----------------------------------------------------------------------------------
def ci_runner_image(plan: Plan) -> Iterator[Finding]:
    """Jobs on this environment's CodeBuild runner only use what its image provides."""
    image = _runner_image(plan)
    if image is not None:
        yield from runner_image_findings(_repository_workflows(), image, plan.stack)


def ci_paths(plan: Plan) -> Iterator[Finding]:
    """Paths given to pulumi/actions exist relative to the action's work-dir."""
    yield from path_findings(_repository_workflows(), plan.stack)


RULES: tuple[Rule, ...] = (ci_runner_image, ci_paths)
