"""Per-environment policy config: one YAML per stack, validated, the CLI's JSON generated
from it, and the shipped stacks free of mandatory violations."""

from __future__ import annotations

import json

import pytest

from policies.catalog import ALL_RULES
from policies.runner import evaluate, mandatory, render
from policies.settings import CONFIG_DIR, PolicyConfigError, load_config, parse_config
from tests.conftest import STACKS


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_plans_have_no_mandatory_violations(plans, stack):
    violations = evaluate(plans[stack].resources, stack)
    assert mandatory(violations) == [], render(violations, stack=stack)


@pytest.mark.parametrize("stack", STACKS)
def test_every_policy_is_configured_for_every_stack(stack):
    config = load_config(stack)
    assert set(config.entries) == {r.name for r in ALL_RULES}


@pytest.mark.parametrize("stack", STACKS)
def test_the_cli_json_is_generated_from_the_yaml(stack):
    """`pulumi preview --policy-pack-config policies/config/<stack>.json` must say what the
    offline runner enforces; regenerate with `llmops policy config --stack <s> --write`."""
    generated = load_config(stack).to_cli_json()
    assert (CONFIG_DIR / f"{stack}.json").read_text() == generated
    assert json.loads(generated)


def test_a_bad_config_lists_every_problem_with_the_key():
    with pytest.raises(PolicyConfigError) as exc:
        parse_config({
            "vpc-flow-log-enabled": "mandatory",
            "kms-key-rotation": "required",
            "required-cost-tags": {"enforcementLevel": "advisory", "requiredTag": ["Owner"]},
            "security-group-no-public-admin-ports": {"adminPorts": "22"},
        }, "policies/config/qa.yaml")
    assert str(exc.value) == (
        "policies/config/qa.yaml has 4 problem(s):\n"
        "  - vpc-flow-log-enabled: unknown policy; did you mean vpc-flow-logs-enabled?\n"
        "  - kms-key-rotation: level 'required' is not one of mandatory, advisory, disabled\n"
        "  - required-cost-tags.requiredTag: unknown property (allowed: requiredTags)\n"
        "  - security-group-no-public-admin-ports.adminPorts: expected array, got '22'")


def test_a_stack_without_policy_config_names_the_configured_ones():
    with pytest.raises(PolicyConfigError, match=r"no policy config for stack 'qa'.*dev, prod, staging"):
        load_config("qa")


def test_levels_and_properties_come_from_the_entry():
    config = parse_config({"required-cost-tags": {"enforcementLevel": "advisory",
                                                  "requiredTags": ["Owner"]},
                           "kms-key-rotation": "disabled"}, "test")
    by_name = {r.name: r for r in ALL_RULES}
    assert config.level(by_name["required-cost-tags"]) == "advisory"
    assert config.properties(by_name["required-cost-tags"]) == {"requiredTags": ["Owner"]}
    assert config.level(by_name["kms-key-rotation"]) == "disabled"
    assert config.level(by_name["vpc-flow-logs-enabled"]) == "mandatory"  # the rule's default
