"""`make mutate`'s areas stay true to the tree: every module and test file they name exists,
and an area that lists its test files one by one (for their order) lists all of them, so a new
test file cannot silently drop out of the mutation score."""

from __future__ import annotations

from pathlib import Path

import pytest

from mutation.run import AREAS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("area", list(AREAS))
def test_every_path_an_area_names_exists(area):
    spec = AREAS[area]
    missing = [p for p in (*spec.modules, *spec.excluded, *spec.tests) if not (ROOT / p).exists()]
    assert missing == []


def test_the_registry_area_lists_every_registry_test_file():
    listed = set(AREAS["registry"].tests)
    present = {str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "registry").glob("test_*.py")}
    assert present - listed == set()
