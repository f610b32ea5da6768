"""Edges of the registry that its other tests walk past: both sides of every limit (fetch
settings, the cache's space arithmetic, byte units), the paths taken only when something goes
wrong (retries, a short ranged read, an STS outage, a lock held too long, a file deleted mid
register), and what a user reads (progress frames, error messages). Written for the survivors
of a sampled mutation run (`python -m mutation.run registry`)."""

from __future__ import annotations

import io
import os
import time
import types
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from urllib3.exceptions import ProtocolError

from serving.registry import (
    ChecksumMismatch,
    InvalidName,
    ModelRegistry,
    RegistryError,
    TextProgress,
    VersionConflict,
)
from serving.registry import cache as cache_module
from serving.registry import fetch as fetch_module
from serving.registry import progress as progress_module
from serving.registry import transfer as transfer_module
from serving.registry.cache import CacheError, EntryKey, ModelCache
from serving.registry.core import make_s3_client
from serving.registry.fetch import FetchSettings
from serving.registry.progress import human_bytes
from tests.registry.conftest import BUCKET, SMALL_MULTIPART, MiB, snapshot, write_model

GiB = 1024 * MiB
DiskUsage = namedtuple("DiskUsage", "total used free")


# -- fetch settings: both sides of every limit ---------------------------------------------

@pytest.mark.parametrize("settings", [
    {"concurrency": 1}, {"concurrency": 512}, {"part_size": 1 * MiB}, {"part_size": 1024 * MiB},
    {"hashers": 1}, {"hashers": 64}, {"attempts": 1},
])
def test_fetch_settings_at_their_limits_are_accepted(settings):
    assert FetchSettings(**settings)


@pytest.mark.parametrize(("settings", "message"), [
    ({"concurrency": 513}, "fetch concurrency must be 1-512, got 513"),
    ({"part_size": 1 * MiB - 1}, "fetch part size must be 1-1024 MiB, got 0.999999 MiB"),
    ({"part_size": 2048 * MiB}, "fetch part size must be 1-1024 MiB, got 2048 MiB"),
    ({"hashers": 0}, "fetch hashers must be 1-64, got 0"),
    ({"hashers": 65}, "fetch hashers must be 1-64, got 65"),
])
def test_fetch_settings_just_past_their_limits_are_refused(settings, message):
    with pytest.raises(RegistryError) as err:
        FetchSettings(**settings)
    assert str(err.value) == message


def test_default_fetch_buffers_hold_one_gib():
    """The documented memory bound: 2 x concurrency x part size is 1 GiB at the defaults."""
    defaults = FetchSettings()
    assert (defaults.concurrency, defaults.part_size) == (32, 16 * MiB)
    assert 2 * defaults.concurrency * defaults.part_size == GiB


@pytest.mark.parametrize(("concurrency", "pool"), [(None, 34), (4, 10), (8, 10), (9, 11), (100, 102)])
def test_the_connection_pool_fits_the_fetch_concurrency(aws, concurrency, pool):
    """Fewer pooled connections than fetch workers makes urllib3 open and discard connections."""
    settings = None if concurrency is None else FetchSettings(concurrency=concurrency)
    assert make_s3_client(settings).meta.config.max_pool_connections == pool


# -- the fetcher's failure paths -------------------------------------------------------------

FILES = "registry/models/tiny-llm/v1/files/"


def flaky_reads(s3, failures: int) -> list[str]:
    """The first `failures` GETs of config.json die mid-connection (a reset, not an S3 error);
    one file only, so which request fails does not depend on thread timing."""
    failed: list[str] = []

    def hook(params, **_):
        if params.get("Key") == f"{FILES}config.json" and len(failed) < failures:
            failed.append(params["Key"])
            raise ProtocolError("Connection reset by peer")
    s3.meta.events.register("before-parameter-build.s3.GetObject", hook)
    return failed


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The fetcher's back-off delays, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr(fetch_module, "time", types.SimpleNamespace(sleep=slept.append))
    return slept


