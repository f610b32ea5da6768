"""The node-local model cache: hit (no S3 request), miss, marker last, corrupt partials,
LRU eviction that never touches an entry in use, and concurrent fills (one download)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from serving.registry import ModelRegistry
from serving.registry.cache import CacheError, EntryKey, ModelCache, cache_files_path, revision_key
from serving.registry.fetch import FetchSettings
from tests.registry.conftest import BUCKET, SMALL_MULTIPART, MiB, write_model
from tests.registry.test_fetch import Interrupted, record_requests

ROOT = Path(__file__).resolve().parents[2]


def weights(n: int, size: int = MiB) -> bytes:
    return bytes([n]) * size


@pytest.fixture
def versions(s3, tmp_path) -> ModelRegistry:
    """tiny-llm v1..v3, each 1 MiB of weights plus a config, registered with fixed revisions."""
    registry = ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                             fetch_settings=FetchSettings(part_size=1 * MiB, concurrency=2))
    for n in (1, 2, 3):
        src = write_model(tmp_path / f"src-v{n}", {"model.safetensors": weights(n),
                                                   "config.json": b'{"v": %d}' % n})
        registry.register("tiny-llm", f"v{n}", src, {"revision": f"rev{n}"})
    registry.promote("tiny-llm", "v1", "production")
    return registry


def cache_at(tmp_path: Path, **kw) -> ModelCache:
    return ModelCache(tmp_path / "cache", reserve_bytes=0, **kw)


def test_a_miss_downloads_verifies_and_seals_the_entry(versions, tmp_path):
    cache = cache_at(tmp_path)

    result = cache.fill(versions, "tiny-llm", version="v2")

    assert not result.hit and result.report.downloaded_bytes == MiB + 8
    assert result.files == tmp_path / "cache/entries/tiny-llm/v2/rev2/files"
    assert cache_files_path(str(tmp_path / "cache") + "/", "tiny-llm", "v2", "rev2") == str(result.files)
    assert (result.files / "model.safetensors").read_bytes() == weights(2)
    assert (result.files.parent / "READY").is_file()
    assert oct((result.files / "model.safetensors").stat().st_mode & 0o777) == "0o444"
    assert cache.ready(EntryKey("tiny-llm", "v2", "rev2"))["files"] == versions.get(
        "tiny-llm", version="v2")["files"]


def test_a_pinned_hit_makes_no_s3_request_at_all(versions, s3, tmp_path):
    cache = cache_at(tmp_path)
    cache.fill(versions, "tiny-llm", version="v1", revision="rev1")
    calls = record_requests(s3)

    again = cache.fill(versions, "tiny-llm", version="v1", revision="rev1")

    assert again.hit and again.report is None
    assert calls == []


def test_a_stage_hit_reads_the_pointer_and_manifest_but_no_weights(versions, s3, tmp_path):
    cache = cache_at(tmp_path)
    cache.fill(versions, "tiny-llm", stage="production")
    calls = record_requests(s3)

    again = cache.fill(versions, "tiny-llm", stage="production")

    assert again.hit and again.key == EntryKey("tiny-llm", "v1", "rev1")
    assert [key.rsplit("/", 2)[-2:] for _, key, _ in calls] == [["stages", "production.json"],
                                                                 ["v1", "manifest.json"]]


def test_a_revision_the_registry_does_not_have_is_refused(versions, tmp_path):
    cache = cache_at(tmp_path)
    with pytest.raises(CacheError) as err:
        cache.fill(versions, "tiny-llm", version="v1", revision="other")
    assert str(err.value) == ("tiny-llm v1 has revision rev1 in the registry, not other; the registry "
                              "and the deployment disagree")
    assert not any((tmp_path / "cache/entries").iterdir())


def test_an_interrupted_fill_leaves_no_marker_and_the_next_one_resumes(s3, tmp_path):
    registry = ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                             fetch_settings=FetchSettings(part_size=1 * MiB, concurrency=1))
    registry.register("tiny-llm", "v1", write_model(tmp_path / "src", {
        "model.safetensors": os.urandom(3 * MiB), "config.json": b"{}"}), {"revision": "rev1"})
    cache = cache_at(tmp_path)
    calls = 0

    def hook(params, **_):
        nonlocal calls
        if params.get("Key", "").endswith("model.safetensors"):
            calls += 1
            if calls == 3:
                raise Interrupted("pod killed")
    s3.meta.events.register("before-parameter-build.s3.GetObject", hook, unique_id="interrupt")
    with pytest.raises(Interrupted):
        cache.fill(registry, "tiny-llm", version="v1")
    key = EntryKey("tiny-llm", "v1", "rev1")
    assert not (cache.entry_dir(key) / "READY").exists() and cache.ready(key) is None
    assert not cache.entries()[0].ready
    s3.meta.events.unregister("before-parameter-build.s3.GetObject", unique_id="interrupt")

    result = cache.fill(registry, "tiny-llm", version="v1")

    assert not result.hit and result.report.resumed_bytes == 2 * MiB
    assert cache.ready(key) is not None


def test_a_corrupt_partial_is_detected_and_fetched_again(s3, tmp_path):
    registry = ModelRegistry(BUCKET, s3_client=s3, transfer_config=SMALL_MULTIPART,
                             fetch_settings=FetchSettings(part_size=1 * MiB, concurrency=1))
    data = os.urandom(3 * MiB)
    registry.register("tiny-llm", "v1", write_model(tmp_path / "src", {"model.safetensors": data}),
                      {"revision": "rev1"})
    cache = cache_at(tmp_path)
    files = cache.files_dir(EntryKey("tiny-llm", "v1", "rev1"))
    files.mkdir(parents=True)
    sha = registry.get("tiny-llm", version="v1")["files"][0]["sha256"]
    # what a crashed fetch leaves: a journal claiming two parts whose bytes are wrong
    (files / "model.safetensors.part").write_bytes(b"\0" * (3 * MiB))
    (files / "model.safetensors.part.parts").write_text(
        f'{{"sha256": "{sha}", "size": {3 * MiB}, "partSize": {MiB}}}\n0\n1\n')

    result = cache.fill(registry, "tiny-llm", version="v1")

    assert (result.files / "model.safetensors").read_bytes() == data
    assert sorted(p.name for p in files.iterdir()) == ["model.safetensors"]


def test_a_damaged_complete_entry_is_not_served(versions, tmp_path):
    cache = cache_at(tmp_path)
    first = cache.fill(versions, "tiny-llm", version="v1", revision="rev1")
    damaged = first.files / "model.safetensors"
    damaged.chmod(0o644)
    damaged.write_bytes(b"truncated")

    again = cache.fill(versions, "tiny-llm", version="v1", revision="rev1")

    assert not again.hit and damaged.read_bytes() == weights(1)


def test_the_least_recently_used_idle_version_is_evicted_to_make_room(versions, tmp_path):
    cache = cache_at(tmp_path, max_bytes=2 * MiB + 64 * 1024)
    cache.fill(versions, "tiny-llm", version="v1")
    time.sleep(0.02)
    cache.fill(versions, "tiny-llm", version="v2")
    time.sleep(0.02)
    assert cache.fill(versions, "tiny-llm", version="v1").hit  # v1 is now the most recent

    write_model(tmp_path / "cache/trash/crashed-eviction", {"w.bin": b"left over"})
    result = cache.fill(versions, "tiny-llm", version="v3")

    assert result.evicted == (EntryKey("tiny-llm", "v2", "rev2"),)
    assert [e.key.version for e in cache.entries()] == ["v1", "v3"]
    assert not (tmp_path / "cache/entries/tiny-llm/v2/rev2").exists()
    assert not any((tmp_path / "cache/trash").iterdir())


def test_an_entry_in_use_is_never_evicted_and_nothing_is_deleted_without_room(versions, tmp_path):
    cache = cache_at(tmp_path, max_bytes=2 * MiB + 64 * 1024)
    cache.fill(versions, "tiny-llm", version="v1")
    cache.fill(versions, "tiny-llm", version="v2")
    pods = [ModelCache(tmp_path / "cache").using(EntryKey("tiny-llm", v, r)) for v, r in
            (("v1", "rev1"), ("v2", "rev2"))]
    for pod in pods:
        pod.__enter__()
    try:
        with pytest.raises(CacheError) as err:
            cache.fill(versions, "tiny-llm", version="v3")
    finally:
        for pod in pods:
            pod.__exit__(None, None, None)

    message = str(err.value)
    assert message.startswith(f"no room in {tmp_path / 'cache'} for tiny-llm v3 (1.0 MiB to download")
    assert message.endswith("busy: tiny-llm v1 (in use), tiny-llm v2 (in use). Nothing was deleted")
    assert [e.key.version for e in cache.entries()] == ["v1", "v2"]
    assert all(e.ready for e in cache.entries())


def test_a_crashed_fetcher_does_not_block_the_node(versions, tmp_path):
    """The kernel drops a killed process's flock: the next fetch goes ahead at once."""
    cache = cache_at(tmp_path, lock_timeout=20)
    lock = tmp_path / "cache/locks/tiny-llm--v1--rev1.fill"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n")],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    holder.kill()
    holder.wait()

    began = time.monotonic()
    result = cache.fill(versions, "tiny-llm", version="v1")

    assert not result.hit and time.monotonic() - began < 10


