"""The README is the front door: short, the two commands first, the deploy path in its first
half, every page it links present, and its gateway tour's files valid."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import yaml

from serving.gateway.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
LINES = README.splitlines()
TOUR = ROOT / "examples" / "gateway"


def _line_of(text: str) -> int:
    return next(i for i, line in enumerate(LINES, 1) if text in line)


def test_the_readme_is_at_most_300_lines():
    assert len(LINES) <= 300


def test_the_two_commands_come_in_the_first_60_lines():
    assert _line_of("make plan    #") <= 60 and _line_of("make test    #") <= 60


def test_the_deploy_path_starts_in_the_first_half():
    assert _line_of("## The deploy path") <= len(LINES) // 2


def test_every_linked_page_exists():
    linked = set(re.findall(r"\]\(((?:docs|examples)/[^)#]+)\)", README))
    assert linked, "the README links its docs"
    assert not [page for page in sorted(linked) if not (ROOT / page).exists()]


def test_the_tours_gateway_config_loads_and_its_demo_key_is_the_one_the_readme_uses():
    config = load_config(TOUR / "gateway.yaml")
    assert list(config.models) == ["llama-3-8b"]
    assert "Bearer sk-demo" in README and "X-Model: llama-3-8b" in README
    [key] = yaml.safe_load((TOUR / "keys.yaml").read_text())["keys"]
    assert key["sha256"] == hashlib.sha256(b"sk-demo").hexdigest()
    assert "llama-3-8b" in key["models"]