def one_worker(s3, attempts: int) -> ModelRegistry:
    return ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                         fetch_settings=FetchSettings(concurrency=1, attempts=attempts))


def test_a_reset_connection_is_retried_with_backoff_up_to_the_last_attempt(s3, model_dir, tmp_path,
                                                                          sleeps):
    registry = one_worker(s3, attempts=3)
    registry.register("tiny-llm", "v1", model_dir)
    flaky_reads(s3, failures=2)

    registry.download("tiny-llm", tmp_path / "out", version="v1")

    assert (tmp_path / "out/config.json").read_bytes() == (model_dir / "config.json").read_bytes()
    assert sleeps == [0.2, 0.4]


def test_backoff_doubles_and_is_capped_at_two_seconds(s3, model_dir, tmp_path, sleeps):
    registry = one_worker(s3, attempts=6)
    registry.register("tiny-llm", "v1", model_dir)
    flaky_reads(s3, failures=5)

    registry.download("tiny-llm", tmp_path / "out", version="v1")

    assert sleeps == [0.2, 0.4, 0.8, 1.6, 2.0]


def test_a_connection_that_keeps_failing_gives_up_after_exactly_the_attempts(s3, model_dir, tmp_path,
                                                                             sleeps):
    registry = one_worker(s3, attempts=3)
    registry.register("tiny-llm", "v1", model_dir)
    failed = flaky_reads(s3, failures=3)

    with pytest.raises(RegistryError) as err:
        registry.download("tiny-llm", tmp_path / "out", version="v1")

    assert str(err.value) == (f"tiny-llm v1: downloading config.json (s3://{BUCKET}/{FILES}config.json) "
                              "failed after 3 attempts: Connection reset by peer")
    assert failed == [f"{FILES}config.json"] * 3 and sleeps == [0.2, 0.4]
    assert not (tmp_path / "out/config.json").exists()


class ShortReads:
    """An S3 client whose GETs of config.json lose their last byte while the headers stay right
    (a connection closed early without an error)."""

    def __init__(self, s3: Any):
        self._s3 = s3

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response = self._s3.get_object(**kwargs)
        if kwargs["Key"] == f"{FILES}config.json":
            response["Body"] = io.BytesIO(response["Body"].read()[:-1])
        return response


def test_a_ranged_read_that_comes_back_short_is_a_checksum_mismatch(registry, s3, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)
    reader = ModelRegistry(BUCKET, s3_client=ShortReads(s3), fetch_settings=FetchSettings(concurrency=1))

    with pytest.raises(ChecksumMismatch) as err:
        reader.download("tiny-llm", tmp_path / "out", version="v1")

    assert str(err.value).startswith("tiny-llm v1: checksum mismatch for file config.json")
    assert "; a ranged read of bytes 0-22 returned 22 bytes." in str(err.value)
    assert not (tmp_path / "out/config.json").exists()


def test_access_denied_on_a_weights_file_is_a_clean_error_naming_the_object(registry, s3, model_dir,
                                                                           tmp_path):
    registry.register("tiny-llm", "v1", model_dir)

    def deny(params, **_):
        if params.get("Key") == f"{FILES}config.json":
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")
    s3.meta.events.register("before-parameter-build.s3.GetObject", deny)

    with pytest.raises(RegistryError) as err:
        registry.download("tiny-llm", tmp_path / "out", version="v1")

    assert str(err.value) == (f"downloading s3://{BUCKET}/{FILES}config.json failed: AccessDenied: "
                              "Access Denied")


def test_a_destination_whose_parents_do_not_exist_is_created(registry, model_dir, tmp_path):
    registry.register("tiny-llm", "v1", model_dir)

    registry.download("tiny-llm", tmp_path / "new" / "nested" / "out", version="v1")

    assert (tmp_path / "new/nested/out/config.json").read_bytes() == (model_dir / "config.json").read_bytes()