def test_a_cache_dir_that_is_a_file_is_a_clean_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CacheError, match=r"cache directory '.*file' exists and is not a directory"):
        ModelCache(tmp_path / "file")


# -- two pods on one node: real processes against a moto server ----------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def moto_server(monkeypatch, tmp_path):
    from moto.server import ThreadedMotoServer
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "aws-config"
    config.write_text("[default]\ns3 =\n  addressing_style = path\n")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": url, "AWS_CONFIG_FILE": str(config),
           "LLMOPS_REGISTRY_BUCKET": BUCKET, "PYTHONPATH": str(ROOT)}
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=BUCKET)
    yield s3, env
    server.stop()


def test_two_pods_fetching_the_same_version_download_it_once(moto_server, tmp_path):
    s3, env = moto_server
    registry = ModelRegistry(BUCKET, s3_client=s3, identity="test")
    registry.register("tiny-llm", "v1", write_model(tmp_path / "src", {
        "model.safetensors": os.urandom(4 * MiB), "config.json": b"{}"}), {"revision": "rev1"})
    cache = tmp_path / "cache"
    ModelCache(cache)
    gate = ModelCache(cache)._lock(EntryKey("tiny-llm", "v1", "rev1"), "fill")
    assert gate.acquire(exclusive=True, timeout=0)  # both pods start while the entry is busy
    command = [sys.executable, "-m", "llmops.cli", "registry", "fetch", "tiny-llm", "--version", "v1",
               "--cache-dir", str(cache), "--no-progress", "--reserve-gib", "0"]
    pods = [subprocess.Popen([*command, "--link-to", str(tmp_path / f"pod{i}")], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in (1, 2)]
    use = ModelCache(cache)._lock(EntryKey("tiny-llm", "v1", "rev1"), "use")
    deadline = time.monotonic() + 60
    while use.acquire(exclusive=True, timeout=0):  # both pods hold the use lock once they wait
        use.release()
        assert time.monotonic() < deadline, "the pods never reached the cache"
        time.sleep(0.05)
    time.sleep(0.5)
    gate.release()
    outputs = sorted(p.communicate(timeout=120)[0] for p in pods)

    assert [p.returncode for p in pods] == [0, 0]
    assert outputs[0].startswith("cache hit after waiting for another fetch: tiny-llm v1 (revision rev1)")
    assert outputs[1].startswith("fetched tiny-llm v1 (revision rev1) into ")
    assert "4.0 MiB in" in outputs[1]
    for i in (1, 2):
        assert (tmp_path / f"pod{i}").resolve() == cache / "entries/tiny-llm/v1/rev1/files"
        assert (tmp_path / f"pod{i}" / "model.safetensors").stat().st_size == 4 * MiB

    listed = subprocess.run([sys.executable, "-m", "llmops.cli", "registry", "cache", "list",
                             "--cache-dir", str(cache)], env=env, capture_output=True, text=True)
    assert listed.stdout.splitlines()[0].split() == ["MODEL", "VERSION", "REVISION", "STATE", "SIZE",
                                                     "LAST", "USED", "USE"]
    assert listed.stdout.splitlines()[1].split()[:4] == ["tiny-llm", "v1", "rev1", "ready"]


def test_an_unsafe_revision_becomes_one_hashed_path_segment():
    sha = "8afb486c1db24fe5011ec46dfbe5b5dccdb575c2"
    assert revision_key(sha) == sha
    hashed = revision_key("../../etc")
    assert hashed.startswith("sha256-") and "/" not in hashed and len(hashed) == 47
    assert cache_files_path("/cache", "m", "v1", "refs/main") == (
        f"/cache/entries/m/v1/{revision_key('refs/main')}/files")


def test_cache_hold_keeps_a_version_in_use_until_sigterm(tmp_path):
    import signal
    cache = ModelCache(tmp_path / "cache")
    key = EntryKey("tiny-llm", "v1", "rev1")
    hold = subprocess.Popen([sys.executable, "-m", "llmops.cli", "registry", "cache", "hold", "tiny-llm",
                             "--version", "v1", "--revision", "rev1", "--cache-dir", str(cache.root)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert hold.stdout.readline() == f"holding tiny-llm v1 (revision rev1) in {cache.root}\n"
    use = cache._lock(key, "use")
    assert not use.acquire(exclusive=True, timeout=0), "an evictor cannot take a held entry"

    hold.send_signal(signal.SIGTERM)

    assert hold.wait(30) == 0
    assert use.acquire(exclusive=True, timeout=0)
    use.release()
