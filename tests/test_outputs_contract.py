"""Stack outputs are a versioned contract: every environment exports exactly its schema, the
schema only evolves with the right version bump, the application-facing subset is mirrored
to SSM, and one managed policy reads exactly that mirror."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.published_outputs import PublishedOutputs, PublishedOutputsArgs, parameter_arn
from llmops.offline.plan import record
from tests.conftest import STACKS
from vocabulary.contract import PLATFORM_OUTPUTS, config_digest
from vocabulary.outputs_schema import (
    PLATFORM,
    SCHEMAS,
    WORKLOADS,
    OutputSpec,
    SchemaError,
    StackSchema,
    bump_problem,
    check_outputs,
    history_problems,
    read_history,
    readme_section,
    required_bump,
)
from vocabulary.outputs_schema import record as record_history

README = Path(__file__).parents[1] / "docs" / "outputs.md"
PARAMETER = "aws:ssm/parameter:Parameter"


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("label", list(SCHEMAS))
def test_each_environment_exports_exactly_its_schema(plans, stack, label):
    plan = plans[stack]
    assert check_outputs(label, plan.stack_outputs[label], plan.stack_secret_outputs[label]) == []
    assert plan.stack_outputs[label]["outputsSchemaVersion"] == SCHEMAS[label].version


def test_the_workloads_read_only_platform_outputs_the_schema_declares():
    assert set(PLATFORM_OUTPUTS) <= set(PLATFORM.names())


def test_a_mismatch_names_the_output_and_what_the_schema_says():
    outputs = {"outputsSchemaVersion": "0.9", "environment": 3, "platformStack": "o/p/s",
               "gatewayUrl": "https://x", "models": ["a", 7], "modelVersions": {"a": {"stable": {}}},
               "modelRoutes": {"a": {"stable": "http://a"}}, "grafanaUrl": "g",
               "kubeconfig": "{}", "appReadPolicyArn": "arn", "surprise": 1}
    problems = check_outputs("workloads", outputs, secret_names=["grafanaUrl"])
    assert problems == [
        "surprise: exported but not in the workloads schema",
        "environment: expected string, got int",
        "models[1]: expected string, got int",
        "grafanaUrl: exported as a secret but the schema says plain",
        "prometheusUrl: in the workloads schema but not exported",
        "kubeconfig: the schema says secret but it is exported in plain text",
        "outputsSchemaVersion: exported '0.9', the schema is 1.0",
    ]


def _contract(**outputs: tuple[str, bool]) -> dict:
    return {name: {"type": t, "secret": secret, "appFacing": True, "ssm": True}
            for name, (t, secret) in outputs.items()}


BASE = _contract(gatewayUrl=("string", False), models=("list<string>", False))


@pytest.mark.parametrize(("new", "bump", "why"), [
    (_contract(gatewayUrl=("string", False)), "major", ["models removed"]),
    (_contract(gatewayUrl=("string", False), models=("string", False)), "major",
     ["models.type 'list<string>' -> 'string'"]),
    (_contract(gatewayUrl=("string", True), models=("list<string>", False)), "major",
     ["gatewayUrl.secret False -> True"]),
    ({**BASE, "gatewayUrl": {**BASE["gatewayUrl"], "ssm": False}}, "major",
     ["gatewayUrl.ssm withdrawn"]),
    ({**BASE, "extra": {"type": "string", "secret": False, "appFacing": False, "ssm": False}},
     "minor", ["extra added"]),
    (BASE, "none", []),
], ids=["removal", "type", "secrecy", "unmirrored", "addition", "same"])
def test_removals_and_type_changes_are_major_additions_minor(new, bump, why):
    assert required_bump(BASE, new) == (bump, why)


def test_a_version_must_bump_as_far_as_its_change_requires():
    assert bump_problem("1.3", "1.4", "major", ["models removed"]) == (
        "1.3 -> 1.4 but the change is major (models removed): the next version is 2.0")
    assert bump_problem("1.3", "2.0", "major", ["models removed"]) is None
    assert bump_problem("1.3", "1.4", "minor", ["x added"]) is None
    assert bump_problem("1.3", "1.5", "minor", ["x added"]) == (
        "1.3 -> 1.5 but the change is minor (x added): the next version is 1.4")
    assert bump_problem("1.3", "1.4", "none", []) == "1.3 -> 1.4 without a contract change"


def test_the_schemas_are_what_their_history_last_recorded():
    assert history_problems(read_history(), SCHEMAS.values()) == []


def _without(schema: StackSchema, name: str, version: str) -> StackSchema:
    return StackSchema(schema.label, version, tuple(o for o in schema.outputs if o.name != name))


def test_removing_an_output_without_a_major_version_fails():
    changed = _without(WORKLOADS, "gatewayUrl", WORKLOADS.version)
    assert history_problems(read_history(), [changed]) == [
        "the workloads output schema (1.0) differs from its last recorded version (1.0; change: "
        "major: gatewayUrl removed): bump the version in vocabulary/outputs_schema.py if needed, then "
        "run `python -m vocabulary.outputs_schema --record`"]


def test_recording_refuses_a_short_bump_and_a_rewritten_version(tmp_path):
    history = tmp_path / "history.json"
    record_history([WORKLOADS], history)
    with pytest.raises(SchemaError) as short:
        record_history([_without(WORKLOADS, "gatewayUrl", "1.1")], history)
    assert str(short.value) == ("workloads: 1.0 -> 1.1 but the change is major (gatewayUrl "
                                "removed): the next version is 2.0")
    with pytest.raises(SchemaError) as rewrite:
        record_history([_without(WORKLOADS, "gatewayUrl", "1.0")], history)
    assert "already recorded with a different contract" in str(rewrite.value)
    assert record_history([_without(WORKLOADS, "gatewayUrl", "2.0")], history) == ["workloads 2.0"]
    recorded = json.loads(history.read_text())["workloads"]
    assert [e["version"] for e in recorded] == ["1.0", "2.0"]
    assert history_problems(json.loads(history.read_text()),
                            [_without(WORKLOADS, "gatewayUrl", "2.0")]) == []


def test_a_history_step_that_bumps_too_little_is_caught():
    history = {"workloads": [{"version": "1.0", "outputs": WORKLOADS.contract()},
                             {"version": "1.1", "outputs": _without(WORKLOADS, "models", "1.1")
                              .contract()}]}
    problems = history_problems(history, [_without(WORKLOADS, "models", "1.1")])
    assert problems == ["workloads history: 1.0 -> 1.1 but the change is major (models removed): "
                        "the next version is 2.0"]


def test_the_readme_table_is_generated_from_the_schema():
    assert readme_section() in README.read_text(), (
        "docs/outputs.md's outputs table is stale: run `python -m vocabulary.outputs_schema --readme`")


@pytest.mark.parametrize("stack", STACKS)
def test_the_application_facing_subset_is_mirrored_to_ssm(plans, stack):
    plan = plans[stack]
    key_arn = plan.stack_outputs["platform"]["modelKeyArn"]
    for label, schema in SCHEMAS.items():
        parameters = {p.inputs["name"]: p for p in plan.of_type(PARAMETER) if p.stack == label}
        expected = {f"/llmops/{stack}/{label}/{o.name}": o for o in schema.mirrored()}
        assert set(parameters) == set(expected)
        for name, spec in expected.items():
            inputs, value = parameters[name].inputs, plan.stack_outputs[label][spec.name]
            if spec.secret:
                assert (inputs["type"], inputs["keyId"]) == ("SecureString", key_arn)
                assert "value" in parameters[name].secret_paths and "insecureValue" not in inputs
            else:
                assert inputs["type"] == "String" and "keyId" not in inputs
                assert inputs["insecureValue"] == (value if isinstance(value, str)
                                                   else json.dumps(value, sort_keys=True))
    names = {p.inputs["name"] for p in plan.of_type(PARAMETER)}
    assert f"/llmops/{stack}/platform/kubeconfig" in names
    assert not {f"/llmops/{stack}/platform/configDigest",
                f"/llmops/{stack}/workloads/modelRoutes"} & names


@pytest.mark.parametrize("stack", STACKS)
def test_the_read_policy_grants_exactly_the_mirror_and_decrypts_only_its_secrets(plans, stack):
    plan = plans[stack]
    platform = plan.stack_outputs["platform"]
    policy = plan.one("aws:iam/policy:Policy", "outputs-read")
    assert policy.stack == "platform"
    region, account = plan.config.region, platform["appReadPolicyArn"].split(":")[4]
    parameters = plan.of_type(PARAMETER)
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    read = statements.pop("ReadPublishedOutputs")
    assert read["Action"] == ["ssm:GetParameter", "ssm:GetParameters"]
    assert sorted(read["Resource"]) == sorted(
        parameter_arn(region, account, p.inputs["name"]) for p in parameters)
    decrypt = statements.pop("DecryptPublishedSecrets")
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == platform["modelKeyArn"]
    assert decrypt["Condition"]["StringEquals"] == {
        "kms:ViaService": f"ssm.{region}.amazonaws.com",
        "kms:EncryptionContext:PARAMETER_ARN": [
            parameter_arn(region, account, p.inputs["name"]) for p in parameters
            if p.inputs["type"] == "SecureString"]}
    assert statements == {}
    assert policy.outputs["arn"] == platform["appReadPolicyArn"]
    assert plan.stack_outputs["workloads"]["appReadPolicyArn"] == platform["appReadPolicyArn"]


def test_a_secret_output_is_never_mirrored_without_a_key():
    schema = StackSchema("workloads", "1.0", (
        OutputSpec("token", "string", "a secret", secret=True, app_facing=True),))
    with pytest.raises(SchemaError) as caught:
        record(lambda: PublishedOutputs("published", PublishedOutputsArgs(
            schema=schema, project="llmops", environment="dev", values={"token": "s"})))
    assert str(caught.value) == ("the workloads stack mirrors secret outputs (token) but was "
                                 "given no KMS key to encrypt them")


def test_the_platforms_digest_covers_the_workloads_mirror(plans, monkeypatch):
    """The platform's read policy names the workloads' parameters, so a new one must stop the
    workloads deploy until the platform is updated."""
    import vocabulary.contract

    before = config_digest(plans["dev"].config)
    extra = OutputSpec("newOutput", "string", "added for an application", app_facing=True)
    monkeypatch.setattr(vocabulary.contract, "WORKLOADS", StackSchema(
        "workloads", "1.1", (*WORKLOADS.outputs, extra)))
    assert config_digest(plans["dev"].config) != before


@pytest.mark.parametrize("stack", STACKS)
def test_the_in_vpc_runner_publishes_only_the_workloads_mirror(plans, stack):
    plan = plans[stack]
    policy = json.loads(plan.one("aws:iam/rolePolicy:RolePolicy", "ci-runner-policy").inputs["policy"])
    publish = next(s for s in policy["Statement"] if s["Sid"] == "PublishWorkloadsOutputs")
    account = plan.stack_outputs["platform"]["appReadPolicyArn"].split(":")[4]
    assert publish["Resource"] == (
        f"arn:aws:ssm:{plan.config.region}:{account}:parameter/llmops/{stack}/workloads/*")
    workloads = {p.inputs["name"] for p in plan.of_type(PARAMETER) if p.stack == "workloads"}
    assert all(name.startswith(f"/llmops/{stack}/workloads/") for name in workloads)