def test_short_disk_writes_are_continued_at_the_right_offset(registry, s3, model_dir, tmp_path,
                                                             monkeypatch):
    """pwrite may write less than asked (a signal, a nearly full disk): the rest goes after it."""
    real_pwrite = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, offset: real_pwrite(fd, data[:1000], offset))
    registry.register("tiny-llm", "v1", model_dir)

    registry.download("tiny-llm", tmp_path / "out", version="v1")

    weights = "model-00001-of-00001.safetensors"
    assert (tmp_path / "out" / weights).read_bytes() == (model_dir / weights).read_bytes()


# -- registering: the identity and files that change under us ---------------------------------

class StsDown:
    def get_caller_identity(self) -> dict[str, str]:
        raise ClientError({"Error": {"Code": "ExpiredToken", "Message": "expired"}}, "GetCallerIdentity")


class StsUnreachable:
    def get_caller_identity(self) -> dict[str, str]:
        raise EndpointConnectionError(endpoint_url="https://sts.amazonaws.com/")


class StsWithoutArn:
    def get_caller_identity(self) -> dict[str, str]:
        return {"Account": "123456789012"}


@pytest.mark.parametrize("sts", [StsDown(), StsUnreachable(), StsWithoutArn()],
                         ids=["aws-error", "unreachable", "no-arn"])
def test_without_an_sts_identity_the_local_user_is_recorded(s3, model_dir, monkeypatch, sts):
    monkeypatch.setattr("serving.registry.identity.getpass.getuser", lambda: "alice")
    registry = ModelRegistry(BUCKET, s3_client=s3, sts_client=sts)

    assert registry.register("tiny-llm", "v1", model_dir).manifest["registeredBy"] == "local:alice"


def test_without_sts_or_a_user_name_the_caller_is_unknown(s3, model_dir, monkeypatch):
    def no_user() -> str:
        raise OSError("no user in the password database")
    monkeypatch.setattr("serving.registry.identity.getpass.getuser", no_user)
    registry = ModelRegistry(BUCKET, s3_client=s3, sts_client=StsDown())

    assert registry.register("tiny-llm", "v1", model_dir).manifest["registeredBy"] == "local:unknown"


def test_a_file_name_with_a_backslash_is_refused_before_anything_is_uploaded(registry, s3, model_dir):
    """Every download would refuse that manifest path: registering it would publish a version
    nobody can fetch."""
    (model_dir / "tokenizer" / "a\\b.json").write_bytes(b"{}")

    with pytest.raises(InvalidName, match=r"unsafe file path 'tokenizer/a\\\\b.json'"):
        registry.register("tiny-llm", "v1", model_dir)
    assert snapshot(s3) == {}


def test_a_file_deleted_under_a_register_is_a_conflict_not_a_crash(registry, s3, model_dir, monkeypatch):
    real_upload = transfer_module.upload

    def upload_then_delete(*args):
        real_upload(*args)
        s3.delete_object(Bucket=BUCKET, Key=f"{FILES}config.json")

    monkeypatch.setattr(transfer_module, "upload", upload_then_delete)
    with pytest.raises(VersionConflict, match=r"files changed .* while uploading .*: config\.json\. "):
        registry.register("tiny-llm", "v1", model_dir)
    assert "registry/models/tiny-llm/v1/manifest.json" not in snapshot(s3)


@pytest.mark.parametrize(("leftovers", "more"), [(5, ""), (6, " and 1 more"), (7, " and 2 more")])
def test_leftover_files_are_named_up_to_five_then_counted(registry, s3, model_dir, leftovers, more):
    for n in range(leftovers):
        s3.put_object(Bucket=BUCKET, Key=f"{FILES}stale-{n}.bin", Body=b"aborted")

    with pytest.raises(VersionConflict) as err:
        registry.register("tiny-llm", "v1", model_dir)

    assert ("already holds files of a different upload (failed or concurrent): stale-0.bin, "
            f"stale-1.bin, stale-2.bin, stale-3.bin, stale-4.bin{more}. If no one") in str(err.value)


# -- progress: what the user sees on stderr ---------------------------------------------------

