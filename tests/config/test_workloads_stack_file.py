"""Under a real `pulumi up` of the workloads stack the runtime config is that stack's own
file: a setting there is refused as in the offline plan, naming the file it is in."""

from __future__ import annotations

import pytest

from llmops.offline.plan import record
from vocabulary.config import ConfigError, load_workloads_config
from vocabulary.contract import WORKLOADS_PROJECT


def test_the_workloads_program_refuses_a_setting_in_its_own_stack_file():
    with pytest.raises(ConfigError) as caught:
        record(load_workloads_config, stack="dev", project=WORKLOADS_PROJECT,
               config={"llmops:serving": '{"minReplicas": 1}', "llmops-secrets:x": "s"},
               secret_keys=["llmops-secrets:x"])
    assert caught.value.source == "stacks/workloads/Pulumi.dev.yaml"
    assert caught.value.problems == [
        "llmops:serving: not a secret, so it does not belong in stacks/workloads/Pulumi.dev.yaml "
        "(that file holds only the workloads stack's secrets: llmops:gatewayApiKeys, "
        "llmops-secrets:*); set it in stacks/Pulumi.dev.yaml, the environment file both stacks read"]


def test_the_workloads_program_reads_its_secrets_over_the_environment_file():
    recording = record(lambda: _export(load_workloads_config()), stack="dev",
                       project=WORKLOADS_PROJECT, config={"llmops:gatewayApiKeys": "keys: []"},
                       secret_keys=["llmops:gatewayApiKeys"])
    assert recording.outputs["keys"] == "keys: []"


def _export(config) -> None:
    import pulumi

    pulumi.export("keys", config.gateway_api_keys)


def test_the_workloads_program_refuses_a_region_other_than_the_environments():
    with pytest.raises(ConfigError) as caught:
        record(load_workloads_config, stack="dev", project=WORKLOADS_PROJECT,
               config={"aws:region": "eu-west-1"})
    assert caught.value.problems == [
        "aws:region: differs from stacks/Pulumi.dev.yaml's; the workloads stack deploys where the "
        "environment file says: delete it from stacks/workloads/Pulumi.dev.yaml or make it the same"]
