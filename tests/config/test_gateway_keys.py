"""`llmops:gatewayApiKeys` granting models the stack does not serve is refused where the keys
and the models meet: the config load of a real `pulumi up`, which has the decrypted keys."""

from __future__ import annotations

import pytest

from llmops.offline.plan import record, run_plan
from vocabulary.config import ConfigError, load_workloads_config
from vocabulary.config.gateway_keys import grant_problems
from vocabulary.contract import WORKLOADS_PROJECT

HASH = "0" * 64
KEYS = (f"keys:\n  - {{id: team-a, sha256: '{HASH}', models: [llama-3-8b]}}\n"
        f"  - {{id: team-b, sha256: '{HASH}', models: [llama-3-70b]}}\n"
        f"  - {{id: ops, sha256: '{HASH}', models: ['*']}}\n")
PROBLEM = ("llmops:gatewayApiKeys: keys[1] (team-b): grants 'llama-3-70b', a model that is not "
           "configured; configured models: llama-3-8b (or '*' for all)")


def test_the_workloads_program_refuses_a_key_granting_an_unknown_model():
    with pytest.raises(ConfigError) as caught:
        record(load_workloads_config, stack="dev", project=WORKLOADS_PROJECT,
               config={"llmops:gatewayApiKeys": KEYS}, secret_keys=["llmops:gatewayApiKeys"])
    assert caught.value.problems == [PROBLEM]


def test_a_plan_with_such_keys_is_refused_before_any_resource():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:gatewayApiKeys": KEYS,
                                   "llmops:network.azCount": 9})
    assert PROBLEM in caught.value.problems  # with the other problems, in one round
    assert any(p.startswith("llmops:network.azCount") for p in caught.value.problems)


def test_keys_for_configured_models_or_all_models_pass():
    assert grant_problems([{"id": "a", "models": ["m1", "*"]}, {"id": "b", "models": ["m2"]}],
                          ["m1", "m2"]) == []


def test_a_keys_value_that_is_not_yaml_is_named_without_echoing_it():
    with pytest.raises(ConfigError) as caught:
        record(load_workloads_config, stack="dev", project=WORKLOADS_PROJECT,
               config={"llmops:gatewayApiKeys": "keys: [sk-live-secret"},
               secret_keys=["llmops:gatewayApiKeys"])
    assert caught.value.problems == [
        "llmops:gatewayApiKeys: not valid YAML (line 1); it holds the gateway's keys file"]
    assert "sk-live" not in str(caught.value)
