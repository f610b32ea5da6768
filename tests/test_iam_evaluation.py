"""How the `runner-identity` deploy check evaluates IAM identity policies (`allows`): what the
in-VPC runner's role may call decides whether the workloads `up` fails with AccessDenied. Each
case a small policy document, as IAM evaluates it."""

from __future__ import annotations

import pytest

from llmops.offline.deploy_checks.identity import allows

BUCKET = "arn:aws:s3:::models"
OBJECT = "arn:aws:s3:::models/registry/m.json"


def allow(**statement) -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", **statement}]}


def deny(**statement) -> dict:
    return {"Statement": {"Effect": "Deny", **statement}}  # a single statement, not a list


@pytest.mark.parametrize(("action_pattern", "granted"), [
    ("s3:GetObject", True), ("s3:getobject", True), ("s3:Get*", True), ("s3:*", True), ("*", True),
    ("s3:GetObjec?", True), ("s3:GetObject?", False), ("s3:Put*", False), ("s3:GetObjectAcl", False),
    (["s3:PutObject", "s3:GetObject"], True)])
def test_actions_match_with_wildcards_and_ignore_case(action_pattern, granted):
    assert allows([allow(Action=action_pattern, Resource="*")], "s3:GetObject", OBJECT) is granted


@pytest.mark.parametrize(("resource_pattern", "granted"), [
    (OBJECT, True), ("arn:aws:s3:::models/*", True), ("arn:aws:s3:::MODELS/*", False),
    (BUCKET, False), ("arn:aws:s3:::models/registry/?.json", True),
    ("arn:aws:s3:::models/registry/??.json", False)])
def test_resources_match_with_wildcards_and_respect_case(resource_pattern, granted):
    assert allows([allow(Action="s3:GetObject", Resource=resource_pattern)],
                  "s3:GetObject", OBJECT) is granted


def test_not_action_and_not_resource_grant_everything_else():
    assert allows([allow(NotAction="iam:*", Resource="*")], "s3:GetObject", OBJECT) is True
    assert allows([allow(NotAction="iam:*", Resource="*")], "iam:PassRole", OBJECT) is False
    assert allows([allow(Action="s3:*", NotResource=BUCKET)], "s3:GetObject", OBJECT) is True
    assert allows([allow(Action="s3:*", NotResource=BUCKET)], "s3:ListBucket", BUCKET) is False


def test_a_deny_wins_over_any_allow_and_nothing_is_allowed_by_default():
    granted = allow(Action="s3:*", Resource="*")
    assert allows([granted, deny(Action="s3:GetObject", Resource=OBJECT)], "s3:GetObject", OBJECT) is False
    assert allows([granted, deny(Action="s3:PutObject", Resource=OBJECT)], "s3:GetObject", OBJECT) is True
    assert allows([], "s3:GetObject", OBJECT) is False
    assert allows([{"Statement": [{"Effect": "Audit", "Action": "*", "Resource": "*"}]}],
                  "s3:GetObject", OBJECT) is False


@pytest.mark.parametrize(("operator", "wanted", "got", "holds"), [
    ("StringEquals", "models", "models", True), ("StringEquals", "models", "Models", False),
    ("StringEqualsIgnoreCase", "models", "MODELS", True),
    ("StringEqualsIgnoreCase", "models", "other", False),
    ("StringLike", "registry/*", "registry/m.json", True), ("StringLike", "registry/*", "Registry/m", False),
    ("ArnEquals", BUCKET, BUCKET, True), ("ArnEquals", BUCKET, OBJECT, False),
    ("ArnLike", "arn:aws:s3:::models*", OBJECT, True), ("ArnLike", "arn:aws:s3:::other*", OBJECT, False),
    ("StringEquals", ["a", "models"], "models", True), ("StringEquals", ["a", "b"], "models", False)])
def test_each_condition_operator_grants_only_when_it_holds(operator, wanted, got, holds):
    policy = allow(Action="s3:GetObject", Resource="*", Condition={operator: {"s3:prefix": wanted}})
    assert allows([policy], "s3:GetObject", OBJECT, {"s3:prefix": got}) is holds


def test_every_condition_of_a_statement_must_hold():
    policy = allow(Action="s3:GetObject", Resource="*", Condition={
        "StringEquals": {"s3:prefix": "registry/", "aws:RequestedRegion": "us-west-2"}})
    assert allows([policy], "s3:GetObject", OBJECT,
                  {"s3:prefix": "registry/", "aws:RequestedRegion": "us-west-2"}) is True
    assert allows([policy], "s3:GetObject", OBJECT,
                  {"s3:prefix": "registry/", "aws:RequestedRegion": "eu-west-1"}) is False


def test_an_absent_key_fails_a_condition_unless_if_exists_or_for_all_values():
    def granted(operator: str) -> bool:
        policy = allow(Action="s3:GetObject", Resource="*", Condition={operator: {"s3:prefix": "r/"}})
        return allows([policy], "s3:GetObject", OBJECT, {})

    assert granted("StringEquals") is False
    assert granted("ForAnyValue:StringEquals") is False
    assert granted("StringEqualsIfExists") is True
    assert granted("ForAllValues:StringEquals") is True


def test_a_condition_this_reader_does_not_understand_never_grants_and_always_denies():
    unknown = {"NumericLessThan": {"s3:max-keys": "10"}}
    assert allows([allow(Action="*", Resource="*", Condition=unknown)], "s3:GetObject", OBJECT) is False
    odd_qualifier = {"Sometimes:StringEquals": {"s3:prefix": "r/"}}
    assert allows([allow(Action="*", Resource="*", Condition=odd_qualifier)], "s3:GetObject", OBJECT,
                  {"s3:prefix": "r/"}) is False
    assert allows([allow(Action="*", Resource="*"), deny(Action="*", Resource="*", Condition=unknown)],
                  "s3:GetObject", OBJECT) is False
