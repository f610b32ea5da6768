"""Shared fixtures: plans of the shipped stacks, run once per test session."""

from __future__ import annotations

import pytest

from llmops.offline.plan import Plan, run_plan

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    """The offline plan of every shipped stack, as `llmops plan` records it."""
    return {stack: run_plan(stack) for stack in STACKS}
