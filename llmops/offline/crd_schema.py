"""Custom resources checked against the CRDs of the release that installs them, offline.

kubernetes-validate knows only built-in kinds; Karpenter's NodePool and EC2NodeClass are
validated here against the openAPIV3Schema of aws/karpenter-provider-aws v1.14.1
(pkg/apis/crds/, copied verbatim to components/data/crds/). Unknown fields are errors (as
with kubectl's strict field validation); CEL rules (x-kubernetes-validations) are not run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parents[2] / "components" / "data" / "crds"


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> the served version's schema, for every CRD in CRD_DIR."""
    found = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        if not isinstance(crd, dict) or crd.get("kind") != "CustomResourceDefinition":
            continue
        spec = crd["spec"]
        for version in spec["versions"]:
            if version.get("served"):
                found[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = _strict(
                    version["schema"]["openAPIV3Schema"])
    return found


def _strict(schema: Any) -> Any:
    """Objects with declared properties reject others, unless the CRD preserves them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def knows(manifest: dict[str, Any]) -> bool:
    return (manifest.get("apiVersion"), manifest.get("kind")) in crd_schemas()


def problems(manifest: dict[str, Any]) -> list[str]:
    """Every schema error of the manifest, as `path: message`."""
    schema = crd_schemas()[(manifest["apiVersion"], manifest["kind"])]
    validator = jsonschema.Draft7Validator(schema)
    body = {k: v for k, v in manifest.items() if k != "metadata"}
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]
