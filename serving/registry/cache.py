"""A node-local model cache (NVMe instance store): one verified copy per model, version and
revision, shared by every pod on the node.

Layout under the cache root (a hostPath):

    entries/<name>/<version>/<revision>/files/...   the weights TGI reads (read-only mount)
    entries/<name>/<version>/<revision>/READY       written last, after every byte verified
    locks/<name>--<version>--<revision>.fill        flock EX while one process fills the entry
    locks/<name>--<version>--<revision>.use         flock SH while a pod uses the entry
    trash/                                          evicted entries, renamed here, then removed

Why flock: the kernel drops a dead process's locks, so a crashed or OOM-killed fetcher never
leaves the node stuck; the next pod resumes its partial download (and re-verifies it). Lock
files are never deleted (unlinking a lock file races with a process opening it).

Why the READY marker: it is renamed into place only after the whole version verified and was
fsynced, so "READY exists and sizes match" means a complete copy; anything else is refetched.
A hit with a pinned version and revision makes no S3 request at all.

Space: before a download that would not fit (free disk minus a reserve, and an optional cap),
the least recently used entries are evicted, never one that is being filled or used (held
by `llmops registry cache hold`, e.g. a pod's sidecar, or by a fetch in progress). If the
space cannot be found, nothing is deleted and the error says what holds it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.registry.errors import RegistryError
from serving.registry.fetch import FetchReport, os_errors
from serving.registry.layout import check_name, iso_timestamp
from serving.registry.manifest import entries as manifest_entries
from serving.registry.progress import Progress, human_bytes

READY = "READY"
LAST_USED = "last-used"
SAFE_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Free space left on the cache disk after a fill, for logs and other tenants of the disk.
DEFAULT_RESERVE = 2 * 1024**3


class CacheError(RegistryError):
    """The cache cannot serve the request (no space, lock timeout, unusable root)."""


def revision_key(revision: str) -> str:
    """The revision as one safe path segment (hashed if it is not one already)."""
    if SAFE_REVISION.fullmatch(revision) and revision not in (".", ".."):
        return revision
    return "sha256-" + hashlib.sha256(revision.encode()).hexdigest()[:40]


def cache_files_path(root: str, name: str, version: str, revision: str) -> str:
    """Where a version's files live under a cache root, for a pod spec's `--model-id`: pure, so
    the stack can compute it at plan time (it knows the pinned version and revision)."""
    key = EntryKey(name, version, revision)
    return f"{root.rstrip('/')}/entries/{key.name}/{key.version}/{revision_key(key.revision)}/files"


@dataclass(frozen=True)
class EntryKey:
    name: str
    version: str
    revision: str

    def __post_init__(self) -> None:
        check_name("model", self.name)
        check_name("version", self.version)
        if not self.revision:
            raise RegistryError("a cache entry needs a non-empty revision")

    @property
    def slug(self) -> str:
        return f"{self.name}--{self.version}--{revision_key(self.revision)}"


@dataclass(frozen=True)
class CacheEntry:
    """One entry on disk, as `cache list` shows it."""

    key: EntryKey
    path: Path
    ready: bool
    size_bytes: int
    last_used: float
    in_use: bool


@dataclass(frozen=True)
class CacheResult:
    """What fill() did: where the weights are, whether they were already there, what moved."""

    key: EntryKey
    files: Path
    hit: bool
    waited_for_lock: bool
    report: FetchReport | None
    evicted: tuple[EntryKey, ...]


class _Lock:
    """An flock on a lock file: blocking with a timeout, or a single try."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1
        self.waited = False

    def acquire(self, exclusive: bool, timeout: float | None) -> bool:
        """True when held; False if `timeout` (0 = one try) passed first. self.waited says
        whether someone else held it when we asked."""
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self.fd, mode)
                return True
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if deadline is not None and time.monotonic() >= deadline:
                self.release()
                return False
            self.waited = True
            time.sleep(0.1)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = -1


