"""Who runs each step may call what the step calls, the providers' own reads included.

The workloads stack runs on the in-VPC runner (a CodeBuild project, components/ci_runner.py)
with the project's service role. Every read the workloads program makes (data sources,
StackReferences) makes the provider call AWS APIs under that role: a call the role does
not grant fails the `up` (or the preview) with AccessDenied. The calls per data source come
from components/data/provider_reads.yaml, each row citing the provider source it was read
from; the role's policies come from the plan and are evaluated here (Allow/Deny, actions and
resources with wildcards, the condition operators the platform's policies use).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from components.cluster import CLUSTER_ADMIN_POLICY
from llmops.offline.deploy_checks.base import CODEBUILD_PROJECT, Finding, Rule
from llmops.offline.plan import Plan
from llmops.offline.recorder import RecordedInvoke, RecordedResource

PROVIDER_READS = Path(__file__).resolve().parents[3] / "components" / "data" / "provider_reads.yaml"
#: The stack whose `up` runs on the in-VPC runner (the platform stack runs on hosted runners).
RUNNER_STACK = "workloads"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ROLE_POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
MANAGED_POLICY = "aws:iam/policy:Policy"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
BUCKET_SSE = ("aws:s3/bucketServerSideEncryptionConfiguration:"
              "BucketServerSideEncryptionConfiguration")
ACCESS_ENTRY = "aws:eks/accessEntry:AccessEntry"
ACCESS_POLICY = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
RULE = "runner-identity"


@cache
def provider_reads() -> dict[str, dict[str, Any]]:
    """Invoke token -> {dataSource, source, calls}: what the provider calls for that read."""
    return yaml.safe_load(PROVIDER_READS.read_text())["reads"]


# -- IAM evaluation -------------------------------------------------------------------------
def _glob(pattern: str, value: str, *, case: bool) -> bool:
    """IAM's wildcard match: `*` any run of characters, `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


_OPERATORS = {
    "StringEquals": lambda want, got: got == want,
    "StringEqualsIgnoreCase": lambda want, got: got.lower() == want.lower(),
    "StringLike": lambda want, got: _glob(want, got, case=True),
    "ArnEquals": lambda want, got: got == want,
    "ArnLike": lambda want, got: _glob(want, got, case=True),
}


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool | None:
    """True/False when every operator is understood; None when one is not. A context value
    is single-valued, so ForAllValues/ForAnyValue compare it like the plain operator (and
    ForAllValues holds for an absent key, as in IAM)."""
    for operator, tests in condition.items():
        qualifier, _, operator = operator.rpartition(":")
        if qualifier not in ("", "ForAllValues", "ForAnyValue"):
            return None
        if_exists = operator.endswith("IfExists") or qualifier == "ForAllValues"
        compare = _OPERATORS.get(operator.removesuffix("IfExists"))
        if compare is None:
            return None
        for key, wanted in tests.items():
            got = context.get(key)
            if got is None:
                if if_exists:
                    continue
                return False
            if not any(compare(w, got) for w in _listed(wanted)):
                return False
    return True


def _applies(statement: dict[str, Any], action: str, resource: str, context: dict[str, str],
             *, unknown: bool) -> bool:
    if "Action" in statement:
        if not any(_glob(a, action, case=False) for a in _listed(statement["Action"])):
            return False
    elif any(_glob(a, action, case=False) for a in _listed(statement.get("NotAction"))):
        return False
    if "Resource" in statement:
        if not any(_glob(r, resource, case=True) for r in _listed(statement["Resource"])):
            return False
    elif any(_glob(r, resource, case=True) for r in _listed(statement.get("NotResource"))):
        return False
    holds = _condition_holds(statement.get("Condition", {}), context)
    return unknown if holds is None else holds


def allows(documents: list[dict[str, Any]], action: str, resource: str,
           context: dict[str, str] | None = None) -> bool:
    """Whether identity policies grant `action` on `resource`: an Allow applies and no Deny
    does. A condition this reader does not understand never grants, and always denies."""
    context = context or {}
    statements = [s for d in documents for s in _listed_statements(d)]
    if any(s.get("Effect") == "Deny" and _applies(s, action, resource, context, unknown=True)
           for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and _applies(s, action, resource, context, unknown=False)
               for s in statements)


def _listed_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statement = document.get("Statement", [])
    return [statement] if isinstance(statement, dict) else list(statement)


# -- the runner in the plan -----------------------------------------------------------------
@dataclass(frozen=True)
class Runner:
    project: RecordedResource
    role_arn: str
    documents: list[dict[str, Any]] = field(default_factory=list)


def _parsed(text: Any) -> dict[str, Any] | None:
    try:
        return json.loads(text) if isinstance(text, str) else None
    except json.JSONDecodeError:
        return None


def role_documents(plan: Plan, role_arn: Any) -> list[dict[str, Any]]:
    """The policy documents of the plan's role with this ARN: inline, and attached policies
    the plan creates (AWS-managed ones are not in the plan and grant nothing here)."""
    role = next((r for r in plan.of_type(ROLE) if r.outputs.get("arn") == role_arn), None)
    if role is None:
        return []
    names = {role.outputs.get("name"), role.outputs.get("id"), role.urn}
    managed = {p.outputs.get("arn"): p for p in plan.of_type(MANAGED_POLICY)}
    texts = [p.inputs.get("policy") for p in plan.of_type(ROLE_POLICY) if p.inputs.get("role") in names]
    texts += [managed[a.inputs.get("policyArn")].inputs.get("policy")
              for a in plan.of_type(ROLE_POLICY_ATTACHMENT)
              if a.inputs.get("role") in names and a.inputs.get("policyArn") in managed]
    return [d for d in map(_parsed, texts) if d]


