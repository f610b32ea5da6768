"""The line-rate fetcher: ranged parts from the manifest (no HEAD), in-order hashing, resume
that re-verifies every byte, and unsafe manifests refused before anything is written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from serving.registry import ChecksumMismatch, InvalidName, ModelRegistry, RegistryError
from serving.registry.fetch import JOURNAL_SUFFIX, PART_SUFFIX, FetchSettings
from tests.registry.conftest import BUCKET, SMALL_MULTIPART, MiB, write_model

FILES_PREFIX = "registry/models/big/v1/files/"


class Interrupted(Exception):
    """Stands in for a killed pod: raised from inside the S3 client after N part requests."""


def big_model(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    files = {
        "model-00001-of-00002.safetensors": os.urandom(5 * MiB + 123),
        "model-00002-of-00002.safetensors": os.urandom(3 * MiB),
        "config.json": b'{"model_type": "llama"}',
        "empty.txt": b"",
    }
    return write_model(tmp_path / "big", files), files


def fetching_registry(s3, **settings) -> ModelRegistry:
    return ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                         fetch_settings=FetchSettings(part_size=1 * MiB, **settings))


def record_requests(s3) -> list[tuple[str, str, str | None]]:
    """(operation, key, range) of every S3 call the client makes from now on."""
    calls: list[tuple[str, str, str | None]] = []

    def hook(params, model, **_):
        calls.append((model.name, params.get("Key", ""), params.get("Range")))
    s3.meta.events.register("before-parameter-build.s3", hook)
    return calls


def interrupt_after(s3, n_parts: int) -> None:
    seen = []

    def hook(params, **_):
        if params.get("Key", "").startswith(FILES_PREFIX):
            seen.append(params["Key"])
            if len(seen) > n_parts:
                raise Interrupted("node lost")
    s3.meta.events.register("before-parameter-build.s3.GetObject", hook, unique_id="interrupt")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_parts_come_from_manifest_sizes_without_a_head_per_file(s3, tmp_path):
    source, files = big_model(tmp_path)
    registry = fetching_registry(s3, concurrency=4)
    registry.register("big", "v1", source)
    calls = record_requests(s3)

    result = registry.fetch("big", tmp_path / "out", version="v1")

    assert tree(tmp_path / "out") == files
    file_gets = [c for c in calls if c[1].startswith(FILES_PREFIX)]
    assert {op for op, _, _ in file_gets} == {"GetObject"}, "no HeadObject per file"
    ranges = sorted((key[len(FILES_PREFIX):], rng) for _, key, rng in file_gets)
    assert ranges == sorted([
        *[("model-00001-of-00002.safetensors", f"bytes={i * MiB}-{min(5 * MiB + 123, (i + 1) * MiB) - 1}")
          for i in range(6)],
        *[("model-00002-of-00002.safetensors", f"bytes={i * MiB}-{(i + 1) * MiB - 1}") for i in range(3)],
        ("config.json", "bytes=0-22"), ("empty.txt", None)])
    assert result.report.downloaded_bytes == sum(len(b) for b in files.values())
    assert not list((tmp_path / "out").rglob("*.part*"))


def test_an_object_longer_than_the_manifest_says_is_caught(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    key = "registry/models/tiny-llm/v1/files/config.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'{"model_type": "llama"}' + b" appended")

    with pytest.raises(ChecksumMismatch, match=r"config.json .* says 23 bytes.*the object has 32 bytes"):
        registry.download("tiny-llm", tmp_path / "out", version="v1")
    assert not (tmp_path / "out" / "config.json").exists()


def test_an_interrupted_download_resumes_only_the_missing_parts(s3, tmp_path):
    source, files = big_model(tmp_path)
    registry = fetching_registry(s3, concurrency=1)
    registry.register("big", "v1", source)
    out = tmp_path / "out"
    interrupt_after(s3, 4)

    with pytest.raises(Interrupted):
        registry.fetch("big", out, version="v1")

    partial = out / "model-00001-of-00002.safetensors"
    assert not partial.exists(), "an unverified file never appears under its final name"
    journal = partial.with_name(partial.name + JOURNAL_SUFFIX).read_text().splitlines()
    assert sorted(journal[1:]) == ["0", "1"]  # config.json and empty.txt came first (path order)
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", unique_id="interrupt")
    calls = record_requests(s3)

    result = registry.fetch("big", out, version="v1")

    assert tree(out) == files
    refetched = [(k[len(FILES_PREFIX):], r) for _, k, r in calls if k.startswith(FILES_PREFIX)]
    assert ("model-00001-of-00002.safetensors", "bytes=0-1048575") not in refetched
    assert result.report.resumed_bytes == 2 * MiB
    assert result.report.downloaded_bytes == sum(map(len, files.values())) - 2 * MiB - 23


def test_resumed_bytes_are_verified_and_a_bad_partial_is_fetched_again(s3, tmp_path):
    source, files = big_model(tmp_path)
    registry = fetching_registry(s3, concurrency=1)
    registry.register("big", "v1", source)
    out = tmp_path / "out"
    interrupt_after(s3, 4)
    with pytest.raises(Interrupted):
        registry.fetch("big", out, version="v1")
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", unique_id="interrupt")
    partial = out / ("model-00001-of-00002.safetensors" + PART_SUFFIX)
    with partial.open("r+b") as f:  # a journalled part whose bytes never reached the disk
        f.seek(MiB + 10)
        f.write(b"\0" * 100)
    calls = record_requests(s3)

    registry.fetch("big", out, version="v1")

    assert tree(out) == files
    first = [r for _, k, r in calls if k == FILES_PREFIX + "model-00001-of-00002.safetensors"]
    assert first.count("bytes=0-1048575") == 1, "the whole file was fetched again from scratch"
    assert first.count("bytes=2097152-3145727") == 2, "once to finish the resume, once afresh"


def test_a_same_size_local_file_is_verified_not_trusted(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    out = tmp_path / "out"
    registry.download("tiny-llm", out, version="v1")
    weights = out / "model-00001-of-00001.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)  # same size, other bytes
    calls = record_requests(s3)

    result = registry.fetch("tiny-llm", out, version="v1")

    assert weights.read_bytes() == (model_dir / "model-00001-of-00001.safetensors").read_bytes()
    assert [k.rsplit("/", 1)[1] for _, k, _ in calls if "/files/" in k] == [weights.name]
    assert result.report.reused_files == 3


@pytest.mark.parametrize("path", ["../escape.txt", "tokenizer/../../escape.txt", "/etc/escape.txt", "a/./b"])
def test_a_manifest_path_that_leaves_the_destination_is_refused(registry, s3, model_dir, tmp_path, path):
    registry.register("tiny-llm", "v1", model_dir)
    key = "registry/models/tiny-llm/v1/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    manifest["files"].append({"path": path, "size": 3, "sha256": "0" * 64})
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())
    out = tmp_path / "deep" / "out"

    with pytest.raises(InvalidName) as err:
        registry.download("tiny-llm", out, version="v1")

    assert str(err.value).startswith(f"unsafe file path {path!r} in model files")
    assert not (tmp_path / "deep").exists(), "nothing is written before every path is checked"
    assert not (tmp_path / "escape.txt").exists()


def test_a_destination_that_is_a_file_is_a_clean_error(registry, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    (tmp_path / "taken").write_text("a file")

    with pytest.raises(RegistryError) as err:
        registry.download("tiny-llm", tmp_path / "taken", version="v1")
    assert str(err.value) == f"download destination {str(tmp_path / 'taken')!r} exists and is not a directory"

    with pytest.raises(RegistryError, match=r"cannot create download destination .*Not a directory"):
        registry.download("tiny-llm", tmp_path / "taken" / "below", version="v1")


@pytest.mark.parametrize(("settings", "message"), [
    ({"concurrency": 0}, "fetch concurrency must be 1-512, got 0"),
    ({"part_size": 1000}, "fetch part size must be 1-1024 MiB"),
    ({"attempts": 0}, "fetch attempts must be at least 1, got 0"),
])
def test_fetch_settings_out_of_range_are_refused(settings, message):
    with pytest.raises(RegistryError, match=message):
        FetchSettings(**settings)
