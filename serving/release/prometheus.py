"""A minimal client for Prometheus's HTTP API (`GET /api/v1/query`, instant vectors).

Only what canary analysis needs, with errors that say which query failed and why: an
unreachable server, an answer that is not the API's JSON envelope, a query Prometheus rejects.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from serving.release.errors import ReleaseError


@dataclass(frozen=True)
class Sample:
    """One series of an instant vector: its labels and value (None for NaN/Inf)."""

    labels: dict[str, str]
    value: float | None


class Prometheus:
    def __init__(self, url: str, timeout_s: float = 10.0):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ReleaseError(f"--prometheus must be an http(s) URL like http://prometheus:9090 "
                               f"(got {url!r})")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Evaluate an instant query (now, or at a Unix time) and return its vector."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        request = urllib.request.Request(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}",
            headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:  # 400/422/503 still carry the JSON envelope
            body = exc.read()
            envelope = _decode(body, self.url, promql, status=exc.code)
            raise ReleaseError(f"Prometheus at {self.url} rejected the query ({exc.code} "
                               f"{envelope.get('errorType', '?')}: {envelope.get('error', '?')}): "
                               f"{promql}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReleaseError(f"cannot reach Prometheus at {self.url}: {reason}") from None
        envelope = _decode(body, self.url, promql, status=200)
        if envelope.get("status") != "success":
            raise ReleaseError(f"Prometheus at {self.url} answered status "
                               f"{envelope.get('status')!r} ({envelope.get('error', 'no error text')}) "
                               f"to: {promql}")
        return _vector(envelope.get("data"), self.url, promql)


def _decode(body: bytes, url: str, promql: str, status: int) -> dict:
    try:
        envelope = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ReleaseError(f"{url} did not answer like Prometheus's HTTP API (HTTP {status}, "
                           f"not JSON: {body[:80]!r}) to: {promql}") from None
    if not isinstance(envelope, dict) or "status" not in envelope:
        raise ReleaseError(f"{url} did not answer like Prometheus's HTTP API (HTTP {status}, "
                           f"no 'status' in the JSON) to: {promql}")
    return envelope


def _vector(data: object, url: str, promql: str) -> list[Sample]:
    if not isinstance(data, dict) or data.get("resultType") != "vector":
        kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise ReleaseError(f"Prometheus at {url} answered a {kind!r} result, expected an instant "
                           f"vector, to: {promql}")
    samples = []
    for item in data.get("result") or []:
        try:
            labels, (_, text) = item["metric"], item["value"]
            value = float(text)
        except (KeyError, TypeError, ValueError):
            raise ReleaseError(f"Prometheus at {url} answered a malformed sample {item!r} "
                               f"to: {promql}") from None
        samples.append(Sample(dict(labels), value if math.isfinite(value) else None))
    return samples
