"""Every IAM policy document the platform creates passes an IAM linter (parliament):
known actions, resources of the right type for each action, no needless Resource '*'."""

from __future__ import annotations

import pytest
from parliament import analyze_policy_string

from tests.conftest import STACKS

POLICY_INPUTS = {"aws:iam/rolePolicy:RolePolicy": "policy", "aws:iam/policy:Policy": "policy"}
#: Real condition keys newer than parliament's database (the AWS Service Authorization
#: Reference lists elasticloadbalancing:CreateAction; the controller's upstream policy uses it).
NEWER_THAN_LINTER = {("UNKNOWN_CONDITION_FOR_ACTION",
                      "Unknown condition elasticloadbalancing:CreateAction for action "
                      "elasticloadbalancing:AddTags")}


#: Karpenter's controller policy (components/iam.py, upstream's statement for statement):
#: parliament wants every resource type an action can touch inside each statement, but IAM
#: authorizes RunInstances/CreateFleet per resource ARN, so upstream splits them by condition;
#: and public AMIs, snapshots and SSM parameters are AWS-owned, with no account in their ARN.
KARPENTER_SPLIT_ACTIONS = {"ec2:RunInstances", "ec2:CreateFleet", "ssm:GetParameter"}


def _upstream_karpenter_shape(name: str, issue: str, detail) -> bool:
    if not name.startswith("workload-roles-karpenter"):
        return False
    if issue == "RESOURCE_MISMATCH":
        return all(d["action"] in KARPENTER_SPLIT_ACTIONS for d in detail)
    return issue == "INVALID_ARN"


@pytest.mark.parametrize("stack", STACKS)
def test_every_permission_policy_passes_parliament(plans, stack):
    documents = [(r.name, r.inputs[POLICY_INPUTS[r.type]]) for r in plans[stack].resources
                 if r.type in POLICY_INPUTS]
    assert len(documents) >= 5
    findings = {name: [(f.issue, f.detail) for f in analyze_policy_string(doc).findings
                       if not _upstream_karpenter_shape(name, f.issue, f.detail)
                       and (f.issue, f.detail) not in NEWER_THAN_LINTER]
                for name, doc in documents}
    assert {name: found for name, found in findings.items() if found} == {}


def test_the_linter_catches_a_needless_wildcard():
    sloppy = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
              '"Action": "s3:GetObject", "Resource": "*"}]}')
    assert [f.issue for f in analyze_policy_string(sloppy).findings] == ["RESOURCE_STAR"]