def test_byte_units_switch_exactly_at_1024():
    assert [human_bytes(n) for n in (0, 1023, 1024, 1024 * 1024 - 1, MiB, GiB - 1, GiB, 1024 * GiB)] == [
        "0 B", "1023 B", "1.0 KiB", "1024.0 KiB", "1.0 MiB", "1024.0 MiB", "1.0 GiB", "1024.0 GiB"]


class Clock:
    now = 1.0

    def monotonic(self) -> float:
        return self.now


def test_the_bar_redraws_at_most_every_tenth_of_a_second_and_always_at_the_end(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(progress_module, "time", clock)
    stream = io.StringIO()
    bar = TextProgress(stream, width=10)
    bar.start("downloading", 100)                    # frame 1: 0%

    bar.advance(10)                                  # frame 2: the first advance draws
    clock.now = 1.09
    bar.advance(10)                                  # too soon: no frame
    clock.now = 1.1
    bar.advance(10)                                  # frame 3: 0.1 s since frame 2
    clock.now = 1.11
    bar.advance(70)                                  # frame 4: too soon, but complete

    frames = stream.getvalue().split("\r")[1:]
    assert frames == ["downloading [..........]   0% 0 B/100 B",
                      "downloading [#.........]  10% 10 B/100 B",
                      "downloading [###.......]  30% 30 B/100 B",
                      "downloading [##########] 100% 100 B/100 B"]


def test_the_default_bar_is_thirty_cells_wide():
    bar = TextProgress(io.StringIO())
    bar.start("hashing", 4)
    bar.advance(1)
    assert bar.render() == "hashing [#######.......................]  25% 1 B/4 B"


# -- the node cache: space arithmetic at the byte, and locks ----------------------------------

@pytest.fixture
def small_versions(s3, tmp_path) -> ModelRegistry:
    """tiny-llm v1..v3: 64 KiB of weights each, fixed revisions."""
    registry = ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                             fetch_settings=FetchSettings(concurrency=2))
    for n in (1, 2, 3):
        src = write_model(tmp_path / f"src-v{n}", {"model.safetensors": bytes([n]) * 65536})
        registry.register("tiny-llm", f"v{n}", src, {"revision": f"rev{n}"})
    return registry


def allocated(path: Path) -> int:
    """What the cache counts for an entry: bytes allocated on disk (st_blocks are 512 bytes)."""
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def filled(cache: ModelCache, registry: ModelRegistry, *versions: str) -> int:
    """Fill versions in order (the first is least recently used); their allocated bytes."""
    for version in versions:
        cache.fill(registry, "tiny-llm", version=version)
        time.sleep(0.02)
    return sum(allocated(e.path) for e in cache.entries())


def test_a_version_that_fits_the_cap_to_the_byte_evicts_nothing(small_versions, tmp_path):
    probe = ModelCache(tmp_path / "probe", reserve_bytes=0)
    used = filled(probe, small_versions, "v1", "v2")
    cache = ModelCache(tmp_path / "cache", reserve_bytes=0, max_bytes=used + 65536)
    assert filled(cache, small_versions, "v1", "v2") == used
    assert [e.size_bytes for e in cache.entries()] == [allocated(e.path) for e in cache.entries()]

    result = cache.fill(small_versions, "tiny-llm", version="v3")

    assert result.evicted == () and [e.key.version for e in cache.entries()] == ["v1", "v2", "v3"]


def test_one_byte_over_the_cap_evicts_the_least_recently_used(small_versions, tmp_path):
    probe = ModelCache(tmp_path / "probe", reserve_bytes=0)
    used = filled(probe, small_versions, "v1", "v2")
    cache = ModelCache(tmp_path / "cache", reserve_bytes=0, max_bytes=used + 65536 - 1)
    filled(cache, small_versions, "v1", "v2")

    result = cache.fill(small_versions, "tiny-llm", version="v3")

    assert result.evicted == (EntryKey("tiny-llm", "v1", "rev1"),)
    assert [e.key.version for e in cache.entries()] == ["v2", "v3"]