class ModelCache:
    """The cache at root (see the module doc)."""

    def __init__(self, root: Path | str, *, max_bytes: int | None = None,
                 reserve_bytes: int = DEFAULT_RESERVE, lock_timeout: float = 3600.0):
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        self.lock_timeout = lock_timeout
        if self.root.exists() and not self.root.is_dir():
            raise CacheError(f"cache directory {str(self.root)!r} exists and is not a directory")
        with os_errors(f"preparing cache directory {self.root}"):
            for sub in ("entries", "locks", "trash"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths ---------------------------------------------------------------------------

    def entry_dir(self, key: EntryKey) -> Path:
        return self.root / "entries" / key.name / key.version / revision_key(key.revision)

    def files_dir(self, key: EntryKey) -> Path:
        """What TGI reads: `--model-id <this>`; stable for a given name, version and revision."""
        return self.entry_dir(key) / "files"

    def _lock(self, key: EntryKey, kind: str) -> _Lock:
        return _Lock(self.root / "locks" / f"{key.slug}.{kind}")

    # -- reading -------------------------------------------------------------------------

    def ready(self, key: EntryKey) -> dict[str, Any] | None:
        """The READY marker if the entry is complete: the marker names this key and every file
        has the size it recorded (cheap; the bytes were verified before the marker was written)."""
        marker = self.entry_dir(key) / READY
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        if (record.get("name"), record.get("version"), record.get("revision")) != (
                key.name, key.version, key.revision):
            return None
        files = self.files_dir(key)
        for f in record.get("files", []):
            try:
                if (files / f["path"]).stat().st_size != f["size"]:
                    return None
            except OSError:
                return None
        return record

    def entries(self) -> list[CacheEntry]:
        """Every entry on disk (complete or partial), least recently used first."""
        found = []
        base = self.root / "entries"
        for rev_dir in sorted(base.glob("*/*/*")):
            name, version = rev_dir.parent.parent.name, rev_dir.parent.name
            marker = _read_json(rev_dir / READY)
            revision = marker.get("revision") if marker else _read_text(rev_dir / "REVISION")
            if not revision:
                revision = rev_dir.name
            try:
                key = EntryKey(name, version, revision)
            except RegistryError:
                continue
            use = self._lock(key, "use")
            in_use = not use.acquire(exclusive=True, timeout=0)
            use.release()
            found.append(CacheEntry(key, rev_dir, self.ready(key) is not None, _disk_usage(rev_dir),
                                    _last_used(rev_dir), in_use))
        return sorted(found, key=lambda e: e.last_used)

    # -- filling -------------------------------------------------------------------------

    def fill(self, registry: Any, name: str, *, version: str | None = None, stage: str = "production",
             revision: str | None = None, progress: Progress | None = None) -> CacheResult:
        """Make name/version (or the stage's version) present and verified in the cache.

        With version and revision both given, a complete entry is served without asking S3.
        Otherwise the manifest is read first; a given revision must match it."""
        if version is not None and revision is not None:
            key = EntryKey(name, version, revision)
            with self.using(key):
                if self.ready(key):
                    self._touch(key)
                    return CacheResult(key, self.files_dir(key), True, False, None, ())
        manifest = registry.get(name, stage=stage, version=version)
        if revision is not None and manifest["revision"] != revision:
            raise CacheError(f"{name} {manifest['version']} has revision {manifest['revision']} in the "
                             f"registry, not {revision}; the registry and the deployment disagree")
        key = EntryKey(name, manifest["version"], manifest["revision"])
        with self.using(key):
            fill_lock = self._lock(key, "fill")
            if not fill_lock.acquire(exclusive=True, timeout=self.lock_timeout):
                raise CacheError(f"another process has been filling {name} {key.version} in "
                                 f"{self.root} for over {self.lock_timeout:g} s ({fill_lock.path}); "
                                 "is a fetch stuck on this node?")
            try:
                if self.ready(key):
                    self._touch(key)
                    return CacheResult(key, self.files_dir(key), True, fill_lock.waited, None, ())
                evicted = self._make_room(key, manifest)
                report = self._download(registry, key, manifest, progress)
                return CacheResult(key, self.files_dir(key), False, fill_lock.waited, report, evicted)
            finally:
                fill_lock.release()

    @contextlib.contextmanager
    def using(self, key: EntryKey) -> Iterator[None]:
        """Hold the entry's use lock (shared): no eviction while held. `cache hold` keeps it for
        a pod's lifetime; a fetch holds it while it runs."""
        lock = self._lock(key, "use")
        with os_errors(f"locking {lock.path}"):
            if not lock.acquire(exclusive=False, timeout=self.lock_timeout):
                raise CacheError(f"{key.name} {key.version} in {self.root} is being evicted and the "
                                 f"eviction has not finished in {self.lock_timeout:g} s")
        try:
            yield
        finally:
            lock.release()

    def _download(self, registry: Any, key: EntryKey, manifest: dict[str, Any],
                  progress: Progress | None) -> FetchReport:
        entry, files = self.entry_dir(key), self.files_dir(key)
        with os_errors(f"preparing {entry}"):
            (entry / READY).unlink(missing_ok=True)
            files.mkdir(parents=True, exist_ok=True)
            (entry / "REVISION").write_text(key.revision)
        result = registry.fetch(key.name, files, version=key.version, manifest=manifest, progress=progress)
        wanted = {f.path for f in manifest_entries(manifest)}
        with os_errors(f"sealing {entry}"):
            for path in sorted(files.rglob("*"), reverse=True):
                relative = path.relative_to(files).as_posix()
                if path.is_file() and relative not in wanted:
                    path.unlink()  # leftovers of another content; TGI must see exactly the manifest
                elif path.is_file():
                    _fsync_file(path)
                    path.chmod(0o444)
                elif path.is_dir() and not any(path.iterdir()):
                    path.rmdir()
                else:
                    path.chmod(0o755)
            record = {"name": key.name, "version": key.version, "revision": key.revision,
                      "files": manifest["files"], "totalBytes": manifest["totalBytes"],
                      "verifiedAt": iso_timestamp(datetime.now(UTC))}
            _write_atomically(entry / READY, json.dumps(record, indent=2, sort_keys=True))
            self._touch(key)
        return result.report

    def _touch(self, key: EntryKey) -> None:
        with contextlib.suppress(OSError):
            (self.entry_dir(key) / LAST_USED).write_text(iso_timestamp(datetime.now(UTC)))

    # -- space ---------------------------------------------------------------------------

    def _make_room(self, key: EntryKey, manifest: dict[str, Any]) -> tuple[EntryKey, ...]:
        """Evict least recently used entries (never in use or filling) until the version fits;
        if it cannot fit, delete nothing and say why."""
        for leftover in (self.root / "trash").iterdir():  # an eviction that crashed mid-way
            shutil.rmtree(leftover, ignore_errors=True)
        present = _disk_usage(self.entry_dir(key))
        needed = max(0, int(manifest["totalBytes"]) - present)
        others = [e for e in self.entries() if e.key.slug != key.slug]
        usage = shutil.disk_usage(self.root)

        def short_by(freed: int) -> int:
            disk = needed + self.reserve_bytes - (usage.free + freed)
            cap = 0 if self.max_bytes is None else (
                sum(e.size_bytes for e in others) + present + needed - freed - self.max_bytes)
            return max(disk, cap)

        if short_by(0) <= 0:
            return ()
        plan: list[tuple[CacheEntry, _Lock, _Lock]] = []
        freed, busy = 0, []
        try:
            for candidate in others:
                fill, use = self._lock(candidate.key, "fill"), self._lock(candidate.key, "use")
                if not fill.acquire(exclusive=True, timeout=0):
                    busy.append(f"{candidate.key.name} {candidate.key.version} (being filled)")
                    continue
                if not use.acquire(exclusive=True, timeout=0):
                    fill.release()
                    busy.append(f"{candidate.key.name} {candidate.key.version} (in use)")
                    continue
                plan.append((candidate, fill, use))
                freed += candidate.size_bytes
                if short_by(freed) <= 0:
                    break
            if short_by(freed) > 0:
                cap = f", cap {human_bytes(self.max_bytes)}" if self.max_bytes is not None else ""
                raise CacheError(
                    f"no room in {self.root} for {key.name} {key.version} "
                    f"({human_bytes(needed)} to download, {human_bytes(usage.free)} free, reserve "
                    f"{human_bytes(self.reserve_bytes)}{cap}); evicting every idle entry would free "
                    f"{human_bytes(freed)}; busy: {', '.join(busy) or 'none'}. Nothing was deleted")
            for candidate, _, _ in plan:
                trash = self.root / "trash" / f"{candidate.key.slug}-{uuid.uuid4().hex}"
                with os_errors(f"evicting {candidate.path}"):
                    os.replace(candidate.path, trash)
                    shutil.rmtree(trash)
            return tuple(c.key for c, _, _ in plan)
        finally:
            for _, fill, use in plan:
                use.release()
                fill.release()


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _disk_usage(path: Path) -> int:
    """Bytes allocated under path (sparse partial files count only what was written)."""
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_blocks * 512
    return total


def _last_used(entry: Path) -> float:
    for candidate in (entry / LAST_USED, entry / READY, entry):
        with contextlib.suppress(OSError):
            return candidate.stat().st_mtime
    return 0.0


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    """Write, fsync, rename, fsync the directory: the marker is either absent or complete."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
