"""Shared fixtures: plans of the shipped stacks, run once per test session."""

from __future__ import annotations

# Imported up front: hypothesis's pytest plugin otherwise imports it in the terminal summary,
# where CPython 3.11 can fail to compile it after Pulumi's mocked runs ("AST constructor
# recursion depth mismatch") and turn a green run into an error.
import hypothesis  # noqa: F401
import pytest

from llmops.offline.plan import Plan, run_plan

STACKS = ("dev", "staging", "prod")


@pytest.fixture(scope="session")
def plans() -> dict[str, Plan]:
    """The offline plan of every shipped stack, as `llmops plan` records it."""
    return {stack: run_plan(stack) for stack in STACKS}