def fake_free_disk(monkeypatch, free: int) -> None:
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda _: DiskUsage(10 * 1024 * GiB, 0, free))


def test_the_default_reserve_keeps_two_gib_free(small_versions, tmp_path, monkeypatch):
    cache = ModelCache(tmp_path / "cache")
    fake_free_disk(monkeypatch, 2 * GiB + 65536 - 1)

    with pytest.raises(CacheError) as err:
        cache.fill(small_versions, "tiny-llm", version="v1")
    assert str(err.value) == (
        f"no room in {tmp_path / 'cache'} for tiny-llm v1 (64.0 KiB to download, 2.0 GiB free, reserve "
        "2.0 GiB); evicting every idle entry would free 0 B; busy: none. Nothing was deleted")

    fake_free_disk(monkeypatch, 2 * GiB + 65536)
    assert cache.fill(small_versions, "tiny-llm", version="v1").evicted == ()


def test_a_full_disk_evicts_only_as_much_as_the_new_version_needs(small_versions, tmp_path, monkeypatch):
    cache = ModelCache(tmp_path / "cache", reserve_bytes=MiB)
    filled(cache, small_versions, "v1", "v2")
    fake_free_disk(monkeypatch, MiB + 65536 - 1)   # one byte short: one eviction is enough

    result = cache.fill(small_versions, "tiny-llm", version="v3")

    assert result.evicted == (EntryKey("tiny-llm", "v1", "rev1"),)
    assert [e.key.version for e in cache.entries()] == ["v2", "v3"]


def test_an_entry_being_filled_is_skipped_and_the_next_idle_one_evicted(small_versions, tmp_path):
    probe = ModelCache(tmp_path / "probe", reserve_bytes=0)
    used = filled(probe, small_versions, "v1", "v2")
    cache = ModelCache(tmp_path / "cache", reserve_bytes=0, max_bytes=used + 65536 - 1)
    filled(cache, small_versions, "v1", "v2")
    other_fetch = ModelCache(tmp_path / "cache")._lock(EntryKey("tiny-llm", "v1", "rev1"), "fill")
    assert other_fetch.acquire(exclusive=True, timeout=0)
    try:
        result = cache.fill(small_versions, "tiny-llm", version="v3")
    finally:
        other_fetch.release()

    assert result.evicted == (EntryKey("tiny-llm", "v2", "rev2"),)
    assert [e.key.version for e in cache.entries()] == ["v1", "v3"]


def test_a_fill_lock_held_too_long_is_a_clean_error_after_the_timeout(small_versions, tmp_path):
    cache = ModelCache(tmp_path / "cache", reserve_bytes=0, lock_timeout=0.3)
    stuck = ModelCache(tmp_path / "cache")._lock(EntryKey("tiny-llm", "v1", "rev1"), "fill")
    assert stuck.acquire(exclusive=True, timeout=0)
    began = time.monotonic()
    try:
        with pytest.raises(CacheError) as err:
            cache.fill(small_versions, "tiny-llm", version="v1")
    finally:
        stuck.release()

    assert time.monotonic() - began >= 0.3, "it waited for the other fetch first"
    assert str(err.value) == (f"another process has been filling tiny-llm v1 in {tmp_path / 'cache'} for "
                              f"over 0.3 s ({stuck.path}); is a fetch stuck on this node?")


# -- last: the slowest (64 MiB through moto, ~3 s) -----------------------------------------

def test_by_default_a_64_mib_file_goes_up_as_one_64_mib_part(s3, tmp_path):
    """The documented default (docs/registry.md): multipart from 64 MiB, in 64 MiB parts."""
    registry = ModelRegistry(BUCKET, s3_client=s3)
    registry.register("big", "v1", write_model(tmp_path / "m", {"w.bin": b"\1" * (64 * MiB)}))

    etag = s3.head_object(Bucket=BUCKET, Key="registry/models/big/v1/files/w.bin")["ETag"]
    assert etag.strip('"').endswith("-1"), "multipart (ETag -<parts>), exactly one part"
