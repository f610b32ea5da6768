"""The ARNs AWS requires in the stack's region or account (vocabulary/config/arns.py cites where
AWS says so), checked at each config key, and left alone where AWS does not require it."""

from __future__ import annotations

import pytest

from vocabulary.config import PRODUCT, ConfigError, parse_platform_config
from vocabulary.stackfile import read_stack_config

CONNECTION = "arn:aws:{service}:{region}:{account}:connection/7d2c4f1e-9a3b-4c5d-8e6f-1a2b3c4d5e6f"
SECRET = "arn:aws:secretsmanager:{region}:{account}:secret:ecr-pullthroughcache/ghcr-AbCdEf"


def problems(overrides: dict) -> list[str]:
    values = read_stack_config("prod").with_overrides(overrides).values
    try:
        parse_platform_config(values, project=PRODUCT, stack="prod")
    except ConfigError as exc:
        return exc.problems
    return []


def test_a_certificate_of_another_region_is_refused():
    arn = "arn:aws:acm:us-west-2:123456789012:certificate/0b3a7c9e-5d1f-4e2a-9c8b-7f6e5d4c3b2a"
    assert problems({"llmops:gateway.certificateArn": arn}) == [
        f"llmops:gateway.certificateArn: {arn!r} is in us-west-2 but the stack deploys to "
        "us-east-1 (aws:region); an ALB can only use an ACM certificate of its own region: "
        "request or import one there"]


@pytest.mark.parametrize(("region", "account", "refused"), [
    ("us-east-1", "123456789012", False), ("eu-west-1", "123456789012", True),
    ("us-east-1", "210987654321", True)])
def test_the_cache_credential_must_share_the_rules_region_and_account(region, account, refused):
    found = problems({"aws:allowedAccountIds": ["123456789012"],
                      "llmops:images.ghcrCredentialArn": SECRET.format(region=region, account=account)})
    assert bool(found) == refused
    assert all(p.startswith("llmops:images.ghcrCredentialArn: ") for p in found)


def test_the_account_is_checked_only_where_the_file_declares_it():
    assert problems({"llmops:images.ghcrCredentialArn": SECRET.format(
        region="us-east-1", account="210987654321")}) == []


@pytest.mark.parametrize(("service", "region", "account", "refused"), [
    ("codeconnections", "eu-west-1", "210987654321", False),   # global, shareable through RAM
    ("codestar-connections", "eu-west-1", "123456789012", False),  # global
    ("codestar-connections", "us-east-1", "210987654321", True),  # cannot be shared
])
def test_connections_are_global_and_only_codestar_ones_are_bound_to_the_account(
        service, region, account, refused):
    found = problems({"aws:allowedAccountIds": ["123456789012"],
                      "llmops:ci.githubConnectionArn": CONNECTION.format(
                          service=service, region=region, account=account)})
    arn = CONNECTION.format(service=service, region=region, account=account)
    assert found == ([] if not refused else [
        f"llmops:ci.githubConnectionArn: {arn!r} "
        "is in account 210987654321 but the stack deploys to 123456789012 (aws:allowedAccountIds); "
        "a codestar-connections connection cannot be shared with another account: create the "
        "connection in the stack's account"])
