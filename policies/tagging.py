"""Cost-allocation tags: every AWS bill line must map to an environment, team and budget."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policies.rules import Rule, RuleContext, computed

REQUIRED_TAGS = ("Environment", "Project", "Owner", "CostCentre", "ManagedBy")


def check_required_tags(_type: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    if "tags" not in props:
        return []  # not taggable (this type takes no `tags` input)
    tags = props.get("tags")
    if computed(tags):
        return []
    tags = tags if isinstance(tags, Mapping) else {}
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
