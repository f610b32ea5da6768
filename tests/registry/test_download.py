"""download(): every file checksum-verified; a corrupted object is named and not kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.registry import ChecksumMismatch, RegistryError
from serving.registry.fetch import JOURNAL_SUFFIX, PART_SUFFIX
from tests.registry.conftest import BUCKET, MiB, write_model

WEIGHTS = "registry/models/tiny-llm/v1/files/model-00001-of-00001.safetensors"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def same_tree(a: Path, b: Path) -> bool:
    return tree(a) == tree(b)


def test_download_by_version_reproduces_the_registered_directory(registry, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)

    manifest = registry.download("tiny-llm", tmp_path / "out", version="v1")

    assert manifest["version"] == "v1"
    assert same_tree(model_dir, tmp_path / "out")


def test_download_by_stage_fetches_the_promoted_version(registry, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    registry.register("tiny-llm", "v2", write_model(tmp_path / "v2", {"w.bin": b"second"}))
    registry.promote("tiny-llm", "v2", "staging")

    registry.download("tiny-llm", tmp_path / "out", stage="staging")

    assert same_tree(tmp_path / "v2", tmp_path / "out")


def test_multipart_download_of_a_large_file_verifies(registry, tmp_path):
    big = bytes(range(251)) * (11 * MiB // 251)
    registry.register("big", "v1", write_model(tmp_path / "m", {"w.safetensors": big}))

    registry.download("big", tmp_path / "out", version="v1")

    assert (tmp_path / "out" / "w.safetensors").read_bytes() == big


def test_a_corrupted_object_is_detected_and_named(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    original = s3.get_object(Bucket=BUCKET, Key=WEIGHTS)["Body"].read()
    s3.put_object(Bucket=BUCKET, Key=WEIGHTS, Body=original[:-1] + b"X")  # same size, one byte flipped

    with pytest.raises(ChecksumMismatch) as err:
        registry.download("tiny-llm", tmp_path / "out", version="v1")

    message = str(err.value)
    assert message.startswith("tiny-llm v1: checksum mismatch for file model-00001-of-00001.safetensors")
    assert f"s3://{BUCKET}/{WEIGHTS}" in message
    out = tmp_path / "out"
    assert not (out / "model-00001-of-00001.safetensors").exists()
    # the corrupted bytes are not left behind; another file cut off by the failure may keep
    # its partial bytes with their journal, to resume (the resume re-verifies them)
    assert not (out / "model-00001-of-00001.safetensors.part").exists()
    for partial in out.glob("*.part"):
        journal = partial.with_name(partial.name.removesuffix(PART_SUFFIX) + JOURNAL_SUFFIX)
        assert journal.exists(), f"{partial.name} has no journal"


def test_a_truncated_object_is_detected(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    s3.put_object(Bucket=BUCKET, Key=WEIGHTS, Body=b"short")

    with pytest.raises(ChecksumMismatch, match=r"manifest says 16384 bytes.*the object has 5 bytes"):
        registry.download("tiny-llm", tmp_path / "out", version="v1")


def test_a_deleted_object_is_reported_by_name(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    s3.delete_object(Bucket=BUCKET, Key="registry/models/tiny-llm/v1/files/config.json")

    with pytest.raises(RegistryError, match=r"file config.json is in the manifest but .* is missing"):
        registry.download("tiny-llm", tmp_path / "out", version="v1")


def test_a_local_file_that_already_matches_is_kept(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    out = tmp_path / "out"
    registry.download("tiny-llm", out, version="v1")
    downloads: list[str] = []
    s3.meta.events.register("before-parameter-build.s3.GetObject",
                            lambda params, **_: downloads.append(params["Key"]))
    (out / "config.json").write_bytes(b"edited locally")

    registry.download("tiny-llm", out, version="v1")

    assert downloads == ["registry/models/tiny-llm/v1/manifest.json",
                         "registry/models/tiny-llm/v1/files/config.json"]
    assert same_tree(model_dir, out)
