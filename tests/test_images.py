"""Images near the nodes: a regional pull-through cache for ghcr.io and a pre-pull on GPU
nodes as they join."""

from __future__ import annotations

import json

import pytest

from components.image_cache import mirrored
from llmops.offline.plan import run_plan
from vocabulary.config import ConfigError

CREDENTIAL = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/ghcr-AbCdEf"
TGI = "ghcr.io/huggingface/text-generation-inference:3.3.7"


def test_an_image_of_a_mirrored_registry_is_pulled_through_its_mirror():
    mirrors = {"ghcr.io": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr"}
    assert mirrored(TGI, mirrors) == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr/huggingface/text-generation-inference:3.3.7")
    assert mirrored("registry.k8s.io/pause:3.10", mirrors) == "registry.k8s.io/pause:3.10"
    assert mirrored(TGI, {}) == TGI


@pytest.fixture(scope="module")
def cached():
    return run_plan("prod", overrides={"llmops:images.ghcrCredentialArn": CREDENTIAL})


def test_with_a_credential_tgi_comes_from_the_regional_cache(cached):
    rule = cached.one("aws:ecr/pullThroughCacheRule:PullThroughCacheRule").inputs
    assert (rule["ecrRepositoryPrefix"], rule["upstreamRegistryUrl"], rule["credentialArn"]) == (
        "ghcr", "ghcr.io", CREDENTIAL)
    deployment = cached.one("kubernetes:apps/v1:Deployment", "llama-3-8b-stable").inputs
    tgi = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "tgi")
    assert tgi["image"].startswith("123456789012.dkr.ecr.us-east-1.amazonaws.com/ghcr/huggingface/")
    prepull = cached.one("kubernetes:apps/v1:DaemonSet", "prepull").inputs
    assert prepull["spec"]["template"]["spec"]["initContainers"][0]["image"] == tgi["image"]


def test_nodes_may_import_only_under_the_cache_prefix(cached):
    policy = json.loads(cached.one("aws:iam/rolePolicy:RolePolicy", "images-nodes").inputs["policy"])
    [statement] = policy["Statement"]
    assert statement["Action"] == ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"]
    assert statement["Resource"] == "arn:aws:ecr:us-east-1:123456789012:repository/ghcr/*"


def test_without_a_credential_nothing_is_cached_and_tgi_comes_from_ghcr(plans):
    plan = plans["dev"]
    assert plan.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule") == []
    assert plan.stack_outputs["platform"]["imageMirrors"] == {}
    prepull = plan.one("kubernetes:apps/v1:DaemonSet", "prepull").inputs
    assert prepull["spec"]["template"]["spec"]["initContainers"][0]["image"] == TGI
    # on every GPU node (tolerates the taint, any shape), and never awaited
    spec = prepull["spec"]["template"]["spec"]
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert prepull["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"


def test_a_credential_secret_ecr_would_refuse_is_a_config_error():
    with pytest.raises(ConfigError) as caught:
        run_plan("dev", overrides={"llmops:images.ghcrCredentialArn":
                                   "arn:aws:secretsmanager:us-west-2:123456789012:secret:ghcr-token"})
    assert caught.value.problems == [
        "llmops:images.ghcrCredentialArn: 'arn:aws:secretsmanager:us-west-2:123456789012:secret:"
        "ghcr-token' is not a Secrets Manager secret ARN whose name starts with "
        "ecr-pullthroughcache/ (ECR refuses other names)"]
