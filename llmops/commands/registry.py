"""`llmops registry`: register, list, promote, show and download model versions in S3, and
fill or inspect a node-local model cache."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from serving.registry import STAGES, ModelRegistry, NoProgress, RegistryError, TextProgress
from serving.registry.cache import EntryKey, ModelCache
from serving.registry.fetch import FetchSettings, MiB, os_errors
from serving.registry.layout import NAME_RULE
from serving.registry.progress import human_bytes

BUCKET_ENV = "LLMOPS_REGISTRY_BUCKET"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "registry", help="manage model versions in the S3 model registry",
        description="Versioned model weights in S3 with checksummed manifests, stage pointers "
        f"({', '.join(STAGES)}) and a promotion audit log. Model and version names: {NAME_RULE}.")
    parser.add_argument("--bucket", default=os.environ.get(BUCKET_ENV),
                        help=f"registry bucket (default: ${BUCKET_ENV})")
    parser.add_argument("--prefix", default="registry/", help="key prefix in the bucket (default: registry/)")
    sub = parser.add_subparsers(dest="registry_command", required=True, metavar="ACTION")

    reg = sub.add_parser("register", help="upload a model directory (or copy an s3:// prefix) as a version")
    reg.add_argument("name")
    reg.add_argument("version")
    reg.add_argument("source", help="local directory or s3://bucket/prefix/")
    reg.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE",
                     help="metadata entry, repeatable; 'revision=<commit sha>' sets the revision")
    reg.add_argument("--metadata-file", type=Path, metavar="JSON",
                     help="JSON object of metadata (--metadata entries override its keys)")
    reg.add_argument("--no-progress", action="store_true", help="do not draw a progress bar on stderr")
    reg.set_defaults(handler=run_register)

    lst = sub.add_parser("list", help="list a model's versions with their stages")
    lst.add_argument("name")
    lst.set_defaults(handler=run_list)

    pro = sub.add_parser("promote", help="point a stage at a version (compare-and-swap, audited)")
    pro.add_argument("name")
    pro.add_argument("version")
    pro.add_argument("--stage", required=True, help=f"one of: {', '.join(STAGES)}")
    pro.set_defaults(handler=run_promote)

    show = sub.add_parser("show", help="print a version record as JSON")
    show.add_argument("name")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--stage", default="production", help="the version a stage points at (default)")
    which.add_argument("--version", help="an explicit version")
    show.set_defaults(handler=run_show)

    down = sub.add_parser("download", help="download a version into a directory, verifying checksums")
    down.add_argument("name")
    down.add_argument("dest", type=Path)
    which = down.add_mutually_exclusive_group()
    which.add_argument("--stage", default="production", help="the version a stage points at (default)")
    which.add_argument("--version", help="an explicit version")
    down.add_argument("--no-progress", action="store_true", help="do not draw a progress bar on stderr")
    add_fetch_options(down)
    down.set_defaults(handler=run_download)

    fetch = sub.add_parser(
        "fetch", help="make a version present in a node-local cache (one download per node)",
        description="Fill the node-local model cache: one verified copy per model, version and "
        "revision, shared by every pod on the node. Concurrent fetches of the same version wait "
        "for one download; least recently used idle versions are evicted to make room.")
    fetch.add_argument("name")
    fetch.add_argument("--cache-dir", type=Path, required=True, help="cache root (a hostPath on NVMe)")
    which = fetch.add_mutually_exclusive_group()
    which.add_argument("--stage", default="production", help="the version a stage points at (default)")
    which.add_argument("--version", help="an explicit version")
    fetch.add_argument("--revision", help="the revision the deployment expects; with --version, a "
                       "complete cache entry is used without any S3 request")
    fetch.add_argument("--link-to", type=Path, metavar="PATH",
                       help="also point a symlink at PATH to the cached files (e.g. in an emptyDir)")
    fetch.add_argument("--max-cache-gib", type=float, help="cap on the cache's total size")
    fetch.add_argument("--reserve-gib", type=float, default=2.0,
                       help="free space to leave on the cache disk (default: %(default)s)")
    fetch.add_argument("--lock-timeout", type=float, default=3600.0,
                       help="seconds to wait for another process filling the same version "
                       "(default: %(default)s)")
    fetch.add_argument("--no-progress", action="store_true", help="do not draw a progress bar on stderr")
    add_fetch_options(fetch)
    fetch.set_defaults(handler=run_fetch)

    cache = sub.add_parser("cache", help="inspect the node-local cache or hold a version in use")
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    lst = cache_sub.add_parser("list", help="entries, least recently used first")
    lst.add_argument("--cache-dir", type=Path, required=True)
    lst.set_defaults(handler=run_cache_list)
    hold = cache_sub.add_parser("hold", help="keep a version from eviction until SIGTERM (a pod sidecar)")
    hold.add_argument("name")
    hold.add_argument("--version", required=True)
    hold.add_argument("--revision", required=True)
    hold.add_argument("--cache-dir", type=Path, required=True)
    hold.add_argument("--ready-file", type=Path, metavar="PATH",
                      help="create PATH once the version is held (a pod's startupProbe waits for "
                      "it, so the fetch starts only after the hold is in place)")
    hold.set_defaults(handler=run_cache_hold)


def add_fetch_options(parser: argparse.ArgumentParser) -> None:
    defaults = FetchSettings()
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency,
                        help="ranged GETs in flight across all files (default: %(default)s)")
    parser.add_argument("--part-size-mib", type=int, default=defaults.part_size // MiB,
                        help="size of each ranged GET in MiB (default: %(default)s)")


def fetch_settings(args: argparse.Namespace) -> FetchSettings:
    return FetchSettings(concurrency=args.concurrency, part_size=args.part_size_mib * MiB)


def gib(value: float | None, flag: str) -> int | None:
    if value is None:
        return None
    if value < 0:
        raise RegistryError(f"{flag} must not be negative, got {value:g}")
    return int(value * 1024**3)


def open_registry(args: argparse.Namespace) -> ModelRegistry:
    if not args.bucket:
        raise RegistryError(f"no registry bucket: pass --bucket or set {BUCKET_ENV}")
    settings = fetch_settings(args) if hasattr(args, "concurrency") else None
    return ModelRegistry(args.bucket, prefix=args.prefix, fetch_settings=settings)


def parse_metadata(pairs: list[str], path: Path | None) -> dict[str, Any]:
    """--metadata-file's JSON object, then KEY=VALUE pairs on top (values stay strings)."""
    metadata: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot read metadata file {str(path)!r}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise RegistryError(f"metadata file {str(path)!r} must hold a JSON object")
        metadata.update(loaded)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RegistryError(f"invalid --metadata {pair!r}: expected KEY=VALUE")
        metadata[key] = value
    return metadata


