"""docs/deploy.md stays true: its placeholder checklist names every placeholder value the
shipped environment and bootstrap files hold, and the commands it shows parse."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from llmops.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "deploy.md").read_text()
PLACEHOLDER = re.compile(r"123456789012|example|203\.0\.113\.|CC-4410")


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from _leaves(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for inner in value:
            yield from _leaves(inner, path)
    else:
        yield path, str(value)


def test_the_checklist_names_every_placeholder_in_the_shipped_files():
    files = [*sorted((ROOT / "stacks").glob("Pulumi.*.yaml")),
             ROOT / "stacks" / "bootstrap" / "Pulumi.bootstrap.yaml"]
    missing = []
    for file in files:
        for path, value in _leaves(yaml.safe_load(file.read_text())["config"], ""):
            if PLACEHOLDER.search(value):
                key = path.split(".")[0] + "".join(f".{p}" for p in path.split(".")[1:2])
                if f"`{key}" not in DOC:
                    missing.append(f"{file.name}: {path} = {value}")
    assert missing == []


def test_every_llmops_command_in_the_doc_parses():
    calls = [shlex.split(line.split("#")[0]) for line in re.findall(r"^(llmops .+)$", DOC, re.M)]
    calls += [["llmops", "preflight", "--stack", "dev", "--print-images"]] * ("--print-images" in DOC)
    assert len(calls) >= 6
    for call in calls:
        build_parser().parse_args(call[1:])


def test_the_first_up_bound_the_doc_quotes_is_the_plans_longest_await_chain(plans):
    from llmops.offline.first_up import longest_await_chain

    quoted = {"dev": 40, "staging": 41, "prod": 41}  # minutes, as the doc says
    for stack, plan in plans.items():
        chain = longest_await_chain(plan, "workloads")
        assert chain.seconds == quoted[stack] * 60, (stack, chain)
        # Karpenter's CRDs, its controller (5 min each), then a model server, which waits for
        # the NodePools (after the controller) before its customTimeouts.create
        (crds, _), (controller, _), (name, _) = chain.steps
        assert (crds, controller) == ("gpu-karpenter-crd", "gpu-karpenter")
        create = plan.one("kubernetes:apps/v1:Deployment", name).options["customTimeouts"]["create"]
        assert create == f"{(quoted[stack] - 10) * 60}s"
    assert ("that chain is Karpenter's CRD and controller releases (300 s `timeout` each) and then "
            "one model server's `customTimeouts.create`: 40 minutes in dev (TGI), 41 in staging "
            "and prod") in " ".join(DOC.split())
