"""The policy pack the Pulumi CLI runs: `pulumi preview --policy-pack policies
--policy-pack-config policies/config/<stack>.json`.

PolicyPack(...) starts the analyzer's gRPC server and never returns, so nothing else lives
here and nothing imports this module; the policies are in policies/pack.py.
"""

import sys
from pathlib import Path

# The CLI runs the pack from this directory; the rules import the repository's packages.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import PolicyPack

from policies.pack import ALL_POLICIES, PACK_LEVEL, PACK_NAME, stack_initial_config

PolicyPack(
    name=PACK_NAME,
    policies=ALL_POLICIES,
    enforcement_level=PACK_LEVEL,
    initial_config=stack_initial_config(),
    description="LLM serving platform guardrails: encryption, private endpoints, least-privilege "
    "IAM, cost tags, Kubernetes workload hygiene, GPU cost and model governance.",
)
