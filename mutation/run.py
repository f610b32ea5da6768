"""Mutation testing per area: `python -m mutation.run [AREA ...]` (or `make mutate`).

Python areas run cosmic-ray (https://github.com/sixty-north/cosmic-ray): it plants one small
bug (a mutant) at a time in the area's modules and runs the area's targeted tests; a mutant
the tests do not notice "survives". Cosmic-ray edits the module files in place, so each area
runs in a scratch copy of the work tree under `.mutation/<area>/`, never in the checkout.
The `alerts` area is YAML: `mutation/alerts.py` perturbs the rule files and runs promtool.

Results: `.mutation/<area>/report.txt` (score, then every survivor with its diff).
A development tool: not part of `make test` or CI (minutes of CPU per area).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
#: Operators left out: swaps nobody writes by mistake, each costing a test run to kill.
#: Arithmetic is swapped only for arithmetic (the bitwise `|` here is type unions), and a
#: comparison only for its realistic slip: `<` for `<=` or `>`..., `==` for `!=`, `in` for
#: `not in`, `is` for `is not` -- not `<` for `in`.
EXOTIC = "(Pow|RShift|LShift|BitOr|BitAnd|BitXor)"
ORDER, EQUALITY, MEMBERSHIP, IDENTITY = "(Lt|LtE|Gt|GtE)", "(Eq|NotEq)", "(In|NotIn)", "(Is|IsNot)"
EXCLUDED_OPERATORS = (
    rf"core/ReplaceBinaryOperator_{EXOTIC}_\w+",
    rf"core/ReplaceBinaryOperator_\w+_{EXOTIC}",
    *(rf"core/ReplaceComparisonOperator_{a}_{b}$"
      for a in (ORDER, EQUALITY, MEMBERSHIP, IDENTITY)
      for b in (ORDER, EQUALITY, MEMBERSHIP, IDENTITY) if a != b),
    r"core/ReplaceUnaryOperator_\w+_(Invert|UAdd|Not)$",  # keep: dropping a `not` or a `-`
)
PYTEST = "-m pytest -x -q -p no:cacheprovider -p no:randomly"


@dataclass(frozen=True)
class Area:
    """What to mutate and which tests are expected to notice: each mutant runs the test files
    that import or name its own module (`mutation/select.py`), cheap first. `tests`, where
    given, run first for every module of the area, in their order (kept where it saves time)."""

    modules: tuple[str, ...]
    tests: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    timeout: float = 300.0

    def module_names(self) -> list[str]:
        from mutation.select import modules_in

        return modules_in(self.modules, self.excluded)

    def selected_tests(self, modules: list[str] | None = None) -> tuple[str, ...]:
        """The hand-listed tests first (in their order), then every other test file that
        imports or names one of `modules` (default: all of the area's)."""
        from mutation.select import REPO, tests_for

        listed = {str(f.relative_to(REPO)) for t in self.tests for f in
                  ((REPO / t).rglob("test_*.py") if (REPO / t).is_dir() else [REPO / t])}
        found = tests_for(self.module_names() if modules is None else modules)
        return (*self.tests, *(t for t in found if t not in listed))


AREAS: dict[str, Area] = {
    "config": Area(
        modules=("vocabulary/config",),
        excluded=("vocabulary/config/__init__.py",),
        # (tests/test_config_errors.py proves the same errors stop a whole plan; too slow here)
        tests=("tests/config", "tests/monitoring/test_monitoring_config.py"),
    ),
    "policies": Area(
        modules=("policies/rules.py", "policies/aws_network.py", "policies/aws_storage.py",
                 "policies/aws_compute.py", "policies/aws_iam.py", "policies/kubernetes.py",
                 "policies/gpu_cost.py", "policies/governance.py", "policies/tagging.py"),
        tests=("tests/policies/test_policy_boundaries.py",
               "tests/policies/test_policy_aws_network_iam_tags.py",
               "tests/policies/test_policy_aws_storage_compute.py",
               "tests/policies/test_policy_kubernetes.py",
               "tests/policies/test_policy_gpu_governance.py"),
    ),
    "isolation": Area(
        modules=("policies/isolation.py", "policies/pod_security_standards.py"),
        tests=("tests/policies/test_pod_security_boundaries.py", "tests/policies/test_policy_isolation.py",
               "tests/test_pod_security.py", "tests/test_serving_admission.py"),
    ),
    "gateway": Area(
        modules=("serving/gateway/auth.py", "serving/gateway/ratelimit.py",
                 "serving/gateway/cache.py", "serving/gateway/routing.py", "serving/gateway/pii.py"),
        tests=("tests/gateway",),
    ),
    "registry": Area(
        modules=("serving/registry",),
        excluded=("serving/registry/__init__.py",),
        # Every test pays a moto bucket (~0.3 s) and no single test dominates (30 s in all),
        # so order is what saves time: -x stops at the first failure and only survivors pay
        # the whole suite. The quick edge cases first, then the fetcher (fetch.py holds a
        # third of the mutants and cache fills use it), the node cache (another third), then
        # the registry's verbs. Every file of tests/registry is listed: add new ones here.
        tests=("tests/registry/test_boundaries.py",
               "tests/registry/test_fetch.py", "tests/registry/test_download.py",
               "tests/registry/test_cache.py", "tests/registry/test_register.py",
               "tests/registry/test_promote.py", "tests/registry/test_bad_input.py",
               "tests/registry/test_cli.py", "tests/registry/test_pod_cache_wiring.py"),
        # ~5x the suite on a shared machine: a mutant that hangs a lock wait or a retry loop
        # is a kill after 150 s instead of 300 s, and a slow but sane run is not cut short.
        timeout=150.0,
    ),
    # components/, split by concern so that runs and reports stay readable.
    "engines": Area(
        modules=("components/engines", "components/model_server.py", "components/serving.py",
                 "components/model_cache.py", "components/model_release.py",
                 "components/cold_start.py", "components/image_cache.py",
                 "components/image_prepull.py"),
        # a maintainer's script that regenerates the flag lists from upstream sources
        excluded=("components/engines/data/extract_flags.py",),
    ),
    "capacity": Area(
        modules=("components/gpu_nodes.py", "components/nodepools.py", "components/allocatable.py",
                 "components/interruption_queue.py", "components/launch_template.py",
                 "components/cluster.py", "components/metrics_server.py",
                 "components/storage_class.py", "components/spot_role.py"),
    ),
    "network_iam": Area(
        modules=("components/network.py", "components/network_policies.py", "components/iam.py",
                 "components/workload_roles.py", "components/deploy_roles.py",
                 "components/github_oidc.py", "components/pod_security.py",
                 "components/serving_admission.py", "components/state_backend.py",
                 "components/storage.py", "components/log_encryption.py",
                 "components/tagging.py", "components/ci_runner.py",
                 "components/release_roles.py"),
    ),
    "traffic": Area(
        modules=("components/router.py", "components/gateway.py", "components/gateway_routes.py",
                 "components/external_dns.py"),
    ),
    "monitoring": Area(
        modules=("components/monitoring.py", "components/alert_rules.py",
                 "components/alertmanager_config.py", "components/log_shipping.py",
                 "components/container_logs.py"),
    ),
    "deploy_checks": Area(modules=("llmops/offline/deploy_checks",)),
    # the outputs contract and what checks a plan's outputs against it
    "contract": Area(
        modules=("vocabulary/contract.py", "vocabulary/outputs_schema.py",
                 "components/published_outputs.py", "llmops/offline/published.py"),
    ),
    # the CLI and the offline helpers only it uses (costs, diffs, notes, output paths...)
    "cli": Area(
        modules=("llmops/cli.py", "llmops/commands", "llmops/offline/cost.py",
                 "llmops/offline/platform_cost.py", "llmops/offline/plan_diff.py",
                 "llmops/offline/output_paths.py", "llmops/offline/notes.py",
                 "llmops/offline/text_table.py", "llmops/offline/cold_start_report.py",
                 "llmops/offline/first_up.py", "llmops/offline/manifests.py",
                 "llmops/offline/secrets.py", "llmops/offline/registry_file.py"),
    ),
    # The rest of the code: areas defined so that `make mutate` covers every package; their
    # scores are not measured yet (docs/testing.md).
    "offline_harness": Area(
        modules=("llmops/offline/plan.py", "llmops/offline/mocks.py", "llmops/offline/recorder.py",
                 "llmops/offline/crd_schema.py", "llmops/offline/bootstrap_plan.py"),
    ),
    "preflight": Area(modules=("llmops/preflight",), excluded=("llmops/preflight/__init__.py",)),
    "policy_engine": Area(
        modules=("policies/runner.py", "policies/pack.py", "policies/catalog.py",
                 "policies/settings.py", "policies/network_reachability.py"),
    ),
    "vocabulary": Area(
        modules=("vocabulary/gpu_instances.py", "vocabulary/cpu_instances.py", "vocabulary/stackfile.py",
                 "vocabulary/strict_yaml.py", "vocabulary/subnets.py", "vocabulary/errors.py"),
    ),
    "stacks": Area(
        modules=("stacks/platform_stack.py", "stacks/workloads_stack.py", "stacks/bootstrap"),
        excluded=("stacks/bootstrap/__init__.py", "stacks/bootstrap/__main__.py"),
    ),
    "gateway_server": Area(
        modules=("serving/gateway",),
        excluded=("serving/gateway/__init__.py", "serving/gateway/auth.py",
                  "serving/gateway/ratelimit.py", "serving/gateway/cache.py",
                  "serving/gateway/routing.py", "serving/gateway/pii.py"),  # the `gateway` area's
    ),
    "release": Area(modules=("serving/release",), excluded=("serving/release/__init__.py",)),
    "client": Area(
        modules=("serving/client.py", "serving/client_transport.py", "serving/evaluate.py",
                 "serving/evaluation"),
        excluded=("serving/evaluation/__init__.py",),
    ),
}
ALL = (*AREAS, "alerts")
#: Project modules in no area, and why: nothing in them a test could tell apart from a mutant.
NOT_MUTATED = {
    # empty package markers, or one docstring / re-export line
    **dict.fromkeys(("components/__init__.py", "llmops/__init__.py", "llmops/offline/__init__.py",
                     "llmops/preflight/__init__.py", "policies/__init__.py", "serving/__init__.py",
                     "stacks/__init__.py", "vocabulary/__init__.py"), "package marker"),
    # `python -m` / `pulumi` entry points: one call (policies/__main__.py starts the analyzer
    # server and never returns; the rules it serves are the `policies` areas')
    **dict.fromkeys(("stacks/__main__.py", "stacks/workloads/__main__.py",
                     "policies/__main__.py"), "entry point"),
}


def scratch_copy(area: str, rev: str | None = None) -> Path:
    """A fresh copy of the work tree (uncommitted changes included), or of commit `rev`, to
    mutate in place."""
    target = WORK / area / "tree"
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    if rev:
        target.mkdir()
        archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
        return target
    ignore = shutil.ignore_patterns(".git", ".venv", ".mutation", "__pycache__", "*.egg-info",
                                    ".pytest_cache", ".ruff_cache", "build", "out")
    shutil.copytree(REPO, target, ignore=ignore)
    return target


def write_selection(area: str, spec: Area, tree: Path) -> Path:
    """Each module's digest (to tell which one a mutant changed) and its selected tests."""
    from mutation.for_mutant import digest
    from mutation.select import plan_modules, project_modules

    modules = {}
    for name in spec.module_names():
        path = str(project_modules()[name].relative_to(REPO))
        modules[path] = {"sha256": digest(tree / path), "tests": list(spec.selected_tests([name])),
                         "in_plan": name in plan_modules()}
    selection = WORK / area / "selection.json"
    selection.write_text(json.dumps({"all": list(spec.selected_tests()), "modules": modules,
                                     "plan_cache": str(WORK / area / "plans")}, indent=1))
    return selection


def write_config(area: str, spec: Area, command: str, timeout: float | None = None) -> Path:
    def toml_list(items) -> str:
        return "[" + ", ".join(f"'{i}'" for i in items) + "]"

    config = WORK / area / "cosmic-ray.toml"
    config.write_text(f"""[cosmic-ray]
module-path = {toml_list(spec.modules)}
excluded-modules = {toml_list(spec.excluded)}
timeout = {timeout or spec.timeout}
test-command = "{command}"

[cosmic-ray.distributor]
name = "local"

[cosmic-ray.filters.operators-filter]
exclude-operators = {toml_list(EXCLUDED_OPERATORS)}
""")
    return config


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def keep_every(session: Path, n: int) -> None:
    """A deterministic sample: every n-th pending mutant (in module/line order); the rest are
    marked skipped, so before/after runs of one revision's modules test the same mutants."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(db.pending_work_items, key=lambda item: [
            (str(m.module_path), m.start_pos, m.operator_name, m.occurrence) for m in item.mutations])
        print(f"{len(pending)} mutants, testing every {n}th: {len(pending[::n])}", flush=True)
        for i, item in enumerate(pending):
            if i % n:
                db.set_result(item.job_id, WorkResult(output="not sampled",
                                                      worker_outcome=WorkerOutcome.SKIPPED))


def run_area(area: str, tests: tuple[str, ...] | None = None, label: str = "",
             rev: str | None = None, resume: bool = False, sample: int = 1) -> dict:
    from mutation.select import plan_modules

    spec = AREAS[area]
    per_module = not tests
    tests = tests or spec.selected_tests()
    where = f"{area}-{label}" if label else area
    session = WORK / where / "session.sqlite"
    tree = WORK / where / "tree"
    resume = resume and session.is_file() and tree.is_dir()
    if resume:  # a stopped run: put the modules back as they were, then do what is pending
        for module in spec.modules:
            if (tree / module).is_dir():
                shutil.rmtree(tree / module)
        source = subprocess.run(["git", "archive", rev or "HEAD", *spec.modules], cwd=REPO,
                                capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=source, check=True)
    else:
        tree = scratch_copy(where, rev)
    command = f"{sys.executable} {PYTEST} {' '.join(tests)}"
    if per_module:
        command = f"{sys.executable} -m mutation.for_mutant {write_selection(where, spec, tree)}"
    config = WORK / where / "cosmic-ray.toml"
    if not (resume and config.is_file()):  # a resumed run keeps the timeout its baseline set
        config = write_config(where, spec, command)
    env = {**os.environ, "PYTHONPATH": str(tree)}  # the scratch copy shadows the editable install

    def run(*args: str) -> None:
        subprocess.run([*args], cwd=tree, env=env, check=True)

    started = time.monotonic()
    if not resume:
        run(tool("cosmic-ray"), "init", str(config), str(session), "--force")
        run(tool("cr-filter-operators"), str(session), str(config))
        run(tool("cr-filter-pragma"), str(session))
        if sample > 1:
            keep_every(session, sample)
        # The baseline: the tests pass without mutants, with the plan cache cold (filling it)
        # and, where a module of the area uses it, warm (no test's plan depends on what the
        # cache key leaves out). A mutant may take
        # twice as long as the slowest before it counts as killed by timeout.
        shutil.rmtree(WORK / where / "plans", ignore_errors=True)
        seconds = []
        cached = per_module and not all(m in plan_modules() for m in spec.module_names())
        for _ in range(2 if cached else 1):
            begun = time.monotonic()
            run(*command.split())
            seconds.append(time.monotonic() - begun)
        config = write_config(where, spec, command, timeout=max(spec.timeout, 2 * max(seconds)))
    run(tool("cosmic-ray"), "exec", str(config), str(session))
    summary = summarise(area, session, time.monotonic() - started, tests)
    return summary


def summarise(area: str, session: Path, seconds: float, tests: tuple[str, ...]) -> dict:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    killed, survived, incompetent, skipped, timeouts = [], [], [], 0, 0
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                skipped += 1
            elif result.test_outcome == TestOutcome.SURVIVED:
                survived.append((item, result))
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                incompetent.append((item, result))
            else:
                killed.append((item, result))
                timeouts += result.output == "timeout"
    total = len(killed) + len(survived)
    score = 100.0 * len(killed) / total if total else 100.0
    lines = [f"area {area}: {len(killed)}/{total} mutants killed ({score:.1f}%; {timeouts} by "
             "timeout), "
             f"{len(survived)} survived, {len(incompetent)} incompetent, {skipped} filtered out "
             "or not sampled; "
             f"{seconds / 60:.1f} min",
             f"tests: {' '.join(tests)}", ""]
    for item, result in survived:
        for m in item.mutations:
            lines.append(f"SURVIVED {m.module_path}:{m.start_pos[0]} {m.operator_name} "
                         f"#{m.occurrence}")
        lines.append(result.diff or "")
    (session.parent / "report.txt").write_text("\n".join(lines) + "\n")
    print(lines[0], flush=True)
    return {"area": area, "killed": len(killed), "total": total, "score": score}


def retest_survivors(area: str, label: str) -> dict:
    """Run the survivors of `.mutation/<area>-<label>/` again, in a fresh copy of the work tree
    with today's tests (mutants of modules that changed since are left as they were)."""
    from cosmic_ray.mutating import mutate_and_test
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import MutationSpec, TestOutcome

    run = f"{area}-{label}" if label else area   # the same directory run_area wrote
    where = WORK / run
    old_tree = where / "tree"
    tree = scratch_copy(f"{run}-retest")
    spec = AREAS[area]
    command = f"{sys.executable} -m mutation.for_mutant {write_selection(f'{run}-retest', spec, tree)}"
    os.environ["PYTHONPATH"] = str(tree)
    os.chdir(tree)
    killed, still, stale = [], [], []
    with use_db(str(where / "session.sqlite"), WorkDB.Mode.open) as db:
        survivors = [(item, r) for item, r in db.completed_work_items
                     if r.test_outcome == TestOutcome.SURVIVED]
    for item, _ in survivors:
        (m,) = item.mutations
        relative = Path(m.module_path)  # cosmic-ray records it relative to the tree
        if relative.is_absolute():
            relative = relative.relative_to(old_tree)
        if (old_tree / relative).read_text() != (tree / relative).read_text():
            stale.append(f"{relative}:{m.start_pos[0]} {m.operator_name}")
            continue
        result = mutate_and_test([MutationSpec(relative, m.operator_name, m.occurrence,
                                               m.start_pos, m.end_pos)],
                                 command, 3 * spec.timeout)
        line = f"{relative}:{m.start_pos[0]} {m.operator_name} #{m.occurrence}"
        if result.output == "timeout":  # not a kill a test made: reported as still surviving
            line += " (timed out)"
        (killed if result.test_outcome == TestOutcome.KILLED and result.output != "timeout"
         else still).append((line, result.diff))
    report = [f"retest of {len(survivors)} survivors of {run}: {len(killed)} killed now, "
              f"{len(still)} still survive, {len(stale)} in modules changed since (not retested)"]
    report += [f"KILLED NOW {line}" for line, _ in killed]
    report += [f"SURVIVED {line}\n{diff}" for line, diff in still]
    report += [f"CHANGED {line}" for line in stale]
    (where / "retest.txt").write_text("\n".join(report) + "\n")
    print(report[0], flush=True)
    return {"killed": len(killed), "still": len(still), "stale": len(stale)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("areas", nargs="*", default=list(ALL), help=f"any of {', '.join(ALL)}")
    parser.add_argument("--tests", nargs="*", help="override the area's test list (e.g. to "
                        "measure the suite before new tests)")
    parser.add_argument("--label", default="", help="keep this run apart: .mutation/<area>-<label>/")
    parser.add_argument("--rev", help="mutate this commit (git archive) instead of the work tree")
    parser.add_argument("--sample", type=int, default=1, metavar="N",
                        help="test every N-th mutant only (a quicker estimate)")
    parser.add_argument("--resume", action="store_true", help="continue a stopped run of the same "
                        "area and label (its pending mutants only; minutes so far are not counted)")
    parser.add_argument("--retest", action="store_true", help="re-run the survivors of the area's "
                        "run (with --label) against today's tests")
    args = parser.parse_args(argv)
    if args.retest:
        for area in args.areas:
            retest_survivors(area, args.label)
        return 0
    unknown = [a for a in args.areas if a not in ALL]
    if unknown:
        parser.error(f"unknown area(s) {', '.join(unknown)}; choose from {', '.join(ALL)}")
    results = []
    for area in args.areas:
        if area == "alerts":
            from mutation import alerts

            results.append(alerts.run())
        else:
            results.append(run_area(area, tuple(args.tests) if args.tests else None, args.label,
                                   args.rev, args.resume, args.sample))
    print("\nmutation score per area:")
    for r in results:
        print(f"  {r['area']:<9} {r['killed']:>4}/{r['total']:<4} killed  {r['score']:5.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
