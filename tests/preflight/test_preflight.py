"""`llmops preflight` against a moto server (STS, EC2, Service Quotas, SSM, ECR, S3) and a
stubbed CodeConnections: an account set up wrong reports every failing check at once with
what to run, and exits 1; one set up right passes every check."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.cli import build_parser
from llmops.commands import preflight
from llmops.offline.secrets import needed_secrets
from llmops.preflight.quotas import gpu_vcpu_needs
from serving.registry import ModelRegistry
from tests.preflight.fake_aws import EC2_QUOTAS, image_manifest, stubbed_connection
from vocabulary.config import parse_platform_config
from vocabulary.stackfile import STACKS_DIR

OTHER_ACCOUNT = "210987654321"


def _stacks(tmp_path: Path, stack: str, secrets: bool, **changes: Any) -> Path:
    """A stacks dir with the environment file (dotted `changes` applied) and, when `secrets`,
    every secret the stack reads set as `secure:` in its workloads file."""
    document = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())
    for path, value in changes.items():
        key, *rest = path.split(".")
        node = document["config"][key]
        for part in rest[:-1]:
            node = node[part]
        node[rest[-1]] = value
    (tmp_path / "workloads").mkdir(parents=True)
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    if secrets:
        config = parse_platform_config(document["config"], project="llmops", stack=stack)
        workloads = {"config": {k: {"secure": "v1:AAAA"} for k in needed_secrets(config)}}
        (tmp_path / "workloads" / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(workloads))
    return tmp_path


def _publish_platform_outputs(aws, stack: str, region: str, bucket: str) -> str:
    repository = f"llmops-{stack}/llm-gateway"
    url = aws("ecr", region).create_repository(repositoryName=repository)["repository"]["repositoryUri"]
    ssm = aws("ssm", region)
    for name, value in {"modelBucket": bucket, "registryPrefix": "registry/",
                        "platformRepositoryUrl": url}.items():
        ssm.put_parameter(Name=f"/llmops/{stack}/platform/{name}", Value=value, Type="String")
    aws("s3", region).create_bucket(Bucket=bucket, **(
        {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}))
    return repository


def _connection_arn(stacks_dir: Path, stack: str) -> str:
    document = yaml.safe_load((stacks_dir / f"Pulumi.{stack}.yaml").read_text())
    return document["config"]["llmops:ci"]["githubConnectionArn"]


def _run(stacks_dir: Path, stack: str, aws, connection: Any, *extra: str) -> int:
    args = build_parser().parse_args(["preflight", "--stack", stack, "--stacks-dir", str(stacks_dir), *extra])
    return preflight.run(args, make_client=lambda service, region: (
        connection if service in ("codeconnections", "codestar-connections") else aws(service, region)))


def test_an_account_set_up_wrong_reports_every_failure_at_once_with_what_to_run(tmp_path, aws, capsys):
    arn = (f"arn:aws:codestar-connections:us-west-2:{OTHER_ACCOUNT}:connection/"
           "7d2c4f1e-9a3b-4c5d-8e6f-1a2b3c4d5e6f")
    stacks = _stacks(tmp_path, "dev", secrets=False, **{"llmops:network.azCount": 6,
                                                        "llmops:ci.githubConnectionArn": arn})
    _publish_platform_outputs(aws, "dev", "us-west-2", "llmops-dev-models")  # no image, no models
    EC2_QUOTAS.update({"L-3819A6DF": 0.0})  # a new account's spot G quota
    connection, stubber = stubbed_connection("us-west-2", arn, "PENDING")

    assert _run(stacks, "dev", aws, connection) == 1
    stubber.assert_no_pending_responses()
    out = capsys.readouterr().out
    lines = out.splitlines()[1:-1]
    assert {line.split()[1] for line in lines if line.split()[0] == "FAIL"} == {
        "identity", "zones", "quota", "spot-role", "connection", "image", "model", "secret"}
    assert not [line for line in lines if line.split()[0] != "FAIL"]
    assert f"account 123456789012, but llmops:ci.githubConnectionArn names {OTHER_ACCOUNT}" in out
    assert "4 available in us-west-2 (us-west-2a, us-west-2b, us-west-2c, us-west-2d); azCount 6" in out
    assert ("All G and VT Spot Instance Requests: 0 vCPUs; pools gpu24-x1 need 12 at their NodePool limits; "
            "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-3819A6DF "
            "--desired-value 12 --region us-west-2") in out
    assert ("AWSServiceRoleForEC2Spot is missing; pools gpu24-x1 would get no spot nodes (Karpenter "
            "marks spot unavailable); run the bootstrap stack (stacks/bootstrap) or "
            "`aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`") in out
    assert "is PENDING; complete it in the console" in out
    assert "llmops-dev/llm-gateway:0.1.0 is not in ECR; push it" in out
    assert "run `llmops registry promote llama-3-8b VERSION --stage staging`" in out
    assert ("run `(cd stacks/workloads && pulumi config set --secret --stack dev "
            "llmops-secrets:grafanaAdminPassword)`") in out
    assert out.splitlines()[-1] == f"{len(lines)} of {len(lines)} checks failed: fix them before `up`."


def test_a_codeconnections_connection_shared_from_another_account_is_not_an_identity_failure(
        tmp_path, aws, capsys):
    """codeconnections connections can be shared through AWS RAM; only codestar-connections
    ones cannot (vocabulary/config/arns.py), so only those must be in the caller's account."""
    arn = (f"arn:aws:codeconnections:us-west-2:{OTHER_ACCOUNT}:connection/"
           "7d2c4f1e-9a3b-4c5d-8e6f-1a2b3c4d5e6f")
    stacks = _stacks(tmp_path, "dev", secrets=True, **{"llmops:ci.githubConnectionArn": arn})
    _publish_platform_outputs(aws, "dev", "us-west-2", "llmops-dev-models")
    connection, _ = stubbed_connection("us-west-2", arn, "AVAILABLE")
    _run(stacks, "dev", aws, connection)
    identity = [line for line in capsys.readouterr().out.splitlines() if line.split()[1:2] == ["identity"]]
    assert identity and identity[0].split()[0] == "ok", identity


