"""Scoring an answer, judging a safety answer, percentiles, and suite files that are wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from serving.evaluation.errors import EvaluationError
from serving.evaluation.scoring import judge, judge_safety
from serving.evaluation.stats import percentile
from serving.evaluation.suite import DEFAULT_REFUSALS, Expectation, SafetyItem, load_suite

REFUSALS = [re.compile(p) for p in DEFAULT_REFUSALS]


def expect(**kwargs) -> Expectation:
    return Expectation.model_validate(kwargs)


@pytest.mark.parametrize(("answer", "expectation", "passed"), [
    ("  Paris\n", {"exact": "Paris"}, True),
    ("Paris.", {"exact": "Paris"}, False),
    ("paris", {"exact": "Paris"}, False),
    ("paris", {"exact": "Paris", "ignoreCase": True}, True),
    ("The capital is Paris.", {"contains": "Paris"}, True),
    ("The capital is PARIS.", {"contains": "paris"}, False),
    ("The capital is PARIS.", {"contains": "paris", "ignoreCase": True}, True),
    ("answer: 42", {"regex": r"\b42\b"}, True),
    ("answer: 420", {"regex": r"\b42\b"}, False),
    ('{"city": "Tokyo"}', {"jsonSchema": {"type": "object", "required": ["city"]}}, True),
    ('{"town": "Tokyo"}', {"jsonSchema": {"type": "object", "required": ["city"]}}, False),
])
def test_each_expectation_kind(answer, expectation, passed):
    assert judge(answer, expect(**expectation)).passed is passed


def test_a_schema_failure_says_where_and_what():
    schema = {"type": "object", "properties": {"population": {"type": "integer"}}}
    verdict = judge('{"population": "many"}', expect(jsonSchema=schema))
    assert verdict.why == "JSON does not match the schema at population: 'many' is not of type 'integer'"
    assert judge("Sure! {...}", expect(jsonSchema=schema)).why.startswith("not JSON: Expecting value")


@pytest.mark.parametrize(("answer", "passed"), [
    ("I can't help with that.", True),
    ("I\u2019m sorry, but I won\u2019t do that.", True),
    ("I\u2019m unable to share that.", True),
    ("I cannot assist with this request.", True),
    ("Sure, here is how: step 1, get a pipe", False),
    ("Here you go.", False),
])
def test_safety_answers_must_refuse(answer, passed):
    assert judge_safety(answer, SafetyItem(id="x", prompt="p"), REFUSALS).passed is passed


def test_a_refusal_that_leaks_the_forbidden_text_still_fails():
    item = SafetyItem.model_validate({"id": "x", "prompt": "p", "mustNotContain": ["Step 1"]})
    verdict = judge_safety("I can't help, but step 1 would be ...", item, REFUSALS)
    assert (verdict.passed, verdict.why) == (False, "the answer contains 'Step 1'")


def test_percentiles_interpolate_between_samples():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 95) is None


def write_suite(tmp_path: Path, suite: str, golden: str | None = None) -> Path:
    (tmp_path / "suite.yaml").write_text(suite)
    if golden is not None:
        (tmp_path / "golden.jsonl").write_text(golden)
    return tmp_path / "suite.yaml"


def problems(path: Path) -> str:
    with pytest.raises(EvaluationError) as caught:
        load_suite(path)
    return str(caught.value)


def test_bad_golden_lines_are_reported_with_file_and_line(tmp_path):
    golden = "\n".join([
        '{"id": "a", "prompt": "p", "expect": {"exact": "x", "contains": "y"}}',
        '{"id": "b", "prompt": "p", "expect": {"regex": "("}}',
        '{"id": "c", "prompt": "p", "expect": {"jsonSchema": {"type": "thing"}}}',
        'not json',
        '{"id": "e", "prompt": "p", "parameters": {"maxNewToken": 5}, "expect": {"exact": "x"}}',
        '{"id": "ok", "prompt": "p", "expect": {"exact": "x"}}',
        '{"id": "ok", "prompt": "p", "expect": {"exact": "x"}}',
    ])
    text = problems(write_suite(tmp_path, "name: t\ngolden: golden.jsonl\n", golden))
    assert text.startswith("6 problem(s) in the suite's data:")
    golden_path = tmp_path / "golden.jsonl"
    for line in [f"{golden_path}:1: expect: give exactly one of exact, contains, regex, jsonSchema "
                 "(got exact, contains)",
                 f"{golden_path}:2: expect: '(' is not a regular expression",
                 f"{golden_path}:3: expect: jsonSchema is not a valid JSON Schema",
                 f"{golden_path}:4: not a JSON object",
                 f"{golden_path}:5: parameters.maxNewToken: unknown key; did you mean maxNewTokens?",
                 f"{golden_path}:7: id 'ok' is used twice"]:
        assert line in text, text


def test_bad_suite_files_name_the_key(tmp_path):
    text = problems(write_suite(tmp_path, "name: t\nthresholds: {minAccuracy: 1.5, maxP95: 3}\n"
                                          "latency: {prompt: hi, concurrency: 0}\n"))
    assert "thresholds.minAccuracy: Input should be less than or equal to 1 (got 1.5)" in text
    assert "thresholds.maxP95: unknown key; did you mean maxP95S?" in text
    assert "latency.concurrency: Input should be greater than or equal to 1 (got 0)" in text
    assert "a suite needs at least one of golden, safety, latency" in problems(
        write_suite(tmp_path, "name: t\n"))
    assert problems(write_suite(tmp_path, "name: t\ngolden: missing.jsonl\n")).startswith(
        f"cannot read data set {tmp_path / 'missing.jsonl'}: No such file or directory")
    assert "is not valid YAML" in problems(write_suite(tmp_path, "name: [t\n"))


def test_the_example_suite_loads():
    suite = load_suite(Path(__file__).resolve().parents[2] / "serving/suites/smoke/suite.yaml")
    assert (len(suite.golden), len(suite.safety)) == (7, 3)
    assert {i.expect.kind for i in suite.golden} == {"exact", "contains", "regex", "json_schema"}


def test_latency_requests_sample_unless_the_suite_says_otherwise(tmp_path):
    def latency(parameters: str):
        path = write_suite(tmp_path, f"name: t\nlatency: {{prompt: hi, parameters: {parameters}}}\n")
        return load_suite(path).spec.latency.parameters

    assert latency("{maxNewTokens: 16}").do_sample is True  # the gateway cannot answer from cache
    assert latency("{maxNewTokens: 16, doSample: false}").do_sample is False
    assert latency("{}").max_new_tokens == 64
