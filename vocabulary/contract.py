"""What the platform stack hands the workloads stack: output names and a config digest.

The workloads stack reads these outputs through `pulumi.StackReference`; `llmops plan` feeds
the platform plan's outputs to the workloads plan the same way. The digest says which
environment file the platform was last deployed from, so a workloads `up` against a
platform that is behind its configuration stops with a clear message instead of deploying
pods for pools, roles or models that do not exist yet.
"""

from __future__ import annotations

import hashlib
import json

from vocabulary.config import PlatformConfig
from vocabulary.outputs_schema import WORKLOADS

PLATFORM_PROJECT, WORKLOADS_PROJECT = "llmops", "llmops-workloads"

#: Platform outputs the workloads stack reads.
PLATFORM_OUTPUTS = (
    "clusterName", "clusterEndpoint", "kubeconfig", "vpcId", "modelBucket", "registryPrefix",
    "platformRepositoryUrl", "workloadRoleArns", "imageMirrors", "configDigest",
    "appReadPolicyArn", "applicationLogGroup", "karpenter",
)
#: Config sections that shape what the platform creates (and what the workloads rely on).
PLATFORM_SECTIONS = ("region", "network", "cluster", "gpu_pools", "storage", "ci", "images")


def config_digest(cfg: PlatformConfig) -> str:
    """A short hash of what the platform was built from, plus the served model names (each
    has an IRSA role in the platform) and the workloads' SSM mirror (the platform's read
    policy names those parameters)."""
    data = cfg.model_dump(mode="json", by_alias=True, include=set(PLATFORM_SECTIONS))
    data["models"] = sorted(m.name for m in cfg.models)
    data["workloadsParameters"] = sorted(o.name for o in WORKLOADS.mirrored())
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def platform_stack_name(cfg: PlatformConfig, organization: str) -> str:
    """org/project/stack of the platform stack a workloads stack reads."""
    return cfg.platform_stack or f"{organization}/{PLATFORM_PROJECT}/{cfg.environment}"
