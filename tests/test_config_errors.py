"""Bad configuration fails before any resource exists, one clear line per problem."""

from __future__ import annotations

import pytest

from llmops.offline.plan import run_plan
from vocabulary.config import ConfigError
from vocabulary.stackfile import DELETE

CASES = [
    ({"llmops:network.azCount": 7},
     "llmops:network.azCount: Input should be less than or equal to 6 (got 7)"),
    ({"llmops:network.azCount": 1},
     "llmops:network.azCount: Input should be greater than or equal to 2 (got 1)"),
    ({"llmops:network.azCount": "two"},
     "llmops:network.azCount: Input should be a valid integer (got 'two')"),
    ({"llmops:network.cidr": "10.0.0.1/16"},
     "llmops:network.cidr: '10.0.0.1/16' has host bits set; did you mean 10.0.0.0/16?"),
    ({"llmops:network.cidr": "banana"},
     "llmops:network.cidr: 'banana' is not an IPv4 CIDR such as 10.0.0.0/16"),
    ({"llmops:network.cidr": "8.8.0.0/16"},
     "llmops:network.cidr: 8.8.0.0/16 is not in a private range"),
    ({"llmops:network.nat": "both"},
     "llmops:network.nat: Input should be 'single' or 'per-az' (got 'both')"),
    ({"llmops:network.natGateways": 2},
     "llmops:network.natGateways: unknown key; allowed keys: azCount, cidr, flowLogs,"),
    ({"llmops:network.azcount": 2},
     "llmops:network.azcount: unknown key; did you mean azCount?"),
    ({"llmops:netwrk": {}},
     "llmops:netwrk: unknown key; did you mean llmops:network?"),
    ({"llmops:tags.owner": DELETE}, "llmops:tags.owner: required value is missing"),
    ({"aws:region": DELETE}, "aws:region: required value is missing"),
    ({"llmops:network.privateSubnets": ["10.20.0.0/19", "10.20.16.0/20"]},
     "llmops:network: privateSubnets[0] 10.20.0.0/19 overlaps privateSubnets[1] 10.20.16.0/20"),
    ({"llmops:network.privateSubnets": ["10.20.0.0/19", "10.99.0.0/19"]},
     "llmops:network: privateSubnets[1] 10.99.0.0/19 is outside the VPC cidr 10.20.0.0/16"),
    ({"llmops:network.publicSubnets": ["10.20.200.0/24"]},
     "llmops:network: publicSubnets lists 1 subnets; azCount is 2"),
    ({"llmops:network.cidr": "10.20.0.0/20"},
     "llmops:network: subnets do not fit: a /19 subnet is larger than the VPC 10.20.0.0/20"),
    ({"llmops:network.flowLogs.retentionDays": 10},
     "llmops:network.flowLogs.retentionDays: 10 is not a CloudWatch retention period"),
    ({"llmops:network.interfaceEndpoints": ["sts", "s3"]},
     "llmops:network.interfaceEndpoints[1]: Input should be 'ecr.api'"),
    ({"llmops:network.interfaceEndpoints": ["sts", "sts"]},
     "llmops:network.interfaceEndpoints: listed more than once: sts"),
    ({"llmops:gpuPools.1": {"name": "gpu24-x1", "instanceTypes": ["g6.xlarge", "g5.xlarge"],
                             "maxNodes": 1}},
     "llmops:gpuPools: pool names must be unique; repeated: gpu24-x1"),
    # a node-group-era pool: the old key is named, with what replaced it
    ({"llmops:gpuPools.0.capacityType": "SPOT"},
     "llmops:gpuPools[0].capacityType: unknown key; did you mean capacityTypes"),
    ({"llmops:tags.costCentre": "cc#1"},
     "llmops:tags.costCentre: 'cc#1' is not a valid AWS tag value"),
]


@pytest.mark.parametrize(("overrides", "expected"), CASES,
                         ids=[f"{key}=<deleted>" if value is DELETE else f"{key}={value!r}"[:len(key) + 31]
                              for c, _ in CASES for key, value in [next(iter(c.items()))]])
def test_bad_config_names_the_key_the_value_and_what_is_allowed(overrides, expected):
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides=overrides)
    assert any(p.startswith(expected) for p in caught.value.problems), caught.value.problems
    assert str(caught.value).startswith("stacks/Pulumi.dev.yaml has 1 configuration problem:")


def test_every_problem_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:network.azCount": 9, "llmops:network.nat": "x",
                                   "llmops:tags.owner": DELETE})
    assert len(caught.value.problems) == 3
    assert "has 3 configuration problems" in str(caught.value)


def test_config_error_stops_before_any_resource_is_registered(monkeypatch):
    registered = []
    from llmops.offline import recorder

    original = recorder.RecordingMonitor.RegisterResource
    monkeypatch.setattr(recorder.RecordingMonitor, "RegisterResource",
                        lambda self, req: registered.append(req.type) or original(self, req))
    with pytest.raises(ConfigError):
        run_plan("dev", overrides={"llmops:network.azCount": 9})
    assert registered == []


def test_config_error_is_a_clean_pulumi_run_error():
    """A real `pulumi up` prints RunError messages without a traceback."""
    import pulumi

    assert issubclass(ConfigError, pulumi.RunError)


def test_secret_keys_are_required_for_a_real_run_and_stood_in_for_offline(plans):
    from vocabulary.config import parse_platform_config, secret_config_keys
    from vocabulary.stackfile import read_stack_config

    assert secret_config_keys() == ["llmops:gatewayApiKeys"]
    values = read_stack_config("prod").values
    # the platform stack does not need it (it lives in the workloads stack's own config) ...
    config = parse_platform_config(values, project="llmops", stack="prod")
    # ... and the workloads program refuses to run without it, naming the command
    from stacks.workloads_stack import build_workloads

    with pytest.raises(ConfigError) as caught:
        build_workloads(config)
    assert caught.value.problems == [
        "llmops:gatewayApiKeys is not set; set it with `pulumi config set --secret "
        "llmops:gatewayApiKeys < keys.yaml` in stacks/workloads"]
    plan = plans["prod"]
    secret = plan.one("kubernetes:core/v1:Secret", "gateway-keys")
    assert "stringData" in secret.secret_paths
    assert secret.to_json()["inputs"]["stringData"] == "[secret]"
