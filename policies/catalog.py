"""Every rule of the pack, in the order reports list them. Add a domain module here."""

from __future__ import annotations

from policies import (
    aws_compute,
    aws_iam,
    aws_network,
    aws_storage,
    governance,
    gpu_cost,
    isolation,
    kubernetes,
    tagging,
)
from policies.rules import Rule

ALL_RULES: list[Rule] = [
    *aws_storage.RULES,
    *aws_compute.RULES,
    *aws_network.RULES,
    *aws_iam.RULES,
    *tagging.RULES,
    *kubernetes.RULES,
    *isolation.RULES,
    *gpu_cost.RULES,
    *governance.RULES,
]

RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in ALL_RULES}
if len(RULES_BY_NAME) != len(ALL_RULES):
    raise RuntimeError("two rules share a name")