def run_register(args: argparse.Namespace) -> int:
    metadata = parse_metadata(args.metadata, args.metadata_file)
    progress = NoProgress() if args.no_progress else TextProgress(sys.stderr)
    result = open_registry(args).register(args.name, args.version, args.source, metadata, progress=progress)
    m = result.manifest
    if result.created:
        print(f"registered {m['name']} {m['version']}: {len(m['files'])} files, "
              f"{human_bytes(m['totalBytes'])}, revision {m['revision']}, at {m['uri']}")
    else:
        print(f"{m['name']} {m['version']} is already registered with identical content; nothing to do")
    return 0


def run_list(args: argparse.Namespace) -> int:
    registry = open_registry(args)
    records = registry.versions(args.name)
    by_version: dict[str, list[str]] = {}
    for stage, pointer in registry.stages(args.name).items():
        by_version.setdefault(pointer["version"], []).append(stage)
    rows = [(r["version"], r["revision"][:12], human_bytes(r["totalBytes"]), r["registeredAt"],
             r["registeredBy"], ",".join(by_version.get(r["version"], [])) or "-") for r in records]
    header = ("VERSION", "REVISION", "SIZE", "REGISTERED", "BY", "STAGES")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def run_promote(args: argparse.Namespace) -> int:
    result = open_registry(args).promote(args.name, args.version, args.stage)
    p = result.pointer
    if result.changed:
        print(f"{p['stage']} of {p['name']}: {p['previousVersion'] or '(none)'} -> {p['version']} "
              f"(audit record {result.audit_key})")
    else:
        print(f"{p['stage']} of {p['name']} already points at {p['version']}; nothing to do")
    return 0