def runners(plan: Plan) -> Iterator[Runner]:
    """Each CodeBuild runner with its service role's policies."""
    for project in plan.of_type(CODEBUILD_PROJECT):
        arn = project.inputs.get("serviceRole", "")
        yield Runner(project, arn, role_documents(plan, arn))


# -- what a read needs ----------------------------------------------------------------------
def _bucket_setting(plan: Plan, type_token: str, bucket: str) -> RecordedResource | None:
    return next((r for r in plan.of_type(type_token) if r.inputs.get("bucket") == bucket), None)


def _versioned(plan: Plan, bucket: str) -> bool:
    setting = _bucket_setting(plan, VERSIONING, bucket)
    if setting is None:  # not this plan's bucket: assume the worst
        return True
    return setting.inputs.get("versioningConfiguration", {}).get("status") == "Enabled"


def _bucket_key(plan: Plan, bucket: str) -> str | None:
    setting = _bucket_setting(plan, BUCKET_SSE, bucket)
    for rule in (setting.inputs.get("rules", []) if setting else []):
        default = rule.get("applyServerSideEncryptionByDefault", {})
        if default.get("sseAlgorithm", "").startswith("aws:kms") and default.get("kmsMasterKeyId"):
            return default["kmsMasterKeyId"]
    return None


def needed_calls(plan: Plan, invoke: RecordedInvoke, row: dict[str, Any]) -> Iterator[
        tuple[str, str, str, dict[str, str]]]:
    """(api, action, resource ARN, request context) of every call the read makes."""
    bucket, key = str(invoke.args.get("bucket", "")), str(invoke.args.get("key", ""))
    for call in row.get("calls", []):
        if call.get("when") == "versioned" and not _versioned(plan, bucket):
            continue
        where = call.get("resource", "*")
        if where == "object":
            resource = f"arn:aws:s3:::{bucket}/{key}"
        elif where == "bucket-key":
            found = _bucket_key(plan, bucket)
            if found is None:
                continue
            resource = found
        else:
            resource = where
        context = {k: str(v).format(region=plan.config.region)
                   for k, v in (call.get("context") or {}).items()}
        yield call["api"], call["action"], resource, context


# -- rules ----------------------------------------------------------------------------------
def runner_may_make_its_reads(plan: Plan) -> Iterator[Finding]:
    """Every read the workloads program makes on the runner is one the runner's role may
    make, call by call, as the provider makes it; a read nobody has looked up is a finding."""
    table = provider_reads()
    reads = [i for i in plan.invokes if i.stack == RUNNER_STACK]
    for runner in runners(plan):
        for invoke in reads:
            label = str(invoke.args.get("key") or invoke.args.get("name") or invoke.token)
            row = table.get(invoke.token)
            if row is None:
                yield Finding(RULE, invoke.stack, label,
                              f"reads {invoke.token} on the runner, which no row of "
                              "components/data/provider_reads.yaml describes: read the data "
                              "source's provider source and record the API calls it makes")
                continue
            missing = [f"{action} on {resource} ({api})"
                       for api, action, resource, context in needed_calls(plan, invoke, row)
                       if not allows(runner.documents, action, resource, context)]
            if missing:
                yield Finding(RULE, invoke.stack, label,
                              f"the provider's {row.get('dataSource', invoke.token)} read runs "
                              f"as the runner role {runner.role_arn}, which is not granted "
                              f"{'; '.join(missing)}; grant it in components/ci_runner.py "
                              "(the calls and their provider source: "
                              "components/data/provider_reads.yaml)")


def runner_is_cluster_admin(plan: Plan) -> Iterator[Finding]:
    """The Kubernetes provider applies every kind the workloads stack has (CRDs, cluster
    roles, webhooks) with the runner's identity: it needs an access entry with the cluster
    admin policy, cluster-wide."""
    if not any(r.custom and r.type.startswith("kubernetes:") for r in plan.in_stack(RUNNER_STACK)):
        return
    entries = {r.inputs.get("principalArn") for r in plan.of_type(ACCESS_ENTRY)}
    admins = {r.inputs.get("principalArn") for r in plan.of_type(ACCESS_POLICY)
              if r.inputs.get("policyArn") == CLUSTER_ADMIN_POLICY
              and r.inputs.get("accessScope", {}).get("type") == "cluster"}
    for runner in runners(plan):
        if runner.role_arn not in entries & admins:
            yield Finding(RULE, runner.project.stack, runner.project.name,
                          f"the runner role {runner.role_arn} applies the workloads stack's "
                          "Kubernetes objects but has no EKS access entry with "
                          "AmazonEKSClusterAdminPolicy on the cluster scope; the Kubernetes "
                          "provider's first call is refused (Unauthorized)")


RULES: tuple[Rule, ...] = (runner_may_make_its_reads, runner_is_cluster_admin)
