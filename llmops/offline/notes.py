"""The short lines every `llmops plan` summary ends with: what the secrets were planned
with (details: `llmops secrets`)."""

from __future__ import annotations

from llmops.offline.plan import Plan
from llmops.offline.secrets import placeholder_note


def plan_notes(plan: Plan) -> list[str]:
    return [placeholder_note(plan.secrets, plan.stack)]
