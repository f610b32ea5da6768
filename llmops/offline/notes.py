"""The short lines every `llmops plan` summary ends with: what the secrets were planned
with, and what the GPU fleet costs a month (details: `llmops secrets`, `llmops cost`)."""

from __future__ import annotations

from llmops.offline.cost import estimate, summary_line
from llmops.offline.plan import Plan
from llmops.offline.secrets import placeholder_note


def plan_notes(plan: Plan) -> list[str]:
    return [placeholder_note(plan.secrets, plan.stack),
            summary_line(estimate(plan.config), plan.stack)]
