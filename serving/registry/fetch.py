"""Downloading a version at line rate, every byte verified.

Why not boto3's download_file per file: it HEADs each object, downloads files one after
another with a small pool, and leaves hashing to a second pass over the file. Here:

- one thread pool and one connection pool serve every part of every file (a 16 MiB ranged
  GET each, issued in file order), so many connections stay busy across file boundaries;
- ranges come from the manifest's sizes: no HEAD; each response's Content-Range total is
  checked against the manifest, so a longer or shorter object is caught at its first part;
- each file is hashed in order while its parts land (out-of-order parts wait in memory,
  bounded), so verification finishes with the last byte instead of a re-read afterwards;
- a file becomes visible under its final name only after its SHA-256 and size match;
- an interrupted download resumes: `<file>.part` keeps the bytes and `<file>.part.parts`
  lists the parts written. Resumed parts are re-read and hashed like everything else, and a
  file whose resumed bytes turn out bad is fetched again from scratch, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from s3transfer.utils import S3_RETRYABLE_DOWNLOAD_ERRORS
from urllib3.exceptions import HTTPError as Urllib3Error

from serving.registry.errors import ChecksumMismatch, RegistryError
from serving.registry.manifest import CHUNK, FileEntry
from serving.registry.progress import NoProgress, Progress
from serving.registry.store import MISSING_CODES, error_code, s3_errors

MiB = 1024 * 1024
PART_SUFFIX = ".part"
JOURNAL_SUFFIX = ".part.parts"
RETRYABLE = (*S3_RETRYABLE_DOWNLOAD_ERRORS, Urllib3Error)


@dataclass(frozen=True)
class FetchSettings:
    """How hard to pull. Defaults suit a GPU node (10-100 Gbit/s NIC, 4+ vCPUs for the
    fetcher): S3 gives each connection tens of MB/s, so line rate needs tens of connections.
    Memory held: about 2 x concurrency x part_size (1 GiB at the defaults)."""

    concurrency: int = 32
    part_size: int = 16 * MiB
    attempts: int = 5
    hashers: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 512:
            raise RegistryError(f"fetch concurrency must be 1-512, got {self.concurrency}")
        if not 1 * MiB <= self.part_size <= 1024 * MiB:
            raise RegistryError(f"fetch part size must be 1-1024 MiB, got {self.part_size / MiB:g} MiB")
        if not 1 <= self.hashers <= 64:
            raise RegistryError(f"fetch hashers must be 1-64, got {self.hashers}")
        if self.attempts < 1:
            raise RegistryError(f"fetch attempts must be at least 1, got {self.attempts}")


@dataclass(frozen=True)
class FetchReport:
    """What a fetch did: bytes moved over the network and files kept because they verified."""

    downloaded_bytes: int
    reused_files: int
    resumed_bytes: int


class _ResumedBytesBad(Exception):
    """A file that reused journalled parts failed verification: fetch it again from scratch."""


@dataclass
class _FileJob:
    """One file in flight: its partial file, journal, and in-order hasher."""

    entry: FileEntry
    key: str
    target: Path
    part_size: int
    on_disk: set[int] = field(default_factory=set)
    pending: dict[int, bytes] = field(default_factory=dict)
    fd: int = -1
    journal: Any = None
    ready: threading.Condition = field(default_factory=threading.Condition)
    digest: Any = field(default_factory=hashlib.sha256)

    @property
    def parts(self) -> int:
        return max(1, -(-self.entry.size // self.part_size))

    @property
    def partial(self) -> Path:
        return self.target.with_name(self.target.name + PART_SUFFIX)

    @property
    def journal_path(self) -> Path:
        return self.target.with_name(self.target.name + JOURNAL_SUFFIX)

    def span(self, index: int) -> tuple[int, int]:
        start = index * self.part_size
        return start, min(self.entry.size, start + self.part_size)

    def header(self) -> str:
        return json.dumps({"sha256": self.entry.sha256, "size": self.entry.size, "partSize": self.part_size})


def verified_local(target: Path, entry: FileEntry) -> bool:
    """A file already at its final name counts only if its size and SHA-256 match (never size alone)."""
    if not target.is_file() or target.stat().st_size != entry.size:
        return False
    digest = hashlib.sha256()
    with target.open("rb") as stream:
        while chunk := stream.read(CHUNK * 8):
            digest.update(chunk)
    return digest.hexdigest() == entry.sha256


def remove_partial(target: Path) -> None:
    for suffix in (PART_SUFFIX, JOURNAL_SUFFIX):
        target.with_name(target.name + suffix).unlink(missing_ok=True)


class Fetcher:
    """Fetch a list of manifest files from one bucket into a directory (see module doc)."""

    def __init__(self, s3: Any, bucket: str, key_of: Callable[[str], str], describe: str,
                 settings: FetchSettings | None = None, progress: Progress | None = None):
        self.s3, self.bucket, self.key_of, self.describe = s3, bucket, key_of, describe
        self.settings = settings or FetchSettings()
        self.progress = progress or NoProgress()
        self._failed = threading.Event()
        self._buffers = threading.Semaphore(2 * self.settings.concurrency)
        self._counter_lock = threading.Lock()
        self.downloaded = 0
        self.resumed = 0

    def fetch(self, files: list[FileEntry], dest: Path) -> FetchReport:
        """Download what is not already verified under dest; raise ChecksumMismatch on bad bytes."""
        dest = prepare_dest(dest)
        self.progress.start("downloading", sum(f.size for f in files))
        reused, todo = 0, []
        for entry in files:
            target = dest / entry.path
            if verified_local(target, entry):
                reused += 1
                self.progress.advance(entry.size)
            else:
                todo.append(entry)
        with os_errors(f"writing {self.describe} to {dest}"):
            try:
                self._run(todo, dest)
            except _ResumedBytesBad:  # its partial is gone now; the second run fetches it afresh
                self._run([e for e in todo if not verified_local(dest / e.path, e)], dest)
        self.progress.finish()
        return FetchReport(self.downloaded, reused, self.resumed)

    # -- one pass over the files still missing -------------------------------------------

    def _run(self, entries: list[FileEntry], dest: Path) -> None:
        """Download workers only GET and write; hasher threads consume each file's parts in
        order (SHA-256 releases the GIL), so hashing never holds up a connection."""
        self._failed = threading.Event()
        self._buffers = threading.Semaphore(2 * self.settings.concurrency)
        jobs: list[_FileJob] = []
        try:
            for entry in entries:
                jobs.append(self._open(entry, dest))
            queue = iter(list(jobs))
            queue_lock = threading.Lock()
            with ThreadPoolExecutor(self.settings.concurrency + self.settings.hashers,
                                    thread_name_prefix="fetch") as pool:
                futures: list[Future[None]] = [pool.submit(self._hasher, queue, queue_lock)
                                               for _ in range(min(self.settings.hashers, len(jobs)))]
                for job in jobs:
                    for index in range(job.parts):
                        if index in job.on_disk:
                            continue
                        while not self._failed.is_set() and not self._buffers.acquire(timeout=0.5):
                            pass
                        if self._failed.is_set():
                            break
                        futures.append(pool.submit(self._part, job, index))
                done, _ = wait(futures, return_when=FIRST_EXCEPTION)
                errors = [f.exception() for f in done if f.exception() is not None]
                if errors:
                    self._failed.set()
                    for job in jobs:
                        with job.ready:
                            job.ready.notify_all()
                    raise errors[0]
        finally:
            for job in jobs:
                self._close(job)

    def _open(self, entry: FileEntry, dest: Path) -> _FileJob:
        job = _FileJob(entry, self.key_of(entry.path), dest / entry.path, self.settings.part_size)
        job.target.parent.mkdir(parents=True, exist_ok=True)
        resumable = False
        if job.partial.is_file() and job.journal_path.is_file():
            lines = job.journal_path.read_text().splitlines()
            resumable = bool(lines) and lines[0] == job.header()
            if resumable:
                job.on_disk = {int(x) for x in lines[1:] if x.isdigit() and int(x) < job.parts}
        if not resumable:
            remove_partial(job.target)
            job.journal_path.write_text(job.header() + "\n")
        job.fd = os.open(job.partial, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(job.fd).st_size != entry.size:
            os.ftruncate(job.fd, entry.size)
        job.journal = job.journal_path.open("a")
        resumed = sum(job.span(i)[1] - job.span(i)[0] for i in job.on_disk)
        self.resumed += resumed
        self.progress.advance(resumed)
        return job

    @staticmethod
    def _close(job: _FileJob) -> None:
        if job.journal is not None:
            job.journal.close()
            job.journal = None
        if job.fd >= 0:
            os.close(job.fd)
            job.fd = -1

    # -- workers -------------------------------------------------------------------------

    def _part(self, job: _FileJob, index: int) -> None:
        try:
            if self._failed.is_set():
                return
            data = self._get(job, index)
            start, _ = job.span(index)
            view, offset = memoryview(data), start
            while view:
                written = os.pwrite(job.fd, view, offset)
                view, offset = view[written:], offset + written
            with job.ready:
                job.journal.write(f"{index}\n")
                job.journal.flush()
                job.pending[index] = data
                job.ready.notify_all()
            with self._counter_lock:
                self.downloaded += len(data)
            self.progress.advance(len(data))
        except BaseException:
            self._failed.set()
            raise

    def _get(self, job: _FileJob, index: int) -> bytes:
        start, end = job.span(index)
        request = {"Bucket": self.bucket, "Key": job.key}
        if job.entry.size:
            request["Range"] = f"bytes={start}-{end - 1}"
        for attempt in range(1, self.settings.attempts + 1):
            try:
                response = self.s3.get_object(**request)
                self._check_length(job, response)
                data = response["Body"].read()
                break
            except RETRYABLE as exc:
                if attempt == self.settings.attempts:
                    raise RegistryError(f"{self.describe}: downloading {job.entry.path} "
                                        f"(s3://{self.bucket}/{job.key}) failed after {attempt} "
                                        f"attempts: {exc}") from exc
                time.sleep(min(2.0, 0.1 * 2 ** attempt))
            except ClientError as exc:
                raise self._client_error(job, exc) from exc
        if len(data) != end - start:
            raise self._mismatch(job, f"a ranged read of bytes {start}-{end - 1} returned {len(data)} bytes")
        return data

    def _check_length(self, job: _FileJob, response: dict[str, Any]) -> None:
        total = job.entry.size
        content_range = response.get("ContentRange")
        if content_range:
            total = int(content_range.rsplit("/", 1)[1])
        elif not job.entry.size:
            total = int(response.get("ContentLength", 0))
        if total != job.entry.size:
            raise self._mismatch(job, f"the object has {total} bytes")

    def _client_error(self, job: _FileJob, exc: ClientError) -> RegistryError:
        code = error_code(exc)
        if code in MISSING_CODES:
            return RegistryError(f"{self.describe}: file {job.entry.path} is in the manifest but "
                                 f"s3://{self.bucket}/{job.key} is missing")
        if code == "InvalidRange":
            return self._mismatch(job, "the object is shorter than that")
        try:
            with s3_errors(f"downloading s3://{self.bucket}/{job.key}"):
                raise exc
        except RegistryError as clean:
            return clean
        return RegistryError(str(exc))  # pragma: no cover - s3_errors always raises

    def _mismatch(self, job: _FileJob, found: str) -> ChecksumMismatch:
        return ChecksumMismatch(
            f"{self.describe}: checksum mismatch for file {job.entry.path} "
            f"(s3://{self.bucket}/{job.key}): the manifest says {job.entry.size} bytes, sha256 "
            f"{job.entry.sha256}; {found}. The object is corrupted or was replaced after "
            "registration; the file was not kept")

    def _hasher(self, queue: Any, queue_lock: threading.Lock) -> None:
        """Take the next file (in dispatch order) and hash its parts in order as they land."""
        try:
            while not self._failed.is_set():
                with queue_lock:
                    job = next(queue, None)
                if job is None:
                    return
                for index in range(job.parts):
                    with job.ready:
                        while index not in job.pending and index not in job.on_disk:
                            if self._failed.is_set():
                                return
                            job.ready.wait(0.5)
                        data = job.pending.pop(index, None)
                    if data is None:
                        start, end = job.span(index)
                        data = os.pread(job.fd, end - start, start)
                    else:
                        self._buffers.release()
                    job.digest.update(data)
                self._finish(job)
        except BaseException:
            self._failed.set()
            raise

    def _finish(self, job: _FileJob) -> None:
        sha = job.digest.hexdigest()
        if sha != job.entry.sha256:
            resumed = bool(job.on_disk)
            self._close(job)
            remove_partial(job.target)
            if resumed:
                raise _ResumedBytesBad(job.entry.path)
            raise self._mismatch(job, f"the object's bytes hash to sha256 {sha}")
        self._close(job)
        os.replace(job.partial, job.target)
        job.journal_path.unlink(missing_ok=True)


def check_dest(dest: Path) -> Path:
    """Fail before any network call if the destination cannot be a directory."""
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise RegistryError(f"download destination {str(dest)!r} exists and is not a directory")
    return dest


def prepare_dest(dest: Path) -> Path:
    """The destination must be a directory (created if missing); anything else is a clean error."""
    dest = check_dest(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RegistryError(f"cannot create download destination {str(dest)!r}: "
                            f"{exc.strerror or exc}") from exc
    return dest.resolve()


@contextlib.contextmanager
def os_errors(action: str):
    """Local disk trouble (full, read-only, a file where a directory should be) as a clean error."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise RegistryError(f"{action} failed: {exc.strerror or exc}{where}") from exc
