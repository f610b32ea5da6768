"""JSON records in S3 with compare-and-swap writes, and S3 errors turned into RegistryErrors.

Conditional writes are S3's (PutObject IfNoneMatch="*" to create, IfMatch=<etag> to replace):
a lost race comes back as False, never as a silent overwrite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from serving.registry.errors import RegistryError

JSON_TYPE = "application/json"

#: 412: the precondition was false. 409: a concurrent conditional write to the same key
#: (S3 asks callers to re-read and retry). NoSuchKey on IfMatch: the object was deleted.
LOST_RACE_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"})
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def s3_errors(action: str) -> Iterator[None]:
    """Turn AWS failures (no bucket, access denied, no credentials) into one clean message."""
    try:
        yield
    except ClientError as exc:
        err = exc.response.get("Error", {})
        raise RegistryError(f"{action} failed: {err.get('Code', '?')}: {err.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise RegistryError(f"{action} failed: {exc}") from exc


class JsonStore:
    """Small JSON documents (manifests, stage pointers, audit records) in one bucket."""

    def __init__(self, s3: Any, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    def read(self, key: str) -> tuple[dict[str, Any], str] | None:
        """(document, ETag) or None if the key does not exist."""
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING_CODES:
                return None
            with s3_errors(f"reading s3://{self.bucket}/{key}"):
                raise
        body = response["Body"].read()
        try:
            return json.loads(body), response["ETag"]
        except ValueError as exc:
            raise RegistryError(f"s3://{self.bucket}/{key} is not valid JSON: {exc}") from exc

    def create(self, key: str, document: dict[str, Any]) -> bool:
        """Write only if the key does not exist yet; False if someone else created it first."""
        return self._put(key, document, IfNoneMatch="*")

    def replace(self, key: str, document: dict[str, Any], etag: str) -> bool:
        """Write only if the key still has this ETag; False if it changed or vanished since."""
        return self._put(key, document, IfMatch=etag)

    def _put(self, key: str, document: dict[str, Any], **condition: str) -> bool:
        body = json.dumps(document, indent=2, sort_keys=True).encode()
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=JSON_TYPE, **condition)
        except ClientError as exc:
            if error_code(exc) in LOST_RACE_CODES:
                return False
            with s3_errors(f"writing s3://{self.bucket}/{key}"):
                raise
        return True

    def subdirectories(self, prefix: str) -> list[str]:
        """Names of the 'directories' directly under prefix (S3 common prefixes), sorted."""
        names: list[str] = []
        with s3_errors(f"listing s3://{self.bucket}/{prefix}"):
            for page in self.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                names += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
        return sorted(names)


def list_objects(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every object under prefix (Key, Size, ETag), across pages."""
    found: list[dict[str, Any]] = []
    with s3_errors(f"listing s3://{bucket}/{prefix}"):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found += page.get("Contents", [])
    return found