def run_show(args: argparse.Namespace) -> int:
    record = open_registry(args).get(args.name, stage=args.stage, version=args.version)
    print(json.dumps(record, indent=2, sort_keys=True))
    return 0


def run_download(args: argparse.Namespace) -> int:
    progress = NoProgress() if args.no_progress else TextProgress(sys.stderr)
    result = open_registry(args).fetch(args.name, args.dest, version=args.version, stage=args.stage,
                                       progress=progress)
    m, report = result.manifest, result.report
    print(f"downloaded {m['name']} {m['version']} ({len(m['files'])} files, checksums verified) "
          f"to {args.dest}: {human_bytes(report.downloaded_bytes)} fetched, "
          f"{report.reused_files} files already present")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    cache = ModelCache(args.cache_dir, max_bytes=gib(args.max_cache_gib, "--max-cache-gib"),
                       reserve_bytes=gib(args.reserve_gib, "--reserve-gib") or 0,
                       lock_timeout=args.lock_timeout)
    if args.link_to is not None:
        check_link(args.link_to)
    registry = LazyRegistry(args)
    progress = NoProgress() if args.no_progress else TextProgress(sys.stderr)
    began = time.monotonic()
    result = cache.fill(registry, args.name, version=args.version, stage=args.stage,
                        revision=args.revision, progress=progress)
    if args.link_to is not None:
        link(args.link_to, result.files)
    key = result.key
    what = f"{key.name} {key.version} (revision {key.revision})"
    if result.hit:
        waited = " after waiting for another fetch" if result.waited_for_lock else ""
        print(f"cache hit{waited}: {what} at {result.files}; no bytes moved")
    else:
        evicted = ", ".join(f"{e.name} {e.version}" for e in result.evicted) or "none"
        moved = result.report.downloaded_bytes if result.report else 0
        print(f"fetched {what} into {result.files}: {human_bytes(moved)} in "
              f"{time.monotonic() - began:.1f} s, checksums verified; evicted: {evicted}")
    return 0


class LazyRegistry:
    """Opens the registry (and its S3 client) only if the cache needs it: a pinned hit makes
    no S3 client at all."""

    def __init__(self, args: argparse.Namespace):
        self._args = args
        self._registry: ModelRegistry | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._registry is None:
            self._registry = open_registry(self._args)
        return getattr(self._registry, attr)


def check_link(path: Path) -> None:
    if path.exists() and not path.is_symlink():
        raise RegistryError(f"--link-to {str(path)!r} exists and is not a symlink; not replacing it")


def link(path: Path, target: Path) -> None:
    """Point path at target atomically (a new symlink renamed over the old one)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RegistryError(f"cannot link {str(path)!r} to {str(target)!r}: {exc.strerror or exc}") from exc


def run_cache_list(args: argparse.Namespace) -> int:
    if not args.cache_dir.is_dir():
        raise RegistryError(f"cache directory {str(args.cache_dir)!r} does not exist")
    rows = [(e.key.name, e.key.version, e.key.revision[:12], "ready" if e.ready else "partial",
             human_bytes(e.size_bytes), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.last_used)),
             "in use" if e.in_use else "-") for e in ModelCache(args.cache_dir).entries()]
    header = ("MODEL", "VERSION", "REVISION", "STATE", "SIZE", "LAST USED", "USE")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def run_cache_hold(args: argparse.Namespace) -> int:
    """Hold the use lock until SIGTERM/SIGINT: a pod's sidecar keeps its version from eviction,
    and the kernel drops the lock if the pod dies any other way."""
    cache = ModelCache(args.cache_dir)
    key = EntryKey(args.name, args.version, args.revision)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with cache.using(key):
        if args.ready_file is not None:
            with os_errors(f"writing --ready-file {args.ready_file}"):
                args.ready_file.write_text(f"{os.getpid()}\n")
        try:
            print(f"holding {key.name} {key.version} (revision {key.revision}) in {cache.root}",
                  flush=True)
            while not stop.wait(3600):
                pass
        finally:
            if args.ready_file is not None:  # a restarted sidecar must not look held before it is
                args.ready_file.unlink(missing_ok=True)
    return 0
