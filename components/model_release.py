"""Resolve what a model deployment serves from the registry, at deploy time.

A stage (`production`) is read from the registry's stage pointer through the
`aws.s3.get_object` data source, so `pulumi up` deploys what was promoted; a pinned
version reads that version's manifest. Keys follow serving/registry's layout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from vocabulary.config.serving import RegistryRef


@dataclass(frozen=True)
class ResolvedVersion:
    version: str
    revision: str
    uri: str
    source: str  # the stage it was resolved from, or "pinned"


def stage_key(prefix: str, model: str, stage: str) -> str:
    return f"{prefix}models/{model}/stages/{stage}.json"


def manifest_key(prefix: str, model: str, version: str) -> str:
    return f"{prefix}models/{model}/{version}/manifest.json"


def _parse(body: str, ref: RegistryRef) -> ResolvedVersion:
    record = json.loads(body)
    revision = ref.revision or record.get("revision", "")
    if ref.revision and record.get("revision") and record["revision"] != ref.revision:
        raise pulumi.RunError(
            f"model {record.get('name')} version {record.get('version')} has revision "
            f"{record['revision']} in the registry, but config pins {ref.revision}")
    return ResolvedVersion(version=record["version"], revision=revision, uri=record["uri"],
                           source=ref.stage or "pinned")


def resolve(model: str, ref: RegistryRef, bucket: pulumi.Input[str], prefix: str,
            opts: pulumi.InvokeOptions | None = None) -> pulumi.Output[ResolvedVersion]:
    key = stage_key(prefix, model, ref.stage) if ref.stage else manifest_key(prefix, model, ref.version)
    obj = aws.s3.get_object_output(bucket=bucket, key=key, opts=opts)
    return obj.body.apply(lambda body: _parse(body, ref))
