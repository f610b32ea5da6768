"""Shared fixtures: plans of the shipped stacks, run once per test session."""

from __future__ import annotations

import os
from collections.abc import Iterator

# Imported up front: hypothesis's pytest plugin otherwise imports it in the terminal summary,
# where CPython 3.11 can fail to compile it after Pulumi's mocked runs ("AST constructor
# recursion depth mismatch") and turn a green run into an error.
import hypothesis  # noqa: F401
import pytest

from llmops.offline.plan import Plan
from tests.shipped_plans import STACKS, share_through, shipped_plan

__all__ = ["STACKS"]  # tests import it from here


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests (marked `long_pole`) go first: pytest-xdist hands them out before the
    rest, so the run's last seconds are short tests spread over every worker, not one long
    test running alone while the other cores idle. A stable sort: order within each group and
    a module's grouping (its module-scoped fixtures) stay as collected. Serial runs (a
    mutant's, a debugger's) keep the collected order, where fast-first files stop sooner."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("long_pole") is None)


@pytest.fixture(scope="session", autouse=True)
def _shipped_plans_shared_by_workers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Under pytest-xdist, each shipped stack is planned by one worker for all of them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        share_through(tmp_path_factory.getbasetemp().parent / "shipped-plans")


@pytest.fixture(scope="session")
def plans(_shipped_plans_shared_by_workers: None) -> dict[str, Plan]:
    """The offline plan of every shipped stack, as `llmops plan` records it: planned once per
    run (tests/shipped_plans.py). Workers start from different ends of STACKS, so two of
    them plan two stacks at once."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    order = STACKS if int(worker.removeprefix("gw") or 0) % 2 == 0 else STACKS[::-1]
    planned = {stack: shipped_plan(stack) for stack in order}
    return {stack: planned[stack] for stack in STACKS}


@pytest.fixture(scope="session", autouse=True)
def _one_botocore_loader() -> Iterator[None]:
    """Every boto3 session in a test process reads AWS's data files (service models, the
    endpoint rules) through one botocore Loader, as every client of one session does.

    moto resets boto3's default session per test, and each new session parsed the same
    static JSON again (~0.25 s of CPU per client, most of the registry tests' time). The
    files do not change during a run and a Loader's cache is read-only data."""
    import botocore.session
    from botocore.loaders import Loader, create_loader

    loaders: dict[str | None, Loader] = {}

    def shared(search_path_string: str | None = None) -> Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared)
        yield
