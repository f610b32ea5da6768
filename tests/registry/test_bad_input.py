"""Bad input: a clear RegistryError a user can act on, and the registry exactly as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.registry import (
    InvalidName,
    ModelRegistry,
    RegistryError,
    SourceNotFound,
    UnknownModel,
    UnknownVersion,
    VersionConflict,
)
from tests.registry.conftest import BUCKET, snapshot, write_model
from vocabulary.errors import LlmopsError


@pytest.fixture
def populated(registry, model_dir) -> ModelRegistry:
    registry.register("tiny-llm", "v1", model_dir, {"k": "v"})
    registry.promote("tiny-llm", "v1", "production")
    return registry


@pytest.fixture
def unchanged(s3, populated):
    """Asserts after the test body that no object was added, removed or rewritten."""
    before = snapshot(s3)
    yield
    assert snapshot(s3) == before


def test_every_registry_error_is_an_llmops_error():
    for cls in (InvalidName, SourceNotFound, UnknownModel, UnknownVersion, VersionConflict):
        assert issubclass(cls, RegistryError) and issubclass(cls, LlmopsError)


def test_unknown_model(populated, unchanged, tmp_path):
    expected = f"unknown model 'gpt-9' in s3://{BUCKET}/registry/ (registered models: tiny-llm)"
    for call in (lambda: populated.get("gpt-9"), lambda: populated.get("gpt-9", version="v1"),
                 lambda: populated.versions("gpt-9"), lambda: populated.promote("gpt-9", "v1", "production"),
                 lambda: populated.download("gpt-9", tmp_path / "out")):
        with pytest.raises(UnknownModel) as err:
            call()
        assert str(err.value) == expected


def test_unknown_model_in_an_empty_registry_says_so(s3):
    with pytest.raises(UnknownModel, match=r"\(the registry is empty\)"):
        ModelRegistry(BUCKET, s3_client=s3).get("tiny-llm")


def test_unknown_version(populated, unchanged):
    for call in (lambda: populated.get("tiny-llm", version="v9"),
                 lambda: populated.promote("tiny-llm", "v9", "staging")):
        with pytest.raises(UnknownVersion) as err:
            call()
        assert str(err.value) == "model 'tiny-llm' has no version 'v9'; registered versions: v1"


def test_a_stage_with_no_version_yet(populated, unchanged):
    with pytest.raises(UnknownVersion) as err:
        populated.get("tiny-llm", stage="staging")
    assert str(err.value) == ("model 'tiny-llm' has no version in staging; promote one with "
                              "`llmops registry promote tiny-llm VERSION --stage staging`")


@pytest.mark.parametrize("stage", ["prod", "Production", "canary", ""])
def test_a_stage_that_is_not_allowed(populated, unchanged, stage):
    for call in (lambda: populated.promote("tiny-llm", "v1", stage),
                 lambda: populated.get("tiny-llm", stage)):
        with pytest.raises(InvalidName) as err:
            call()
        assert str(err.value) == f"unknown stage {stage!r}: allowed stages are staging, production"


def test_same_version_with_different_files(populated, unchanged, model_dir):
    (model_dir / "config.json").write_bytes(b'{"model_type": "mistral"}')
    (model_dir / "extra.txt").write_bytes(b"new")

    with pytest.raises(VersionConflict) as err:
        populated.register("tiny-llm", "v1", model_dir, {"k": "v"})

    message = str(err.value)
    assert message.startswith("tiny-llm v1 is already registered with different content (registered by "
                              "arn:aws:sts::123456789012:user/moto at ")
    assert "nothing was changed. Register it under a new version." in message
    assert "config.json: different content" in message
    assert "extra.txt: not in the registered version" in message


def test_same_version_with_different_metadata(populated, unchanged, model_dir):
    with pytest.raises(VersionConflict, match=r'metadata: registered \{"k": "v"\}, given \{"k": "w"\}'):
        populated.register("tiny-llm", "v1", model_dir, {"k": "w"})


def test_a_missing_local_directory(populated, unchanged, tmp_path):
    with pytest.raises(SourceNotFound) as err:
        populated.register("tiny-llm", "v2", tmp_path / "nope")
    assert str(err.value) == f"model directory {str(tmp_path / 'nope')!r} does not exist"


def test_a_file_or_an_empty_directory_is_not_a_model(populated, unchanged, tmp_path):
    (tmp_path / "empty").mkdir()
    write_model(tmp_path, {"single.bin": b"x"})
    with pytest.raises(SourceNotFound, match="contains no files"):
        populated.register("tiny-llm", "v2", tmp_path / "empty")
    with pytest.raises(SourceNotFound, match="is not a directory"):
        populated.register("tiny-llm", "v2", tmp_path / "single.bin")


def test_an_empty_s3_source(populated, unchanged):
    with pytest.raises(SourceNotFound, match="S3 source 's3://models-test/nothing/here/' holds no objects"):
        populated.register("tiny-llm", "v2", "s3://models-test/nothing/here/")


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "-leading-dash", ".hidden", "sp ace", "x" * 129,
                                  "naïve"])
def test_invalid_model_names(populated, unchanged, model_dir, name):
    with pytest.raises(InvalidName) as err:
        populated.register(name, "v1", model_dir)
    assert str(err.value) == (f"invalid model name {name!r}: use 1-128 characters: letters, digits, "
                              "'.', '_' or '-', starting with a letter or digit")


@pytest.mark.parametrize("version", ["..", "v1/../../x", "v 1", "stages"])
def test_invalid_version_names(populated, unchanged, model_dir, version):
    with pytest.raises(InvalidName, match=f"invalid version name {version!r}"):
        populated.register("tiny-llm", version, model_dir)


def test_metadata_must_be_json(populated, unchanged, model_dir):
    with pytest.raises(RegistryError, match="metadata must be JSON-serialisable"):
        populated.register("tiny-llm", "v2", model_dir, {"when": object()})
    with pytest.raises(RegistryError, match="metadata 'revision' must be a non-empty string"):
        populated.register("tiny-llm", "v2", model_dir, {"revision": 42})


def test_a_missing_bucket_is_a_clean_error(aws, model_dir):
    import boto3
    registry = ModelRegistry("no-such-bucket", s3_client=boto3.client("s3"))
    with pytest.raises(RegistryError, match=r"failed: NoSuchBucket"):
        registry.register("tiny-llm", "v1", model_dir)


def test_valid_names_are_accepted(registry, tmp_path: Path):
    manifest = registry.register("Llama-3.1_8B", "2024-07-23.r1", write_model(tmp_path, {"a": b"1"})).manifest
    assert manifest["uri"] == f"s3://{BUCKET}/registry/models/Llama-3.1_8B/2024-07-23.r1/files/"
