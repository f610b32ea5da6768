"""Least-privilege IAM: no wildcard actions, no wildcard resources where scoping is possible,
and no role anyone on the internet can assume."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Any

from policies.rules import Rule, RuleContext, as_list, known, policy_document, statements

POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
USER_POLICY = "aws:iam/userPolicy:UserPolicy"
GROUP_POLICY = "aws:iam/groupPolicy:GroupPolicy"
PERMISSION_TYPES = (POLICY, ROLE, ROLE_POLICY, USER_POLICY, GROUP_POLICY)

#: Actions that do not support resource-level permissions, so AWS requires Resource "*".
#: Sources: the "Resource types" column of the AWS Service Authorization Reference
#: (Describe*/List* of EC2, Auto Scaling, ELB; sts:GetCallerIdentity; ecr:GetAuthorizationToken;
#: cloudwatch:PutMetricData...). Extend per environment via the policy's config.
RESOURCE_STAR_ACTIONS = (
    "ec2:Describe*",
    "autoscaling:Describe*",
    "elasticloadbalancing:Describe*",
    "sts:GetCallerIdentity",
    "ecr:GetAuthorizationToken",
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "cloudwatch:ListMetrics",
    "logs:DescribeLogGroups",
    "eks:DescribeAddonVersions",
    "pricing:GetProducts",
    "tag:GetResources",
    # no resource-level permissions (Service Authorization Reference)
    "ec2:GetInstanceTypesFromInstanceRequirements",
    "acm:ListCertificates",
    "iam:ListServerCertificates",
    "shield:GetSubscriptionState",
    "ssm:DescribeParameters",
    "route53:ListHostedZones",
)


def _documents(type_token: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """(where, document) of every permission policy the resource carries."""
    if type_token == ROLE:
        for i, inline in enumerate(as_list(props.get("inlinePolicies"))):
            if isinstance(inline, Mapping):
                yield f"inline policy {inline.get('name') or i}", inline.get("policy")
    else:
        yield "policy", props.get("policy")


def _allow_statements(type_token: str, props: Mapping[str, Any]) -> Iterator[tuple[str, Mapping]]:
    for where, raw in _documents(type_token, props):
        if not known(raw):
            continue
        for i, statement in enumerate(statements(policy_document(raw))):
            if statement.get("Effect") == "Allow":
                yield f"{where} statement {statement.get('Sid') or i}", statement


def check_wildcard_actions(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    problems = []
    for where, statement in _allow_statements(type_token, props):
        if "NotAction" in statement:
            problems.append(f"{where} allows NotAction, which grants every other action")
            continue
        for action in map(str, as_list(statement.get("Action"))):
            if action == "*":
                problems.append(f"{where} allows every action ('*')")
            elif action.endswith(":*") and not ctx["allowServiceWildcards"]:
                problems.append(f"{where} allows every action of a service ({action!r})")
    return problems


def _needs_star(action: str, allowed: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), pattern.lower()) for pattern in allowed)


def check_wildcard_resources(type_token: str, props: Mapping[str, Any], ctx: RuleContext) -> list[str]:
    allowed = list(ctx["resourceStarActions"])
    problems = []
    for where, statement in _allow_statements(type_token, props):
        if "*" not in map(str, as_list(statement.get("Resource"))):
            continue
        scopable = [a for a in map(str, as_list(statement.get("Action"))) if not _needs_star(a, allowed)]
        if scopable:
            problems.append(f"{where} grants {', '.join(scopable)} on Resource '*'; scope it to ARNs "
                            "(only actions without resource-level permissions may use '*')")
    return problems


def _open_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return "*" in map(str, as_list(principal.get("AWS")))
    return False


def check_trust_policy(_type: str, props: Mapping[str, Any], _ctx: RuleContext) -> list[str]:
    raw = props.get("assumeRolePolicy")
    if not known(raw):
        return []
    problems = []
    for i, statement in enumerate(statements(policy_document(raw))):
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        if _open_principal(statement.get("Principal")):
            problems.append(f"trust policy statement {statement.get('Sid') or i} lets any AWS "
                            "principal assume the role (Principal '*' without a Condition)")
    return problems


RULES = [
    Rule(
        name="iam-no-wildcard-actions",
        description="IAM policies never allow every action ('*', 'service:*' or NotAction).",
        remediation="List the actions the workload calls (CloudTrail / IAM Access Analyzer policy "
        "generation shows them) instead of '*'.",
        resource_types=PERMISSION_TYPES,
        check=check_wildcard_actions,
        config_schema={"allowServiceWildcards": {"type": "boolean", "default": False}},
    ),
    Rule(
        name="iam-no-wildcard-resources",
        description="IAM policies scope actions to resource ARNs; Resource '*' only for actions that "
        "support no resource-level permissions (an explicit allow-list, e.g. ec2:Describe*).",
        remediation="Replace Resource '*' with the ARNs of the bucket, key, log group... the statement "
        "needs; if the action truly supports no resource scoping, add it to resourceStarActions.",
        resource_types=PERMISSION_TYPES,
        check=check_wildcard_resources,
        config_schema={"resourceStarActions": {"type": "array", "items": {"type": "string"},
                                               "default": list(RESOURCE_STAR_ACTIONS)}},
    ),
    Rule(
        name="iam-trust-policy-not-public",
        description="No role trust policy lets anyone assume it (Principal '*' or AWS '*' without a "
        "Condition).",
        remediation="Name the trusted service, account or OIDC provider in Principal and add "
        "conditions (aws:SourceAccount, sts:ExternalId, the OIDC sub claim).",
        resource_types=(ROLE,),
        check=check_trust_policy,
    ),
]
