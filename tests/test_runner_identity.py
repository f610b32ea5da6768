"""The in-VPC runner's role may make every call the providers make for the workloads stack's
reads (issue 21, item 3): the aws_s3_object data source's HeadObject, GetObject of a version
and GetObjectTagging, looked up in components/data/provider_reads.yaml."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from components.ci_runner import runner_policy
from llmops.offline.deploy_checks import check
from llmops.offline.deploy_checks.identity import allows, provider_reads
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedInvoke
from serving.registry.store import JSON_TYPE
from tests.conftest import STACKS

BUCKET = "arn:aws:s3:::models-1a2b"
KEY = "arn:aws:kms:us-east-1:123456789012:key/0b3a7c9e-5d1f-4e2a-9c8b-7f6e5d4c3b2a"
GET_OBJECT = "aws:s3/getObject:getObject"


def _policy() -> dict:
    return json.loads(runner_policy(
        region="us-east-1", account_id="123456789012", cluster_name="llmops-prod",
        subnet_arns=["arn:aws:ec2:us-east-1:123456789012:subnet/subnet-1"],
        log_group_arn="arn:aws:logs:us-east-1:123456789012:log-group:/aws/codebuild/x",
        connection_arn="arn:aws:codeconnections:us-east-1:123456789012:connection/c",
        bucket_arn=BUCKET, registry_prefix="registry/", key_arn=KEY,
        parameter_prefix="/llmops/prod/workloads/"))


def _findings(plan: Plan) -> list:
    return [f for f in check(plan) if f.rule == "runner-identity"]


def _with_runner_policy(plan: Plan, statements_filter) -> Plan:
    """The plan with the runner's inline policy rewritten: the defect put back."""
    def rewrite(resource):
        if resource.name != "ci-runner-policy":
            return resource
        document = json.loads(resource.inputs["policy"])
        document["Statement"] = [s for s in map(statements_filter, document["Statement"]) if s]
        return dataclasses.replace(resource, inputs={**resource.inputs,
                                                     "policy": json.dumps(document)})
    return dataclasses.replace(plan, resources=[rewrite(r) for r in plan.resources])


def test_the_runner_role_grants_every_call_of_the_s3_object_data_source_on_the_registry():
    policy = [_policy()]
    pointer = f"{BUCKET}/registry/models/m/stages/production.json"
    for action in ("s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging"):
        assert allows(policy, action, pointer), action
    assert allows(policy, "kms:Decrypt", KEY, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})


def test_the_runner_role_reads_nothing_outside_the_registry():
    policy = [_policy()]
    assert not allows(policy, "s3:GetObjectVersion", f"{BUCKET}/weights/m/model.safetensors")
    assert not allows(policy, "s3:PutObject", f"{BUCKET}/registry/models/m/stages/production.json")
    assert not allows(policy, "kms:Decrypt", KEY)  # only through S3
    assert not allows(policy, "kms:Decrypt", KEY, {"kms:ViaService": "ssm.us-east-1.amazonaws.com"})


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_runners_may_make_every_read_of_the_workloads_stack(plans, stack):
    plan = plans[stack]
    reads = {i.token for i in plan.invokes if i.stack == "workloads"}
    assert "pulumi:pulumi:StackReference" in reads
    assert _findings(plan) == []


def test_a_runner_role_that_only_gets_objects_is_found(plans):
    def old_read(statement):
        if statement.get("Sid") == "ReadRegistry":
            return {**statement, "Action": "s3:GetObject"}  # what the runner had before
        return statement

    findings = _findings(_with_runner_policy(plans["prod"], old_read))
    assert {f.resource for f in findings} == {
        i.args["key"] for i in plans["prod"].invokes if i.token == GET_OBJECT}
    message = findings[0].message
    assert "s3:GetObjectVersion on arn:aws:s3:::" in message
    assert "s3:GetObjectTagging on arn:aws:s3:::" in message
    assert "s3:GetObject on" not in message  # HeadObject is granted
    assert "grant it in components/ci_runner.py" in message


def test_a_runner_that_cannot_decrypt_through_s3_is_found(plans):
    findings = _findings(_with_runner_policy(
        plans["dev"], lambda s: None if s.get("Sid") == "DecryptRegistry" else s))
    assert findings and all("kms:Decrypt on arn:aws:kms:" in f.message for f in findings)


def test_an_explicit_deny_wins_over_the_grant(plans):
    deny = {"Effect": "Deny", "Action": "s3:GetObjectTagging", "Resource": "*"}
    plan = _with_runner_policy(plans["dev"], lambda s: s)
    policy = plan.one("aws:iam/rolePolicy:RolePolicy", "ci-runner-policy")
    document = json.loads(policy.inputs["policy"])
    document["Statement"].append(deny)
    plan = dataclasses.replace(plan, resources=[
        dataclasses.replace(r, inputs={**r.inputs, "policy": json.dumps(document)})
        if r is policy else r for r in plan.resources])
    assert {f.message.count("s3:GetObjectTagging") for f in _findings(plan)} == {1}


def test_an_unversioned_bucket_needs_no_version_read(plans):
    plan = plans["dev"]
    unversioned = dataclasses.replace(plan, resources=[
        dataclasses.replace(r, inputs={**r.inputs, "versioningConfiguration": {"status": "Suspended"}})
        if r.type == "aws:s3/bucketVersioning:BucketVersioning" else r for r in plan.resources])
    no_versions = lambda s: ({**s, "Action": ["s3:GetObject", "s3:GetObjectTagging"]}  # noqa: E731
                             if s.get("Sid") == "ReadRegistry" else s)
    assert _findings(_with_runner_policy(unversioned, no_versions)) == []
    assert _findings(_with_runner_policy(plan, no_versions))


def test_a_read_nobody_looked_up_in_the_provider_is_found(plans):
    plan = plans["dev"]
    unknown = RecordedInvoke("aws:ssm/getParameter:getParameter", {"name": "/llmops/dev/x"},
                             "workloads")
    [finding] = _findings(dataclasses.replace(plan, invokes=[*plan.invokes, unknown]))
    assert finding.resource == "/llmops/dev/x"
    assert "reads aws:ssm/getParameter:getParameter on the runner, which no row of " \
           "components/data/provider_reads.yaml describes" in finding.message


def test_a_runner_that_is_not_a_cluster_admin_is_found(plans):
    plan = plans["dev"]
    runner_arn = plan.stack_outputs["platform"]["ciRunnerRoleArn"]
    without = dataclasses.replace(plan, resources=[
        r for r in plan.resources if not (r.type == "aws:eks/accessPolicyAssociation:"
                                          "AccessPolicyAssociation"
                                          and r.inputs.get("principalArn") == runner_arn)])
    [finding] = _findings(without)
    assert finding.resource == "ci-runner-project"
    assert "no EKS access entry with AmazonEKSClusterAdminPolicy" in finding.message


def test_the_registry_writes_a_content_type_whose_body_the_data_source_reads():
    readable = provider_reads()[GET_OBJECT]["bodyContentTypes"]
    assert any(re.match(p, JSON_TYPE) for p in readable)
    assert not any(re.match(p, "application/octet-stream") for p in readable)


def test_every_row_cites_its_provider_source():
    for token, row in provider_reads().items():
        assert row["source"].split()[0].count("/") == 1, token  # owner/repo first
        assert all({"api", "action"} <= set(call) for call in row["calls"]), token