def _create_spot_role(aws) -> None:
    """What the bootstrap's ServiceLinkedRole leaves behind (moto names created ones otherwise)."""
    aws("iam", "us-east-1").create_role(
        RoleName="AWSServiceRoleForEC2Spot", Path="/aws-service-role/spot.amazonaws.com/",
        AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": []}')


def test_an_account_set_up_right_passes_every_check(tmp_path, aws, capsys):
    stacks = _stacks(tmp_path, "prod", secrets=True)
    _create_spot_role(aws)
    repository = _publish_platform_outputs(aws, "prod", "us-east-1", "llmops-prod-models")
    aws("ecr", "us-east-1").put_image(repositoryName=repository, imageManifest=image_manifest(),
                                      imageTag="0.1.0")
    registry = ModelRegistry("llmops-prod-models", s3_client=aws("s3", "us-east-1"), identity="test")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    for name, version, revision in (
            ("llama-3-8b", "2025-10-01", "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"),
            ("llama-3-8b", "2025-11-12", "5f0b02c75b57c5855da9ae460ce51323ea669d8a"),
            ("qwen-2-5-32b", "2025-09-30", "0d1b2c3a4f5e6d7c8b9a0f1e2d3c4b5a69788796")):
        registry.register(name, version, weights, metadata={"revision": revision})
    registry.promote("qwen-2-5-32b", "2025-09-30", "production")
    EC2_QUOTAS.update({"L-DB2E81BA": 576.0, "L-3819A6DF": 384.0})
    connection, _ = stubbed_connection("us-east-1", _connection_arn(stacks, "prod"), "AVAILABLE")

    assert _run(stacks, "prod", aws, connection) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and out.rstrip().endswith("checks passed.")
    assert re.search(r"ok\s+quota L-DB2E81BA\s+Running On-Demand G and VT instances: 576 vCPUs", out)
    assert re.search(r"ok\s+quota L-3819A6DF\s+All G and VT Spot Instance Requests: 384 vCPUs", out)
    assert re.search(r"ok\s+spot-role\s+AWSServiceRoleForEC2Spot exists", out)
    assert re.search(r"ok\s+model qwen-2-5-32b \(stable\)\s+stage production -> 2025-09-30", out)
    assert re.search(r"ok\s+model llama-3-8b \(canary\)\s+version 2025-11-12 -> 2025-11-12", out)


def test_before_the_platform_only_the_account_is_checked(tmp_path, aws, capsys):
    stacks = _stacks(tmp_path, "dev", secrets=False)
    _create_spot_role(aws)
    EC2_QUOTAS.update({"L-3819A6DF": 16.0})
    connection, _ = stubbed_connection("us-west-2", _connection_arn(stacks, "dev"), "AVAILABLE")
    assert _run(stacks, "dev", aws, connection, "--before", "platform") == 0
    names = [line.split()[1] for line in capsys.readouterr().out.splitlines()[1:-1]]
    assert names == ["identity", "zones", "quota", "spot-role", "connection"]


def test_print_images_names_each_tag_the_environment_needs_in_its_repository(tmp_path, aws, capsys):
    stacks = _stacks(tmp_path, "dev", secrets=False, **{"llmops:gateway.imageTag": "0.2.0"})
    _publish_platform_outputs(aws, "dev", "us-west-2", "llmops-dev-models")
    assert _run(stacks, "dev", aws, None, "--print-images") == 0
    images = capsys.readouterr().out.split()
    assert [i.rsplit(":", 1)[1] for i in images] == ["0.1.0", "0.2.0"]
    assert all(i.split("/", 1)[1].startswith("llmops-dev/llm-gateway:") for i in images)


def test_unreachable_aws_is_a_failed_check_not_a_traceback(tmp_path, aws, capsys):
    stacks = _stacks(tmp_path, "dev", secrets=True)
    import boto3

    def nowhere(service: str, region: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url="http://127.0.0.1:9")

    args = build_parser().parse_args(["preflight", "--stack", "dev", "--stacks-dir", str(stacks),
                                      "--before", "platform"])
    assert preflight.run(args, make_client=nowhere) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL\s+identity\s+could not reach AWS", out) and "5 of 5 checks failed" in out


@pytest.mark.parametrize(("stack", "expected"), [
    ("dev", [("G and VT", "SPOT", 12)]),
    # prod: the flex NodePools (12 x 8 and 4 x 48 vCPU) on spot or all on-demand, plus the
    # floors (6 x 8 and 2 x 48)
    ("prod", [("G and VT", "ON_DEMAND", 432), ("G and VT", "SPOT", 288)]),
])
def test_gpu_needs_are_each_nodepool_at_its_limit_on_its_largest_type(stack, expected):
    file = yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
    config = parse_platform_config(file, project="llmops", stack=stack)
    assert [(n.family, n.capacity, n.vcpus) for n in gpu_vcpu_needs(config)] == expected


def test_no_preflight_module_reaches_beyond_what_it_reads():
    """Read-only: no check calls an AWS API that writes."""
    package = Path(preflight.__file__).parents[1] / "preflight"
    source = "\n".join(p.read_text() for p in package.glob("*.py"))
    for verb in ("put_", "create_", "delete_", "update_", "request_service_quota_increase("):
        assert f".{verb}" not in source, verb

