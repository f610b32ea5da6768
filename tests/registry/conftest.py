"""Registry fixtures: a moto-backed S3 bucket, a registry on it, and model directories."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from moto import mock_aws

from serving.registry import ModelRegistry

BUCKET = "models-test"
MiB = 1024 * 1024
#: s3transfer never makes parts smaller than 5 MiB, so an 11 MiB file gives three parts.
SMALL_MULTIPART = TransferConfig(multipart_threshold=1 * MiB, multipart_chunksize=5 * MiB, max_concurrency=2)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "LLMOPS_REGISTRY_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def s3(aws: None):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def registry(s3) -> ModelRegistry:
    return ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART)


def write_model(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A small model with nested files, as a Hugging Face snapshot looks."""
    return write_model(tmp_path / "tiny-llm", {
        "config.json": b'{"model_type": "llama"}',
        "tokenizer/tokenizer.json": b'{"vocab": {}}',
        "tokenizer/special/tokens_map.json": b"{}",
        "model-00001-of-00001.safetensors": bytes(range(256)) * 64,
    })


def snapshot(s3, bucket: str = BUCKET) -> dict[str, str]:
    """Every object in the bucket with its ETag: equal snapshots mean nothing changed."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}
