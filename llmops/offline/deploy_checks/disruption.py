"""Deploy checks for how many nodes Karpenter may disrupt at once.

- `disruption-budgets-bound-every-reason`: Karpenter allows, per reason (Empty, Drifted,
  Underutilized), the minimum of the active budgets that list that reason or list none; a
  reason no active budget covers is unbounded (math.MaxInt32), and a budget with a
  `schedule` is only active for its `duration` after each hit (kubernetes-sigs/karpenter
  v1.14.1 pkg/apis/v1/nodepool.go GetAllowedDisruptionsByReason, Budget.IsActive). So budgets
  that are all scoped by reason or by schedule can leave a reason unlimited: a new amiVersion
  then drifts every GPU node of the pool at once and every model restarts together. A pool
  needs, for every reason, an always-active budget (no schedule) that applies to it; the
  CRD's default (`nodes: 10%`, when `budgets` is absent) is one.
"""

from __future__ import annotations

from collections.abc import Iterator

from llmops.offline.deploy_checks.base import NODE_POOL, Finding, Rule, _k8s_name, _pool_spec
from llmops.offline.plan import Plan

#: the DisruptionReason enum of karpenter.sh_nodepools.yaml v1.14.1 (components/data/crds/)
REASONS = ("Empty", "Drifted", "Underutilized")


def unbounded_reasons(budgets: list[dict] | None) -> list[str]:
    """The reasons no always-active budget limits; none when the CRD's default applies."""
    if budgets is None:
        return []
    always = [b for b in budgets if "schedule" not in b and "duration" not in b]
    return [r for r in REASONS if not any(b.get("reasons") is None or r in b["reasons"] for b in always)]


def budgets_bound_every_reason(plan: Plan) -> Iterator[Finding]:
    for pool in plan.of_type(NODE_POOL):
        budgets = (_pool_spec(pool).get("disruption") or {}).get("budgets")
        missing = unbounded_reasons(budgets)
        if missing:
            yield Finding("disruption-budgets-bound-every-reason", pool.stack, _k8s_name(pool),
                          f"no always-active budget (one without schedule) covers {', '.join(missing)}: "
                          "Karpenter may disrupt every node of the pool at once for that reason (e.g. an "
                          "amiVersion change drifts them all); add a budget without reasons, such as "
                          "{nodes: 10%} (components/nodepools.py disruption_budgets)")


RULES: tuple[Rule, ...] = (budgets_bound_every_reason,)
