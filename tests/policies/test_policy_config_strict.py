"""A policy config says each thing once: PyYAML would keep the last of two equal keys without a
word, so a policy written twice (a pasted block) silently changes a level or a budget."""

from __future__ import annotations

import pytest

from policies.settings import CONFIG_DIR, PolicyConfigError, load_config
from vocabulary.errors import LlmopsError


def _write(tmp_path, text: str, encoding: str = "utf-8"):
    (tmp_path / "qa.yaml").write_bytes(text.encode(encoding))
    return tmp_path


def test_a_policy_written_twice_is_refused_with_the_file_key_and_lines(tmp_path):
    config_dir = _write(tmp_path, "gpu-fleet-monthly-budget: mandatory\n"
                                  "required-cost-tags: mandatory\n"
                                  "gpu-fleet-monthly-budget: disabled\n")
    with pytest.raises(PolicyConfigError) as caught:
        load_config("qa", config_dir)
    assert str(caught.value) == (
        "policies/config/qa.yaml has 1 problem(s):\n"
        "  - gpu-fleet-monthly-budget: written twice (lines 1 and 3); YAML would silently keep only "
        "the last: write it once")


def test_a_setting_written_twice_inside_a_policy_is_named_by_its_path(tmp_path):
    config_dir = _write(tmp_path, "gpu-fleet-monthly-budget:\n"
                                  "  enforcementLevel: mandatory\n"
                                  "  monthlyBudgetUsd: 60000\n"
                                  "  monthlyBudgetUsd: 600000\n")
    with pytest.raises(PolicyConfigError, match=r"gpu-fleet-monthly-budget\.monthlyBudgetUsd: written twice "
                                                r"\(lines 3 and 4\)"):
        load_config("qa", config_dir)


def test_a_utf16_config_is_refused_naming_the_file(tmp_path):
    config_dir = _write(tmp_path, "required-cost-tags: mandatory\n", encoding="utf-16")
    with pytest.raises(LlmopsError, match=r"policies/config/qa.yaml is UTF-16 text .* it must be UTF-8"):
        load_config("qa", config_dir)


@pytest.mark.parametrize("stack", sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")))
def test_the_shipped_configs_say_each_thing_once(stack):
    assert load_config(stack).source == f"policies/config/{stack}.yaml"
