"""Model governance: what serves production traffic is a registry version that was promoted
to production, pinned to an exact revision, so a deploy is reproducible and auditable.

Contract with the serving component: a TGI Deployment carries these annotations (on the
Deployment, or on its pod template).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.kubernetes import DEPLOYMENT, SERVING_SCHEMA, is_serving
from policies.rules import Rule, RuleContext, get, known

#: The registry version the Deployment serves (e.g. "7").
MODEL_VERSION = "llmops.io/model-version"
#: The exact revision of the weights (registry object version / commit sha).
MODEL_REVISION = "llmops.io/model-revision"
#: Where the version came from: the registry stage it was resolved from, or "pinned".
REGISTRY_STAGE = "llmops.io/registry-stage"
PINNED = "pinned"


def annotations(props: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in ("spec.template.metadata.annotations", "metadata.annotations"):
        found = get(props, path)
        if isinstance(found, Mapping):
            merged.update(found)
    return merged


def check_registry_pinned(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if not is_serving(type_token, props, ctx["servingLabels"]):
        return []
    notes = annotations(props)
    values = {k: notes.get(k) for k in (MODEL_VERSION, MODEL_REVISION, REGISTRY_STAGE)}
    if any(v is not None and not known(v) for v in values.values()):
        return []  # resolved from outputs not known in preview
    version, revision, stage = (str(v or "").strip() for v in values.values())
    problems = []
    if not version:
        problems.append(f"no {MODEL_VERSION} annotation: the served model is not a registry version")
    allowed = list(ctx["allowedStages"])
    if stage not in allowed:
        shown = repr(stage) if stage else "missing"
        problems.append(f"{REGISTRY_STAGE} is {shown}; allowed here: {', '.join(allowed)}")
    if not revision and (ctx["requireRevision"] or stage == PINNED):
        problems.append(f"no {MODEL_REVISION}: the version is not pinned to an exact revision")
    return problems


RULES = [
    Rule(
        name="model-deployment-registry-pinned",
        description="Model deployments serve a registry version from an allowed stage (production in "
        "prod) pinned to an exact revision.",
        remediation=f"Promote the version to production in the model registry, then deploy it so the "
        f"Deployment carries {MODEL_VERSION}, {MODEL_REVISION} (non-empty) and {REGISTRY_STAGE} "
        f"(production, or pinned with a revision).",
        resource_types=(DEPLOYMENT,),
        check=check_registry_pinned,
        config_schema={
            **SERVING_SCHEMA,
            "allowedStages": {"type": "array", "items": {"type": "string"},
                              "default": ["production", PINNED]},
            "requireRevision": {"type": "boolean", "default": True},
        },
    ),
]
