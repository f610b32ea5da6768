"""Audit trails and secrets at rest: every log group is KMS-encrypted with a key CloudWatch
Logs may use for exactly those groups, retention follows each environment's config, container
logs (the gateway's audit lines) have a destination, and Kubernetes secrets are envelope-
encrypted with the cluster's own key."""

from __future__ import annotations

import json

import pytest

from llmops.offline.plan import run_plan
from tests.conftest import STACKS
from vocabulary.stackfile import OFFLINE_SECRET

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KMS_KEY = "aws:kms/key:Key"


def _groups(plan) -> dict[str, dict]:
    return {g.inputs["name"]: g.inputs for g in plan.of_type(LOG_GROUP)}


def _log_key(plan):
    [key] = [k for k in plan.of_type(KMS_KEY) if k.name == "logs"]
    return key


@pytest.mark.parametrize("stack", STACKS)
def test_every_log_group_is_encrypted_with_the_log_key_and_expires(plans, stack):
    plan = plans[stack]
    groups = _groups(plan)
    key_urn = _log_key(plan).urn
    cluster = plan.config.cluster_name
    assert {f"/aws/eks/{cluster}/cluster", "/llmops/network/vpc-flow-logs",
            f"/aws/containerinsights/{cluster}/application",
            f"/aws/codebuild/{cluster}-workloads"} <= set(groups)
    for group in plan.of_type(LOG_GROUP):
        assert group.inputs.get("kmsKeyId"), group.name
        assert key_urn in group.dependencies, group.name  # the key (and its policy) exists first
        assert group.inputs["retentionInDays"] > 0, group.name


@pytest.mark.parametrize("stack", STACKS)
def test_retention_follows_the_environment_config(plans, stack):
    plan = plans[stack]
    groups, cfg = _groups(plan), plan.config
    assert groups[f"/aws/eks/{cfg.cluster_name}/cluster"]["retentionInDays"] == cfg.cluster.log_retention_days
    assert groups["/llmops/network/vpc-flow-logs"]["retentionInDays"] == cfg.network.flow_logs.retention_days
    application = groups[f"/aws/containerinsights/{cfg.cluster_name}/application"]
    assert application["retentionInDays"] == cfg.cluster.log_retention_days


def test_environments_keep_audit_logs_for_different_periods(plans):
    kept = {s: (plans[s].config.cluster.log_retention_days, plans[s].config.network.flow_logs.retention_days)
            for s in STACKS}
    assert kept["dev"] == (30, 14)
    assert kept["prod"][0] >= 365 and kept["prod"][1] >= 365


@pytest.mark.long_pole
def test_a_retention_change_in_config_reaches_the_log_groups():
    plan = run_plan("dev", overrides={"llmops:cluster.logRetentionDays": 7,
                                      "llmops:network.flowLogs.retentionDays": 3})
    groups = _groups(plan)
    assert groups["/llmops/network/vpc-flow-logs"]["retentionInDays"] == 3
    assert groups[f"/aws/eks/{plan.config.cluster_name}/cluster"]["retentionInDays"] == 7


@pytest.mark.parametrize("stack", STACKS)
def test_cloudwatch_logs_may_use_the_key_for_our_log_groups_only(plans, stack):
    plan = plans[stack]
    key = _log_key(plan).inputs
    assert key["enableKeyRotation"] is True
    policy = json.loads(key["policy"])
    [logs] = [s for s in policy["Statement"] if s.get("Principal", {}).get("Service")]
    assert logs["Principal"] == {"Service": f"logs.{plan.config.region}.amazonaws.com"}
    assert set(logs["Action"]) == {"kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*",
                                   "kms:GenerateDataKey*", "kms:Describe*"}
    allowed = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]
    prefix = f"arn:aws:logs:{plan.config.region}:"
    assert all(a.startswith(prefix) and ":log-group:" in a and "*" not in a for a in allowed)
    # exactly the groups the platform encrypts with it: no more, none missing
    assert sorted(a.split(":log-group:", 1)[1] for a in allowed) == sorted(_groups(plan))


@pytest.mark.parametrize("stack", STACKS)
def test_kubernetes_secrets_are_encrypted_with_the_clusters_own_rotated_key(plans, stack):
    plan = plans[stack]
    [cluster] = plan.of_type("aws:eks/cluster:Cluster")
    encryption = cluster.inputs["encryptionConfig"]
    assert encryption["resources"] == ["secrets"]
    [secrets_key] = [k for k in plan.of_type(KMS_KEY) if k.name == "cluster-secrets"]
    assert secrets_key.urn in cluster.dependencies
    assert secrets_key.inputs["enableKeyRotation"] is True
    assert secrets_key.urn != _log_key(plan).urn


@pytest.mark.parametrize("stack", STACKS)
def test_what_the_stack_stores_as_secrets_stays_secret(plans, stack):
    """Grafana's password, receiver URLs and gateway keys travel as Pulumi secrets into
    Kubernetes Secrets (masked in the plan), never into a ConfigMap or a Helm value."""
    plan = plans[stack]
    secrets = plan.of_type("kubernetes:core/v1:Secret")
    assert {s.inputs["metadata"]["name"] for s in secrets} >= {"grafana-admin", "llm-gateway-keys"}
    dump = json.dumps(plan.to_json())
    assert OFFLINE_SECRET not in dump
    for config_map in plan.of_type("kubernetes:core/v1:ConfigMap"):
        assert "keys.yaml" not in config_map.inputs.get("data", {})
    assert "kubeconfig" in plan.secret_outputs
