"""The contract between the two stacks, at its edges: the platform's config digest moves with
every section the platform is built from (else a workloads `up` runs against a platform that
is behind its environment file) and with nothing else; a version bump is exactly as large as
the change; an output's type is checked element by element."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocabulary import outputs_schema
from vocabulary.config import PRODUCT, PlatformConfig, parse_platform_config
from vocabulary.contract import PLATFORM_SECTIONS, config_digest
from vocabulary.outputs_schema import (
    WORKLOADS,
    OutputSpec,
    SchemaError,
    StackSchema,
    bump_problem,
    check_outputs,
    record,
    type_problem,
)
from vocabulary.stackfile import read_stack_config


def environment(stack: str) -> PlatformConfig:
    return parse_platform_config(read_stack_config(stack).values, project=PRODUCT, stack=stack)


@pytest.fixture(scope="module")
def dev() -> PlatformConfig:
    return environment("dev")


@pytest.fixture(scope="module")
def prod() -> PlatformConfig:
    return environment("prod")


def changed_section(cfg: PlatformConfig, other: PlatformConfig, section: str):
    """`section` as another environment sets it, or (where all environments agree) with one
    setting changed."""
    if getattr(other, section) != getattr(cfg, section):
        return getattr(other, section)
    value = getattr(cfg, section)
    return {"storage": lambda: value.model_copy(update={"noncurrent_version_days": 31}),
            "images": lambda: value.model_copy(update={"prepull": not value.prepull})}[section]()


@pytest.mark.parametrize("section", PLATFORM_SECTIONS)
def test_the_platform_digest_moves_with_every_section_the_platform_is_built_from(dev, prod, section):
    changed = dev.model_copy(update={section: changed_section(dev, prod, section)})
    assert config_digest(changed) != config_digest(dev)


@pytest.mark.parametrize("section", ["monitoring", "gateway", "serving", "tags"])
def test_a_workloads_only_change_keeps_the_digest_so_no_platform_up_is_needed(dev, prod, section):
    assert getattr(dev, section) != getattr(prod, section)
    assert config_digest(dev.model_copy(update={section: getattr(prod, section)})) == config_digest(dev)


def test_a_served_model_renamed_moves_the_digest_its_settings_do_not(dev):
    [model] = dev.models
    renamed = dev.model_copy(update={"models": [model.model_copy(update={"name": "other-model"})]})
    assert config_digest(renamed) != config_digest(dev)
    retuned = dev.model_copy(update={"models": [model.model_copy(update={"queue_target": 9})]})
    assert config_digest(retuned) == config_digest(dev)


@pytest.mark.parametrize(("old", "new", "bump", "ok"), [
    ("1.3", "2.0", "major", True), ("1.3", "2.1", "major", False), ("1.3", "1.4", "major", False),
    ("1.3", "3.0", "major", False), ("1.3", "1.4", "minor", True), ("1.3", "2.0", "minor", True),
    ("1.3", "1.5", "minor", False), ("1.3", "1.3", "minor", False), ("1.3", "2.1", "minor", False),
    ("1.3", "1.3", "none", True), ("1.3", "1.4", "none", False), ("1.3", "2.0", "none", False)])
def test_a_version_bump_is_exactly_the_next_major_or_minor(old, new, bump, ok):
    problem = bump_problem(old, new, bump, ["why"])
    assert (problem is None) is ok
    if not ok and bump != "none":
        expected = "2.0" if bump == "major" else "1.4"
        assert problem == f"{old} -> {new} but the change is {bump} (why): the next version is {expected}"


@pytest.mark.parametrize(("type_", "value", "problem"), [
    ("number", 3, None), ("number", 2.5, None), ("number", True, "x: expected number, got bool"),
    ("boolean", False, None), ("boolean", 0, "x: expected boolean, got int"),
    ("string", "", None), ("object", {}, None), ("object", [], "x: expected object, got list"),
    ("list<string>", ["a", "b"], None), ("list<string>", ["a", 1], "x[1]: expected string, got int"),
    ("list<string>", "ab", "x: expected list<string>, got str"),
    ("map<number>", {"a": 1, "b": 2}, None), ("map<number>", {"a": 1, "b": "2"},
                                              "x.b: expected number, got str"),
    ("map<list<number>>", {"a": [1, "2"]}, "x.a[1]: expected number, got str"),
    ("map<number>", [1], "x: expected map<number>, got list")])
def test_an_output_type_is_checked_down_to_each_element(type_, value, problem):
    assert type_problem(type_, value, "x") == problem


def test_an_unknown_schema_type_is_an_error_naming_the_output():
    with pytest.raises(SchemaError, match="x: unknown schema type 'integer'"):
        type_problem("integer", 1, "x")


def test_every_difference_from_the_schema_is_reported_at_once():
    problems = check_outputs("workloads", {"surprise": 1, "outputsSchemaVersion": "0.1",
                                           "kubeconfig": "{}", "environment": "dev"},
                             ["surprise", "environment.value"])
    assert problems[0] == "surprise: exported but not in the workloads schema"
    assert "kubeconfig: the schema says secret but it is exported in plain text" in problems
    assert "environment: exported as a secret but the schema says plain" in problems
    assert "gatewayUrl: in the workloads schema but not exported" in problems
    assert problems[-1] == "outputsSchemaVersion: exported '0.1', the schema is 1.0"


def with_extra_output(schema: StackSchema, version: str, *names: str) -> StackSchema:
    extra = tuple(OutputSpec(n, "string", "added for the test") for n in names)
    return StackSchema(schema.label, version, schema.outputs + extra)


def test_recording_compares_a_new_version_with_the_last_recorded_one_not_the_first(tmp_path):
    history = tmp_path / "history.json"
    record([WORKLOADS], history)
    assert record([with_extra_output(WORKLOADS, "1.1", "a")], history) == ["workloads 1.1"]
    # one more addition: 1.2 is the next version after 1.1 (after 1.0 it would be a skipped step)
    assert record([with_extra_output(WORKLOADS, "1.2", "a", "b")], history) == ["workloads 1.2"]
    with pytest.raises(SchemaError) as skipped:
        record([with_extra_output(WORKLOADS, "1.4", "a", "b", "c")], history)
    assert str(skipped.value) == "workloads: 1.2 -> 1.4 but the change is minor (c added): the next " \
                                 "version is 1.3"


def test_the_readme_option_regenerates_the_project_s_outputs_page(monkeypatch):
    written = []
    monkeypatch.setattr(outputs_schema, "update_readme", written.append)
    assert outputs_schema.main(["--readme"]) == 0
    assert written == [Path(outputs_schema.__file__).resolve().parents[1] / "docs" / "outputs.md"]
    assert written[0].is_file()


def test_the_outputs_page_is_regenerated_between_its_markers_even_at_the_very_start(tmp_path):
    page = tmp_path / "outputs.md"
    page.write_text(f"{outputs_schema.README_BEGIN}\nstale\n{outputs_schema.README_END}\nafter\n")
    outputs_schema.update_readme(page)
    assert page.read_text() == outputs_schema.readme_section() + "\nafter\n"
    page.write_text("no markers\n")
    with pytest.raises(SchemaError, match="has no outputs-schema markers"):
        outputs_schema.update_readme(page)


def test_a_schema_error_in_the_command_is_one_error_line_and_status_2(monkeypatch, capsys):
    def refuse(path):
        raise SchemaError("docs/outputs.md has no outputs-schema markers")

    monkeypatch.setattr(outputs_schema, "update_readme", refuse)
    assert outputs_schema.main(["--readme"]) == 2
    assert capsys.readouterr().err == "error: docs/outputs.md has no outputs-schema markers\n"


def test_a_schema_declaring_an_unknown_output_type_is_refused_when_loaded(monkeypatch):
    bad = StackSchema("workloads", "1.0", (OutputSpec("models", "integer", "a typo"),))
    monkeypatch.setitem(outputs_schema.SCHEMAS, "workloads", bad)
    with pytest.raises(SchemaError, match=r"workloads\.models: unknown type 'integer'"):
        outputs_schema._validate_definitions()


def test_an_output_is_looked_up_by_name_and_an_unknown_one_names_the_choices():
    assert WORKLOADS.get("gatewayUrl").name == "gatewayUrl"
    with pytest.raises(SchemaError, match="the workloads schema has no output 'gateway'; outputs: "):
        WORKLOADS.get("gateway")


def test_an_unknown_stack_label_is_a_schema_error_not_a_key_error():
    with pytest.raises(SchemaError, match="bogus"):
        outputs_schema.schema_for("bogus")
