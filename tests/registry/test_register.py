"""register(): what lands in S3, in which order, and what a second register does."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from serving.registry import ModelRegistry, UnknownModel, VersionConflict
from serving.registry import transfer as transfer_module
from tests.registry.conftest import BUCKET, MiB, snapshot, write_model

PREFIX = "registry/models/tiny-llm/v1/"


def test_register_uploads_nested_files_under_the_contract_keys(registry, s3, model_dir):
    registry.register("tiny-llm", "v1", model_dir)

    keys = set(snapshot(s3))
    assert {f"{PREFIX}files/config.json", f"{PREFIX}files/tokenizer/tokenizer.json",
            f"{PREFIX}files/tokenizer/special/tokens_map.json",
            f"{PREFIX}files/model-00001-of-00001.safetensors", f"{PREFIX}manifest.json"} == keys
    for key in keys - {f"{PREFIX}manifest.json"}:
        relative = key.removeprefix(f"{PREFIX}files/")
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == (model_dir / relative).read_bytes()


def test_manifest_records_sizes_and_sha256_of_every_file(registry, s3, model_dir):
    registry.register("tiny-llm", "v1", model_dir, {"source": "hf://org/tiny-llm"})

    obj = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}manifest.json")
    assert obj["ContentType"] == "application/json"
    manifest = json.loads(obj["Body"].read())
    expected = sorted(
        ({"path": p.relative_to(model_dir).as_posix(), "size": p.stat().st_size,
          "sha256": hashlib.sha256(p.read_bytes()).hexdigest()} for p in model_dir.rglob("*") if p.is_file()),
        key=lambda f: f["path"])
    assert manifest["files"] == expected
    assert manifest["totalBytes"] == sum(f["size"] for f in expected)
    assert manifest["uri"] == f"s3://{BUCKET}/{PREFIX}files/"
    assert (manifest["name"], manifest["version"]) == ("tiny-llm", "v1")
    assert manifest["metadata"] == {"source": "hf://org/tiny-llm"}
    assert manifest["registeredBy"] == "arn:aws:sts::123456789012:user/moto"
    assert manifest["registeredAt"].endswith("Z")
    assert len(manifest["revision"]) == 64


def test_revision_is_a_content_hash_unless_metadata_names_the_upstream_commit(registry, model_dir):
    a = registry.register("tiny-llm", "v1", model_dir).manifest
    b = registry.register("tiny-llm", "v2", model_dir).manifest
    c = registry.register("tiny-llm", "v3", model_dir, {"revision": "0123abc"}).manifest
    assert a["revision"] == b["revision"]
    assert c["revision"] == "0123abc"


def test_large_files_go_up_in_parts_and_arrive_intact(registry, s3, tmp_path):
    big = (b"0123456789abcdef" * (MiB // 16)) * 11 + b"tail"  # 11 MiB + 4 bytes: three 5 MiB-parts
    write_model(tmp_path / "m", {"weights.safetensors": big})

    registry.register("big", "v1", tmp_path / "m")

    key = "registry/models/big/v1/files/weights.safetensors"
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"].strip('"').endswith("-3"), "a multipart upload's ETag ends in -<parts>"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == big
    assert registry.get("big", version="v1")["files"][0]["sha256"] == hashlib.sha256(big).hexdigest()


def test_registering_identical_content_again_is_a_no_op(registry, s3, model_dir):
    first = registry.register("tiny-llm", "v1", model_dir, {"k": "v"})
    before = snapshot(s3)

    again = registry.register("tiny-llm", "v1", model_dir, {"k": "v"})

    assert first.created and not again.created
    assert again.manifest == first.manifest
    assert snapshot(s3) == before


def test_manifest_is_the_last_object_written(registry, s3, model_dir):
    writes: list[str] = []
    for operation in ("PutObject", "CompleteMultipartUpload", "CopyObject"):
        s3.meta.events.register(f"before-parameter-build.s3.{operation}",
                                lambda params, **_: writes.append(params["Key"]))

    registry.register("tiny-llm", "v1", model_dir)

    assert len(writes) == 5
    assert writes[-1] == f"{PREFIX}manifest.json"


def test_a_failed_upload_leaves_no_visible_version_and_a_rerun_completes_it(registry, s3, model_dir,
                                                                             monkeypatch):
    real_upload = s3.upload_file
    calls = {"n": 0}

    def failing_upload(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("network dropped")
        return real_upload(*args, **kwargs)

    monkeypatch.setattr(s3, "upload_file", failing_upload)
    with pytest.raises(ConnectionError):
        registry.register("tiny-llm", "v1", model_dir)

    assert f"{PREFIX}manifest.json" not in snapshot(s3)
    with pytest.raises(UnknownModel, match="unknown model 'tiny-llm'"):
        registry.versions("tiny-llm")

    monkeypatch.setattr(s3, "upload_file", real_upload)
    uploaded_before = {k: v for k, v in snapshot(s3).items() if "/files/" in k}
    result = registry.register("tiny-llm", "v1", model_dir)

    assert result.created
    assert [r["version"] for r in registry.versions("tiny-llm")] == ["v1"]
    after = snapshot(s3)
    assert all(after[k] == etag for k, etag in uploaded_before.items()), "re-run kept identical uploads"


def test_leftover_files_of_a_different_upload_block_registration(registry, s3, model_dir, tmp_path):
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}files/stale.bin", Body=b"from an aborted upload")
    before = snapshot(s3)

    with pytest.raises(VersionConflict) as err:
        registry.register("tiny-llm", "v1", model_dir)

    message = str(err.value)
    assert "tiny-llm v1 is not registered" in message
    assert "stale.bin" in message
    assert f"aws s3 rm --recursive s3://{BUCKET}/{PREFIX}files/" in message
    assert snapshot(s3) == before


def test_a_racing_register_with_different_content_is_not_overwritten(registry, s3, model_dir, monkeypatch):
    foreign = {"name": "tiny-llm", "version": "v1", "files": [{"path": "x", "size": 1, "sha256": "00"}],
               "metadata": {}, "registeredBy": "someone-else", "registeredAt": "2025-01-01T00:00:00Z"}
    real_verify = transfer_module.verify_uploaded

    def verify_then_race(*args):
        real_verify(*args)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}manifest.json", Body=json.dumps(foreign).encode())

    monkeypatch.setattr(transfer_module, "verify_uploaded", verify_then_race)
    with pytest.raises(VersionConflict, match="already registered with different content"):
        registry.register("tiny-llm", "v1", model_dir)

    stored = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}manifest.json")["Body"].read())
    assert stored["registeredBy"] == "someone-else"


def test_a_racing_register_with_identical_content_is_accepted(registry, s3, model_dir, monkeypatch):
    twin = ModelRegistry(BUCKET, s3_client=s3, identity="twin")
    real_verify = transfer_module.verify_uploaded

    def verify_then_twin_registers(*args):
        real_verify(*args)
        monkeypatch.setattr(transfer_module, "verify_uploaded", real_verify)
        assert twin.register("tiny-llm", "v1", model_dir).created

    monkeypatch.setattr(transfer_module, "verify_uploaded", verify_then_twin_registers)
    result = registry.register("tiny-llm", "v1", model_dir)

    assert not result.created
    assert result.manifest["registeredBy"] == "twin"


def test_files_overwritten_by_a_concurrent_upload_are_caught_before_the_manifest(registry, s3, model_dir,
                                                                                 monkeypatch):
    real_upload = transfer_module.upload

    def upload_then_clobber(s3_client, layout, name, version, files, *rest):
        real_upload(s3_client, layout, name, version, files, *rest)
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}files/config.json", Body=b"other",
                      Metadata={"sha256": "f" * 64})

    monkeypatch.setattr(transfer_module, "upload", upload_then_clobber)
    with pytest.raises(VersionConflict, match=r"files changed .* while uploading .*config\.json"):
        registry.register("tiny-llm", "v1", model_dir)
    assert f"{PREFIX}manifest.json" not in snapshot(s3)


def test_register_copies_an_existing_s3_prefix(registry, s3):
    s3.create_bucket(Bucket="upstream-weights")
    big = b"w" * (11 * MiB)
    objects = {"hf/llama/config.json": b"{}", "hf/llama/shards/model.safetensors": big}
    for key, body in objects.items():
        s3.put_object(Bucket="upstream-weights", Key=key, Body=body)
    s3.put_object(Bucket="upstream-weights", Key="hf/llama-other/config.json", Body=b"not ours")

    manifest = registry.register("llama", "v1", "s3://upstream-weights/hf/llama").manifest

    assert [f["path"] for f in manifest["files"]] == ["config.json", "shards/model.safetensors"]
    assert manifest["files"][1]["sha256"] == hashlib.sha256(big).hexdigest()
    copied = s3.get_object(Bucket=BUCKET, Key="registry/models/llama/v1/files/shards/model.safetensors")
    assert copied["Body"].read() == big
    assert copied["Metadata"]["sha256"] == hashlib.sha256(big).hexdigest()


def test_custom_prefix_and_empty_prefix_are_honoured(s3, model_dir):
    ModelRegistry(BUCKET, prefix="/teams/nlp", s3_client=s3).register("m", "v1", model_dir)
    ModelRegistry(BUCKET, prefix="", s3_client=s3).register("m", "v1", model_dir)
    keys = snapshot(s3)
    assert "teams/nlp/models/m/v1/manifest.json" in keys
    assert "models/m/v1/manifest.json" in keys


def test_versions_lists_only_registered_versions_oldest_first(registry, s3, model_dir, tmp_path: Path):
    registry.register("tiny-llm", "v2", model_dir)
    registry.register("tiny-llm", "v1", write_model(tmp_path / "other", {"a": b"1"}))
    s3.put_object(Bucket=BUCKET, Key="registry/models/tiny-llm/v3/files/half.bin", Body=b"no manifest")

    assert [r["version"] for r in registry.versions("tiny-llm")] == ["v2", "v1"]


class RecordingProgress:
    """Sums the bytes each phase reports, as the CLI's bar would draw them."""

    def __init__(self):
        self.phases: dict[str, list[int]] = {}
        self._current = ""

    def start(self, label, total_bytes):
        self._current = label
        self.phases[label] = [total_bytes, 0]

    def advance(self, n_bytes):
        self.phases[self._current][1] += n_bytes

    def finish(self):
        pass


def test_progress_is_driven_by_transfer_callbacks(registry, tmp_path):
    big = b"z" * (11 * MiB)
    progress = RecordingProgress()

    registry.register("big", "v1", write_model(tmp_path / "m", {"a.bin": big, "b.txt": b"hi"}),
                      progress=progress)

    total = len(big) + 2
    assert progress.phases == {"hashing": [total, total], "uploading": [total, total]}


def test_a_hugging_face_cache_snapshot_of_symlinks_registers_the_file_contents(registry, s3, tmp_path):
    blobs = write_model(tmp_path / "blobs", {"aaa": b"weights", "bbb": b"{}"})
    snapshot_dir = tmp_path / "snapshots" / "8c22764"
    (snapshot_dir / "sub").mkdir(parents=True)
    (snapshot_dir / "model.safetensors").symlink_to(blobs / "aaa")
    (snapshot_dir / "sub" / "config.json").symlink_to(blobs / "bbb")

    manifest = registry.register("hf", "v1", snapshot_dir).manifest

    assert [(f["path"], f["size"]) for f in manifest["files"]] == [("model.safetensors", 7),
                                                                   ("sub/config.json", 2)]
    key = "registry/models/hf/v1/files/model.safetensors"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"weights"
