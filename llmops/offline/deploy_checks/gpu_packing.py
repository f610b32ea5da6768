"""Deploy check for GPU nodes bought mostly to sit idle.

- `gpu-node-mostly-idle`: a model server whose replica uses less than half of the GPUs of the
  smallest node its NodePool may launch, and whose replicas (at their minimum) do not fill one
  such node, pays for GPUs no pod can use: the platform spreads replicas across nodes and
  capacity tiers, so they do not pack. A 1-GPU model on a 4-GPU g5.12xlarge leaves three GPUs
  (and three quarters of the node's price) idle; a pool of its own shape (`24gib-x1`) fits it.
"""

from __future__ import annotations

from collections.abc import Iterator

from components.nodepools import GPU_TAINT_KEY, INSTANCE_TYPE_LABEL
from llmops.offline.deploy_checks.base import (
    DEPLOYMENT,
    NODE_POOL,
    Finding,
    Rule,
    _k8s_name,
    _pod_spec,
    _pool_requirement,
    _pools_for,
)
from llmops.offline.plan import Plan
from vocabulary.gpu_instances import gpu_instances


def gpus_per_replica(pod: dict) -> int:
    return sum(int((c.get("resources") or {}).get("requests", {}).get(GPU_TAINT_KEY, 0))
               for c in pod.get("containers", []))


def gpu_node_mostly_idle(plan: Plan) -> Iterator[Finding]:
    pools, table = plan.of_type(NODE_POOL), gpu_instances()
    for deployment in plan.of_type(DEPLOYMENT):
        gpus = gpus_per_replica(_pod_spec(deployment))
        if not gpus:
            continue
        replicas = max(1, int(deployment.inputs.get("spec", {}).get("replicas") or 0))
        for pool in _pools_for(deployment, pools):
            types = [table[t] for t in _pool_requirement(pool, INSTANCE_TYPE_LABEL) if t in table]
            if not types:
                continue
            smallest = min(types, key=lambda t: t.gpus)
            if 2 * gpus < smallest.gpus and gpus * replicas < smallest.gpus:
                yield Finding("gpu-node-mostly-idle", deployment.stack, deployment.name,
                              f"uses {gpus} GPU per replica ({replicas} at least) on NodePool "
                              f"{_k8s_name(pool)}, whose smallest node ({smallest.name}) has "
                              f"{smallest.gpus}: "
                              f"at most {gpus * replicas} of them in use, the rest paid for and idle; "
                              f"add a pool of shape {smallest.gpu_memory_gib}gib-x{gpus} to llmops:gpuPools "
                              "and select it with the model's gpuShape")


RULES: tuple[Rule, ...] = (gpu_node_mostly_idle,)
