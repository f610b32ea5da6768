"""Cost-allocation tags: every AWS bill line must map to an environment, team and budget.

Whether a resource type takes tags is read from the provider SDK (pulumi_aws): a resource
that omits `tags` entirely is not thereby "not taggable", which would let an untagged VPC
pass. Types the installed SDK does not know fall back to the inputs present.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from policies.rules import Rule, RuleContext, computed

REQUIRED_TAGS = ("Environment", "Project", "Owner", "CostCentre", "ManagedBy")
_MODULES_MARKER = 'resource_modules="""'


@functools.lru_cache(maxsize=1)
def aws_resource_classes() -> dict[str, tuple[str, str]]:
    """Type token -> (Python module, class) as pulumi_aws registers its resource modules.

    Read from the package's own registration table rather than importing all of it (the
    SDK is large; only the modules of types actually checked get imported)."""
    spec = importlib.util.find_spec("pulumi_aws")
    if spec is None or spec.origin is None:
        return {}
    source = Path(spec.origin).read_text()
    start = source.find(_MODULES_MARKER)
    if start < 0:
        return {}
    start += len(_MODULES_MARKER)
    modules = json.loads(source[start:source.index('"""', start)])
    return {token: (m["fqn"], cls) for m in modules for token, cls in m.get("classes", {}).items()}


@functools.cache
def takes_tags(type_token: str) -> bool | None:
    """Does the provider schema give `type_token` a `tags` input? None: type unknown here."""
    entry = aws_resource_classes().get(type_token)
    if entry is None:
        return None
    cls = getattr(importlib.import_module(entry[0]), entry[1], None)
    init = getattr(cls, "_internal_init", None)
    if init is None:
        return None
    return "tags" in inspect.signature(init).parameters


def _as_map(tags: Any) -> Mapping[str, Any]:
    """A tags map; Auto Scaling groups take a list of {key, value, propagateAtLaunch}."""
    if isinstance(tags, Mapping):
        return tags
    if isinstance(tags, list):
        return {t.get("key"): t.get("value") for t in tags if isinstance(t, Mapping)}
    return {}


def check_required_tags(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    taggable = takes_tags(type_token)
    if taggable is False or (taggable is None and "tags" not in props):
        return []
    tags = props.get("tags")
    if computed(tags):
        return []
    tags = _as_map(tags)
    missing = [t for t in ctx["requiredTags"] if not str(tags.get(t) or "").strip()]
    if missing:
        return [f"missing or empty cost-allocation tag(s): {', '.join(missing)}"]
    return []


RULES = [
    Rule(
        name="required-cost-tags",
        description="Every taggable AWS resource carries the cost-allocation tags Environment, Project, "
        "Owner, CostCentre and ManagedBy.",
        remediation="Set llmops:tags (owner, costCentre) in the stack config: components/tagging.py "
        "adds them to every resource. A resource's own `tags` must not blank them.",
        resource_types=("aws:*",),
        check=check_required_tags,
        config_schema={"requiredTags": {"type": "array", "items": {"type": "string"},
                                        "default": list(REQUIRED_TAGS)}},
    ),
]
